//! Calls over every transport × protocol against the in-process fixture: invoke, send, streams
//! both ways, client results, handlers, groups, headers, tokens.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use talkback::{HubConnectionBuilder, Protocol, State, TransportKind, TransportSet};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_69_invoke_resolves_with_the_result_with_nothing_or_with_the_error() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        assert_eq!(conn.state(), State::Connected, "{l}");
        let sum: i64 = within(conn.invoke("Add", (1, 2))).await.unwrap();
        assert_eq!(sum, 3, "{l}");
        let value = json!({"text": "héllo", "list": [1, 2.5, null, true], "nested": {"k": "v"}});
        let echoed: Value = within(conn.invoke("Echo", (value.clone(),))).await.unwrap();
        assert_eq!(echoed, value, "{l}");
        let (): () = within(conn.invoke("DoNothing", ())).await.unwrap();
        let nothing: Option<i64> = within(conn.invoke("DoNothing", ())).await.unwrap();
        assert_eq!(nothing, None, "{l}");
        let error = within(conn.invoke::<()>("Throw", ("boom",)))
            .await
            .unwrap_err();
        assert_eq!(error.server_message(), Some("boom"), "{l}: {error}");
        let mismatch = within(conn.invoke::<i64>("Echo", ("text",)))
            .await
            .unwrap_err();
        assert!(
            matches!(mismatch, talkback::Error::Decode(_)),
            "{l}: {mismatch}"
        );
        within(conn.stop()).await.unwrap();
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_68_send_resolves_once_written_and_the_server_acts_on_it() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        conn.on("Echoed", move |(text,): (String,)| {
            let _ = tx.send(text);
        });
        within(conn.send("EchoToCaller", ("hi",))).await.unwrap();
        assert_eq!(within(rx.recv()).await.as_deref(), Some("hi"), "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_70_stream_delivers_items_in_order_then_completes_or_fails() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let items: Vec<i64> = within(async {
            let stream = conn.stream::<i64>("Counter", (50, 0)).await.unwrap();
            stream.map(|i| i.unwrap()).collect().await
        })
        .await;
        assert_eq!(items, (0..50).collect::<Vec<_>>(), "{l}");

        let mut failing = within(conn.stream::<i64>("StreamThenFail", (3,)))
            .await
            .unwrap();
        for expected in 0..3 {
            assert_eq!(
                within(failing.next()).await.unwrap().unwrap(),
                expected,
                "{l}"
            );
        }
        let error = within(failing.next()).await.unwrap().unwrap_err();
        assert_eq!(
            error.server_message(),
            Some("stream failed on purpose"),
            "{l}"
        );
        assert!(within(failing.next()).await.is_none(), "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_71_dropping_a_stream_cancels_it_and_the_connection_keeps_working() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let mut infinite = within(conn.stream::<i64>("InfiniteCounter", (5,)))
            .await
            .unwrap();
        for expected in 0..3 {
            assert_eq!(
                within(infinite.next()).await.unwrap().unwrap(),
                expected,
                "{l}"
            );
        }
        drop(infinite);
        // Items still in flight for the cancelled id arrive among the next calls' messages and
        // are ignored; the calls go on.
        let sum: i64 = within(conn.invoke("Add", (2, 3))).await.unwrap();
        assert_eq!(sum, 5, "{l}");
        let items: Vec<i64> = within(async {
            let s = conn.stream::<i64>("Counter", (3, 0)).await.unwrap();
            s.map(|i| i.unwrap()).collect().await
        })
        .await;
        assert_eq!(items, vec![0, 1, 2], "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_73_upload_streams_feed_invoke_send_and_stream_calls() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let sum: i64 =
            within(conn.invoke_with_upload("UploadSum", (), futures::stream::iter([1, 2, 3, 4])))
                .await
                .unwrap();
        assert_eq!(sum, 10, "{l}");

        let collected: Vec<String> = within(conn.invoke_with_upload(
            "UploadCollect",
            (),
            futures::stream::iter(["a", "b", "c"]),
        ))
        .await
        .unwrap();
        assert_eq!(collected, ["a", "b", "c"], "{l}");

        let empty: Vec<i64> = within(conn.invoke_with_upload(
            "UploadCollect",
            (),
            futures::stream::iter(Vec::<i64>::new()),
        ))
        .await
        .unwrap();
        assert!(empty.is_empty(), "{l}");

        // Items go out as they come: the next item is produced only after the server echoed
        // the previous one, so nothing waits for the upload to end.
        let (items, upload) = futures::channel::mpsc::unbounded::<i64>();
        let mut echoed = within(conn.stream_with_upload::<i64, _>("UploadEcho", (), upload))
            .await
            .unwrap();
        for i in 0..5 {
            items.unbounded_send(i).unwrap();
            assert_eq!(within(echoed.next()).await.unwrap().unwrap(), i, "{l}");
        }
        drop(items);
        assert!(within(echoed.next()).await.is_none(), "{l}");

        let (tx, mut rx) = mpsc::unbounded_channel();
        conn.on("Uploaded", move |(items,): (Vec<i64>,)| {
            let _ = tx.send(items);
        });
        within(conn.send_with_upload("UploadNotify", (), futures::stream::iter([7, 8])))
            .await
            .unwrap();
        assert_eq!(within(rx.recv()).await, Some(vec![7, 8]), "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_75_client_results_return_the_handlers_value_to_the_server() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        conn.on_result(
            "Double",
            |(x,): (i64,)| async move { Ok::<_, String>(x * 2) },
        );
        let answer: i64 = within(conn.invoke("AskClient", ("Double", 21)))
            .await
            .unwrap();
        assert_eq!(answer, 42, "{l}");
        // A handler that suspends before it answers (here on another task's result).
        conn.on_result("Later", |(x,): (String,)| async move {
            let answer = tokio::spawn(async move { format!("{x}!") }).await.unwrap();
            Ok::<_, String>(answer)
        });
        let answer: String = within(conn.invoke("AskClient", ("Later", "hey")))
            .await
            .unwrap();
        assert_eq!(answer, "hey!", "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_76_client_results_report_missing_failing_and_multiple_handlers() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let missing = within(conn.invoke::<Value>("AskClient", ("Nobody", 1)))
            .await
            .unwrap_err();
        assert_eq!(
            missing.server_message(),
            Some("Client didn't provide a result."),
            "{l}: {missing}"
        );
        conn.on_result(
            "Fails",
            |(_x,): (i64,)| async move { Err::<i64, _>("it broke") },
        );
        let failed = within(conn.invoke::<Value>("AskClient", ("Fails", 1)))
            .await
            .unwrap_err();
        assert_eq!(failed.server_message(), Some("it broke"), "{l}: {failed}");
        conn.on_result("Twice", |(x,): (i64,)| async move { Ok::<_, String>(x) });
        conn.on_result(
            "Twice",
            |(x,): (i64,)| async move { Ok::<_, String>(x + 1) },
        );
        let twice = within(conn.invoke::<Value>("AskClient", ("Twice", 1)))
            .await
            .unwrap_err();
        assert_eq!(
            twice.server_message(),
            Some("Client provided multiple results."),
            "{l}: {twice}"
        );
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_78_handlers_match_names_case_insensitively_and_off_removes_them() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let upper = Arc::new(AtomicUsize::new(0));
        let lower = Arc::new(AtomicUsize::new(0));
        let (u, lo) = (upper.clone(), lower.clone());
        let upper_id = conn.on("ECHOED", move |(_t,): (String,)| {
            u.fetch_add(1, Ordering::SeqCst);
        });
        conn.on("echoed", move |(_t,): (String,)| {
            lo.fetch_add(1, Ordering::SeqCst);
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        conn.on("Multi", move |args: (i64, i64, i64, Value, Option<i64>)| {
            let _ = tx.send(args);
        });
        within(conn.send("EchoToCaller", ("one",))).await.unwrap();
        within(conn.send("Multi", (1, 2, 3))).await.unwrap();
        // Server messages arrive in order: once Multi is seen, Echoed was handled.
        let multi = within(rx.recv()).await.unwrap();
        assert_eq!(multi, (1, 2, 3, json!({"k": "v"}), None), "{l}");
        assert_eq!(
            (upper.load(Ordering::SeqCst), lower.load(Ordering::SeqCst)),
            (1, 1),
            "{l}"
        );

        conn.off_handler("Echoed", upper_id);
        within(conn.send("EchoToCaller", ("two",))).await.unwrap();
        within(conn.send("Multi", (4, 5, 6))).await.unwrap();
        within(rx.recv()).await.unwrap();
        assert_eq!(
            (upper.load(Ordering::SeqCst), lower.load(Ordering::SeqCst)),
            (1, 2),
            "{l}"
        );

        conn.off("ECHOED");
        within(conn.send("EchoToCaller", ("three",))).await.unwrap();
        within(conn.send("Multi", (7, 8, 9))).await.unwrap();
        within(rx.recv()).await.unwrap();
        assert_eq!(
            (upper.load(Ordering::SeqCst), lower.load(Ordering::SeqCst)),
            (1, 2),
            "{l}"
        );
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_deliver_to_members_only_until_they_leave() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let member = connect(&hub, transport, protocol).await;
        let sender = connect(&hub, transport, protocol).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        member.on("GroupMessage", move |(group, text): (String, String)| {
            let _ = tx.send(format!("{group}:{text}"));
        });
        let (etx, mut erx) = mpsc::unbounded_channel();
        member.on("Echoed", move |(text,): (String,)| {
            let _ = etx.send(text);
        });
        within(member.invoke::<()>("JoinGroup", ("room",)))
            .await
            .unwrap();
        within(sender.send("SendToGroup", ("room", "hello")))
            .await
            .unwrap();
        assert_eq!(
            within(rx.recv()).await.as_deref(),
            Some("room:hello"),
            "{l}"
        );
        within(member.invoke::<()>("LeaveGroup", ("room",)))
            .await
            .unwrap();
        within(sender.invoke::<()>("SendToGroup", ("room", "gone")))
            .await
            .unwrap();
        within(member.send("EchoToCaller", ("marker",)))
            .await
            .unwrap();
        assert_eq!(within(erx.recv()).await.as_deref(), Some("marker"), "{l}");
        assert!(
            rx.try_recv().is_err(),
            "{l}: a non-member got a group message"
        );
        within(member.stop()).await.unwrap();
        within(sender.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_50_user_agent_and_user_headers_reach_the_server_on_every_transport() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(&hub, transport, protocol)
            .with_header("X-Talkback-Test", "yes")
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let header: Option<String> = within(conn.invoke("GetHeader", ("x-talkback-test",)))
            .await
            .unwrap();
        assert_eq!(header.as_deref(), Some("yes"), "{l}");
        let agent: Option<String> = within(conn.invoke("GetHeader", ("user-agent",)))
            .await
            .unwrap();
        let agent = agent.unwrap_or_default();
        assert!(agent.starts_with("Microsoft SignalR/"), "{l}: {agent}");
        assert!(agent.contains("talkback"), "{l}: {agent}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_35_the_access_token_travels_as_a_bearer_header_on_every_transport() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let conn = builder(&hub, transport, protocol)
            .with_access_token_factory(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok("secret-token".to_string()) }
            })
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let header: Option<String> = within(conn.invoke("GetHeader", ("authorization",)))
            .await
            .unwrap();
        assert_eq!(header.as_deref(), Some("Bearer secret-token"), "{l}");
        let query: std::collections::HashMap<String, String> =
            within(conn.invoke("GetQuery", ())).await.unwrap();
        assert!(query.contains_key("id"), "{l}: {query:?}");
        assert!(
            !query.contains_key("access_token"),
            "{l}: native clients use the header"
        );
        assert!(calls.load(Ordering::SeqCst) >= 1, "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_34_skip_negotiation_connects_over_websockets_without_a_connection_id() {
    let hub = Hub::start().await;
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let conn = HubConnectionBuilder::new(hub.url())
            .with_transports(TransportSet::only(TransportKind::WebSockets))
            .skip_negotiation(true)
            .with_protocol(protocol)
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        assert_eq!(conn.connection_id(), None);
        let sum: i64 = within(conn.invoke("Add", (40, 2))).await.unwrap();
        assert_eq!(sum, 42);
        let query: std::collections::HashMap<String, String> =
            within(conn.invoke("GetQuery", ())).await.unwrap();
        assert!(!query.contains_key("id"), "{query:?}");
        within(conn.stop()).await.unwrap();
    }
    let refused = HubConnectionBuilder::new(hub.url())
        .skip_negotiation(true)
        .build();
    assert!(matches!(refused, Err(talkback::Error::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_57_start_twice_is_refused_and_stop_is_idempotent() {
    let hub = Hub::start().await;
    let conn = connect(&hub, TransportKind::WebSockets, Protocol::Json).await;
    let id = conn.connection_id();
    assert!(id.is_some());
    let again = within(conn.start()).await.unwrap_err();
    assert!(
        matches!(
            again,
            talkback::Error::Connection(talkback_core::Error::Usage(_))
        ),
        "{again}"
    );
    within(conn.stop()).await.unwrap();
    within(conn.stop()).await.unwrap();
    assert_eq!(conn.state(), State::Disconnected);
    assert_eq!(conn.connection_id(), None);
    // A stopped connection starts again with a new id.
    within(conn.start()).await.unwrap();
    assert!(conn.connection_id().is_some());
    assert_ne!(conn.connection_id(), id);
    within(conn.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_58_a_failed_first_start_does_not_fire_on_close() {
    // An app server that fails the first negotiate and redirects later ones to the fixture.
    let hub = Hub::start().await;
    let negotiates = Arc::new(AtomicUsize::new(0));
    let n = negotiates.clone();
    let hub_url = hub.url();
    let app = axum::Router::new().route(
        "/app/negotiate",
        axum::routing::post(move || {
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            let hub_url = hub_url.clone();
            async move {
                use axum::response::IntoResponse;
                if first {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                } else {
                    axum::Json(json!({ "url": hub_url })).into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/app", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let conn = HubConnectionBuilder::new(url).build().unwrap();
    let (ctx, mut closes) = mpsc::unbounded_channel();
    conn.on_close(move |e| {
        let _ = ctx.send(e.map(|e| e.to_string()));
    });
    let error = within(conn.start()).await.unwrap_err();
    assert!(
        matches!(
            error,
            talkback::Error::Connection(talkback::ConnectionError::Connect(_))
        ),
        "{error}"
    );
    assert_eq!(conn.state(), State::Disconnected);
    // Callbacks run in order on one queue: had the failed start fired `on_close`, its call
    // would come before the one of this stop.
    within(conn.start()).await.unwrap();
    within(conn.stop()).await.unwrap();
    assert_eq!(
        within(closes.recv()).await,
        Some(None),
        "only the stop's on_close"
    );
    assert!(closes.try_recv().is_err());
    assert_eq!(negotiates.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_31_refused_websockets_fall_back_to_the_next_transport() {
    let hub = Hub::start().await;
    hub.refuse_websockets();
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let conn = HubConnectionBuilder::new(hub.url())
            .with_protocol(protocol)
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let sum: i64 = within(conn.invoke("Add", (1, 1))).await.unwrap();
        assert_eq!(sum, 2);
        let upgrade: Option<String> = within(conn.invoke("GetHeader", ("upgrade",)))
            .await
            .unwrap();
        assert_eq!(upgrade, None, "fell back to an HTTP transport");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_holds_back_reading_without_losing_messages() {
    let hub = Hub::start().await;
    let conn = connect(&hub, TransportKind::WebSockets, Protocol::Json).await;
    // The handler is held at its first message until every send has gone out: the dispatch
    // queue fills, the client stops reading, and its sends must still complete.
    let (open_gate, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(Some(gate));
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    conn.on("Echoed", move |(text,): (String,)| {
        if let Some(gate) = gate.lock().unwrap().take() {
            gate.recv().unwrap();
        }
        let _ = seen_tx.send(text);
    });
    let total = talkback::DISPATCH_QUEUE * 3;
    for i in 0..total {
        within(conn.send("EchoToCaller", (i.to_string(),)))
            .await
            .unwrap();
    }
    open_gate.send(()).unwrap();
    for i in 0..total {
        assert_eq!(within(seen.recv()).await, Some(i.to_string()));
    }
    within(conn.stop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_is_one_pointer_and_drives_the_same_connection_from_another_task() {
    // Clone + Send + Sync is checked at compile time in `connection.rs`; this checks "cheap":
    // a clone copies one pointer and shares the connection instead of opening another.
    assert_eq!(
        std::mem::size_of::<talkback::HubConnection>(),
        std::mem::size_of::<usize>()
    );
    let hub = Hub::start().await;
    let conn = connect(&hub, TransportKind::WebSockets, Protocol::Json).await;
    let clone = conn.clone();
    let from_task = tokio::spawn(async move {
        let sum: i64 = clone.invoke("Add", (20, 22)).await.unwrap();
        (sum, clone.connection_id())
    });
    let (sum, id) = within(from_task).await.unwrap();
    assert_eq!(sum, 42);
    assert_eq!(id, conn.connection_id());
    assert_eq!(hub.server.connection_ids(Some("test")).len(), 1);
    within(conn.stop()).await.unwrap();
}
