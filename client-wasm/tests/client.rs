//! The Rust client API (`talkback_wasm::HubConnectionBuilder`) in headless Chromium and Firefox,
//! against the real fixture on loopback: every transport × protocol, calls, streams, uploads,
//! client results, groups, the access token, reconnects, the server timeout and URLs.
//!
//! Run with `scripts/wasm-browser-tests.sh`: it starts `talkback-fixture` (with stateful
//! reconnect allowed) on an OS-chosen port and passes its URL in `TALKBACK_FIXTURE_URL`, read
//! here when the tests are compiled. Admin (fault) endpoints refuse CORS, so connections are
//! broken from inside: `CloseMe` drops the caller's transport without a Close message,
//! `CloseWithMessage` closes it with one.

#![cfg(target_arch = "wasm32")]

use futures_channel::mpsc;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use talkback_wasm::{
    BoxError, HubConnection, HubConnectionBuilder, HubConnectionBuilderExt, Protocol, State,
    TransportKind, TransportSet,
};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Every transport × protocol pair that exists (MessagePack needs binary, so not over SSE).
const COMBOS: [(TransportKind, Protocol); 5] = [
    (TransportKind::WebSockets, Protocol::Json),
    (TransportKind::WebSockets, Protocol::MessagePack),
    (TransportKind::ServerSentEvents, Protocol::Json),
    (TransportKind::LongPolling, Protocol::Json),
    (TransportKind::LongPolling, Protocol::MessagePack),
];

/// The fixture's base URL (`http://127.0.0.1:PORT`), fixed when the tests were compiled.
fn fixture() -> &'static str {
    match option_env!("TALKBACK_FIXTURE_URL") {
        Some(url) => url,
        None => panic!(
            "TALKBACK_FIXTURE_URL was not set when these tests were compiled: \
             run them with scripts/wasm-browser-tests.sh"
        ),
    }
}

fn hub_url() -> String {
    format!("{}/hubs/test", fixture())
}

fn label(transport: TransportKind, protocol: Protocol) -> String {
    format!("{} + {}", transport.name(), protocol.name())
}

/// `f`, or a panic after `ms` milliseconds.
async fn within_ms<F: Future>(ms: u32, f: F) -> F::Output {
    let timer = gloo_timers::future::TimeoutFuture::new(ms);
    match select(Box::pin(f), timer).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("not finished within {ms} ms"),
    }
}

/// `f`, or a panic after 10 seconds.
async fn within<F: Future>(f: F) -> F::Output {
    within_ms(10_000, f).await
}

async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// A builder for `url` with one transport, one protocol and short HTTP timeouts.
fn builder_for(url: &str, transport: TransportKind, protocol: Protocol) -> HubConnectionBuilder {
    HubConnectionBuilder::new(url)
        .with_transports(TransportSet::only(transport))
        .with_protocol(protocol)
        .with_http_timeout(Duration::from_secs(5))
}

fn builder(transport: TransportKind, protocol: Protocol) -> HubConnectionBuilder {
    builder_for(&hub_url(), transport, protocol)
}

async fn connect(transport: TransportKind, protocol: Protocol) -> HubConnection {
    let conn = builder(transport, protocol).build().expect("builds");
    within(conn.start()).await.expect("starts");
    conn
}

#[wasm_bindgen_test]
async fn invoke_send_stream_and_cancel_on_every_transport_and_protocol() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(transport, protocol).await;
        assert_eq!(conn.state(), State::Connected, "{l}");
        assert!(conn.connection_id().is_some(), "{l}");

        let sum: i64 = within(conn.invoke("Add", (1, 2))).await.unwrap();
        assert_eq!(sum, 3, "{l}");
        let echoed: Value = within(conn.invoke("Echo", (serde_json::json!({"a": [1, "ü"]}),)))
            .await
            .unwrap();
        assert_eq!(echoed, serde_json::json!({"a": [1, "ü"]}), "{l}");
        let error = within(conn.invoke::<Value>("Throw", ("no luck",)))
            .await
            .unwrap_err();
        assert_eq!(error.server_message(), Some("no luck"), "{l}");

        let (tx, mut echoes) = mpsc::unbounded();
        conn.on("Echoed", move |(text,): (String,)| {
            let _ = tx.unbounded_send(text);
        });
        within(conn.send("EchoToCaller", ("hello from wasm",)))
            .await
            .unwrap();
        assert_eq!(
            within(echoes.next()).await.as_deref(),
            Some("hello from wasm"),
            "{l}"
        );

        let stream = within(conn.stream::<i64>("Counter", (5, 0))).await.unwrap();
        let items: Vec<i64> = within(stream.map(|item| item.unwrap()).collect()).await;
        assert_eq!(items, vec![0, 1, 2, 3, 4], "{l}");

        let failing = within(conn.stream::<i64>("StreamThenFail", (2,)))
            .await
            .unwrap();
        let items: Vec<_> = within(failing.collect()).await;
        assert_eq!(items.len(), 3, "{l}: {items:?}");
        assert_eq!(
            items[2].as_ref().unwrap_err().server_message(),
            Some("stream failed on purpose"),
            "{l}"
        );

        // Cancel: dropping the stream sends CancelInvocation; the connection goes on.
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
        let sum: i64 = within(conn.invoke("Add", (40, 2))).await.unwrap();
        assert_eq!(sum, 42, "{l}: the connection works after a cancel");

        within(conn.stop()).await.unwrap();
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[wasm_bindgen_test]
async fn uploads_from_any_stream_on_every_transport_and_protocol() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(transport, protocol).await;
        let sum: i64 = within(conn.invoke_with_upload(
            "UploadSum",
            (),
            futures_util::stream::iter([1, 2, 3, 4]),
        ))
        .await
        .unwrap();
        assert_eq!(sum, 10, "{l}");

        // Items go out as they come: each is produced after the previous one came back.
        let (items, upload) = mpsc::unbounded::<String>();
        let mut echoed = within(conn.stream_with_upload::<String, _>("UploadEcho", (), upload))
            .await
            .unwrap();
        for i in 0..4 {
            items.unbounded_send(format!("item {i}")).unwrap();
            assert_eq!(
                within(echoed.next()).await.unwrap().unwrap(),
                format!("item {i}"),
                "{l}"
            );
        }
        drop(items);
        assert!(within(echoed.next()).await.is_none(), "{l}");

        // A stream that waits on browser timers between items.
        let timed = futures_util::stream::iter(0..3).then(|i| async move {
            sleep_ms(10).await;
            i
        });
        let (tx, mut uploaded) = mpsc::unbounded();
        conn.on("Uploaded", move |(items,): (Vec<i64>,)| {
            let _ = tx.unbounded_send(items);
        });
        within(conn.send_with_upload("UploadNotify", (), timed))
            .await
            .unwrap();
        assert_eq!(within(uploaded.next()).await, Some(vec![0, 1, 2]), "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn client_results_on_every_transport_and_protocol() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(transport, protocol).await;
        conn.on_result(
            "Double",
            |(x,): (i64,)| async move { Ok::<_, String>(x * 2) },
        );
        let answer: i64 = within(conn.invoke("AskClient", ("Double", 21)))
            .await
            .unwrap();
        assert_eq!(answer, 42, "{l}");
        // A handler that waits on a browser timer before it answers.
        conn.on_result("Later", |(x,): (String,)| async move {
            sleep_ms(20).await;
            Ok::<_, String>(format!("{x}!"))
        });
        let answer: String = within(conn.invoke("AskClient", ("Later", "hey")))
            .await
            .unwrap();
        assert_eq!(answer, "hey!", "{l}");
        conn.on_result(
            "Fails",
            |(_x,): (i64,)| async move { Err::<i64, _>("it broke") },
        );
        let failed = within(conn.invoke::<Value>("AskClient", ("Fails", 1)))
            .await
            .unwrap_err();
        assert_eq!(failed.server_message(), Some("it broke"), "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn group_messages_reach_members_on_every_transport_and_protocol() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let group = format!("wasm {l}");
        let member = connect(transport, protocol).await;
        let outsider = connect(transport, protocol).await;
        let (tx, mut received) = mpsc::unbounded();
        member.on("GroupMessage", move |(group, text): (String, String)| {
            let _ = tx.unbounded_send((group, text));
        });
        let (otx, mut outsider_received) = mpsc::unbounded::<String>();
        outsider.on("GroupMessage", move |(_group, text): (String, String)| {
            let _ = otx.unbounded_send(text);
        });
        within(member.invoke::<()>("JoinGroup", (&group,)))
            .await
            .unwrap();
        within(outsider.send("SendToGroup", (&group, "to the group")))
            .await
            .unwrap();
        assert_eq!(
            within(received.next()).await,
            Some((group.clone(), "to the group".to_string())),
            "{l}"
        );
        within(member.invoke::<()>("LeaveGroup", (&group,)))
            .await
            .unwrap();
        within(outsider.send("SendToGroup", (&group, "after leaving")))
            .await
            .unwrap();
        // A round trip on each connection: had the message been delivered, it came first.
        within(member.invoke::<i64>("Add", (1, 1))).await.unwrap();
        within(outsider.invoke::<i64>("Add", (1, 1))).await.unwrap();
        assert!(received.try_recv().is_err(), "{l}: nothing after leaving");
        assert!(outsider_received.try_recv().is_err(), "{l}: not a member");
        within(member.stop()).await.unwrap();
        within(outsider.stop()).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn the_access_token_goes_in_the_query_where_a_browser_cannot_set_headers() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(transport, protocol)
            .with_access_token_factory(|| async { Ok::<_, BoxError>("browser-user".to_string()) })
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let user: Option<String> = within(conn.invoke("GetUserId", ())).await.unwrap();
        assert_eq!(user.as_deref(), Some("browser-user"), "{l}");
        let query: Value = within(conn.invoke("GetQuery", ())).await.unwrap();
        let authorization: Option<String> = within(conn.invoke("GetHeader", ("Authorization",)))
            .await
            .unwrap();
        match transport {
            // WebSocket and EventSource-style requests cannot carry headers in a browser.
            TransportKind::WebSockets | TransportKind::ServerSentEvents => {
                assert_eq!(query["access_token"], "browser-user", "{l}: {query}");
                assert_eq!(authorization, None, "{l}");
            }
            // Long polling is fetch: the token goes in Authorization, as the official client.
            TransportKind::LongPolling => {
                assert_eq!(query.get("access_token"), None, "{l}: {query}");
                assert_eq!(authorization.as_deref(), Some("Bearer browser-user"), "{l}");
            }
        }
        within(conn.stop()).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn fetch_requests_carry_the_browser_headers() {
    // The long poll that opened the transport is a fetch request the hub can see.
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let conn = connect(TransportKind::LongPolling, protocol).await;
        let header = |name: &'static str| {
            let conn = &conn;
            async move {
                within(conn.invoke::<Option<String>>("GetHeader", (name,)))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            header("X-SignalR-User-Agent").await,
            Some(talkback_wasm::user_agent())
        );
        assert!(talkback_wasm::user_agent()
            .ends_with("; Unknown OS; Browser; Unknown Runtime Version)"));
        assert_eq!(
            header("X-Requested-With").await.as_deref(),
            Some("XMLHttpRequest")
        );
        // The browser's own User-Agent is left alone.
        let browser = header("User-Agent").await.unwrap_or_default();
        assert!(!browser.starts_with("Microsoft SignalR"), "{browser}");
        within(conn.stop()).await.unwrap();
    }

    // Without credentials (`credentials: "same-origin"`) a cross-origin hub still works.
    let conn = builder(TransportKind::LongPolling, Protocol::Json)
        .with_credentials(false)
        .build()
        .unwrap();
    within(conn.start()).await.unwrap();
    let sum: i64 = within(conn.invoke("Add", (2, 3))).await.unwrap();
    assert_eq!(sum, 5);
    within(conn.stop()).await.unwrap();
}

#[wasm_bindgen_test]
async fn automatic_reconnect_after_a_dropped_transport_on_every_transport_and_protocol() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(transport, protocol)
            .with_automatic_reconnect_delays(vec![Duration::ZERO, Duration::from_millis(100)])
            .build()
            .unwrap();
        let (tx, mut events) = mpsc::unbounded();
        let t = tx.clone();
        conn.on_reconnecting(move |e| {
            let _ = t.unbounded_send(format!("reconnecting: {e}"));
        });
        let t = tx.clone();
        conn.on_reconnected(move |id| {
            let _ = t.unbounded_send(format!("reconnected: {}", id.unwrap_or_default()));
        });
        conn.on_close(move |e| {
            let _ = tx.unbounded_send(format!("closed: {e:?}"));
        });
        within(conn.start()).await.unwrap();
        let first_id = conn.connection_id().unwrap();

        // A drop without a Close message.
        within(conn.send("CloseMe", ("drop",))).await.unwrap();
        let event = within(events.next()).await.unwrap();
        assert!(event.starts_with("reconnecting"), "{l}: {event}");
        let event = within(events.next()).await.unwrap();
        assert!(event.starts_with("reconnected: "), "{l}: {event}");
        let second_id = conn.connection_id().unwrap();
        assert_ne!(second_id, first_id, "{l}: a new connection");
        assert_eq!(event, format!("reconnected: {second_id}"), "{l}");
        let sum: i64 = within(conn.invoke("Add", (1, 2))).await.unwrap();
        assert_eq!(sum, 3, "{l}");

        // A Close that allows reconnecting.
        within(conn.send("CloseWithMessage", ("come back", true)))
            .await
            .unwrap();
        let event = within(events.next()).await.unwrap();
        assert!(event.starts_with("reconnecting"), "{l}: {event}");
        let event = within(events.next()).await.unwrap();
        assert!(event.starts_with("reconnected: "), "{l}: {event}");
        assert_eq!(conn.state(), State::Connected, "{l}");

        // A Close that does not: the connection ends with the server's error.
        within(conn.send("CloseWithMessage", ("go away", false)))
            .await
            .unwrap();
        let event = within(events.next()).await.unwrap();
        assert!(event.contains("go away"), "{l}: {event}");
        assert!(event.starts_with("closed: Some"), "{l}: {event}");
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[wasm_bindgen_test]
async fn stateful_reconnect_survives_dropped_websockets_without_loss_or_duplicates() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let l = label(TransportKind::WebSockets, protocol);
        let conn = builder(TransportKind::WebSockets, protocol)
            .with_stateful_reconnect()
            .build()
            .unwrap();
        let (tx, mut lifecycle) = mpsc::unbounded::<String>();
        let t = tx.clone();
        conn.on_reconnecting(move |e| {
            let _ = t.unbounded_send(format!("reconnecting {e}"));
        });
        conn.on_close(move |e| {
            let _ = tx.unbounded_send(format!("closed {e:?}"));
        });
        within(conn.start()).await.unwrap();
        let id = conn.connection_id().unwrap();

        let total = 300;
        let mut stream = within(conn.stream::<i64>("Counter", (total, 1)))
            .await
            .unwrap();
        let mut items = Vec::new();
        let mut drops = 0;
        while let Some(item) = within(stream.next()).await {
            items.push(item.unwrap());
            if items.len() % 60 == 30 {
                within(conn.send("CloseMe", ("drop",))).await.unwrap();
                drops += 1;
            }
        }
        assert_eq!(drops, 5, "{l}");
        assert_eq!(
            items.len(),
            total as usize,
            "{l}: nothing lost or duplicated"
        );
        assert!(items.iter().copied().eq(0..total), "{l}: in order");
        assert_eq!(conn.connection_id(), Some(id), "{l}: the same connection");
        assert!(
            lifecycle.try_recv().is_err(),
            "{l}: no reconnecting, no close"
        );
        let sum: i64 = within(conn.invoke("Add", (2, 2))).await.unwrap();
        assert_eq!(sum, 4, "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn the_server_timeout_closes_a_connection_that_hears_nothing() {
    // The fixture pings every 15 s; a 600 ms server timeout fires long before. (Long polling
    // has no server timeout: its polls are the keep-alive.)
    for (transport, protocol) in COMBOS {
        if transport == TransportKind::LongPolling {
            continue;
        }
        let l = label(transport, protocol);
        let conn = builder(transport, protocol)
            .with_server_timeout(Duration::from_millis(600))
            .with_keep_alive_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let (tx, mut closed) = mpsc::unbounded();
        conn.on_close(move |e| {
            let _ = tx.unbounded_send(e.map(|e| e.to_string()));
        });
        within(conn.start()).await.unwrap();
        let close = within(closed.next()).await.unwrap().unwrap_or_default();
        assert_eq!(
            close, "Server timeout elapsed without receiving a message from the server.",
            "{l}"
        );
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

/// Sets the document's base URL with a `<base href>` element until dropped.
struct BaseHref(web_sys::Element);

impl BaseHref {
    fn set(href: &str) -> BaseHref {
        let document = web_sys::window().unwrap().document().unwrap();
        let base = document.create_element("base").unwrap();
        base.set_attribute("href", href).unwrap();
        document.head().unwrap().append_child(&base).unwrap();
        BaseHref(base)
    }
}

impl Drop for BaseHref {
    fn drop(&mut self) {
        self.0.remove();
    }
}

#[wasm_bindgen_test]
async fn a_relative_url_resolves_against_the_document() {
    // The test page is served by the test runner, not the fixture: a `<base>` element points
    // the document's base URL at the fixture, as a page served by the hub's own host would be.
    let _base = BaseHref::set(&format!("{}/app/", fixture()));
    let document = web_sys::window().unwrap().document().unwrap();
    assert_eq!(
        document.base_uri().unwrap().as_deref(),
        Some(format!("{}/app/", fixture()).as_str())
    );
    for (url, transport, protocol) in [
        ("/hubs/test", TransportKind::WebSockets, Protocol::Json),
        (
            "../hubs/test",
            TransportKind::ServerSentEvents,
            Protocol::Json,
        ),
        (
            "/hubs/test?from=relative",
            TransportKind::LongPolling,
            Protocol::MessagePack,
        ),
    ] {
        let l = format!("{url}: {}", label(transport, protocol));
        let conn = builder_for(url, transport, protocol).build().unwrap();
        within(conn.start()).await.unwrap();
        let sum: i64 = within(conn.invoke("Add", (1, 2))).await.unwrap();
        assert_eq!(sum, 3, "{l}");
        within(conn.stop()).await.unwrap();
    }
    // Scheme-relative too.
    let host = fixture().trim_start_matches("http:");
    let conn = builder_for(
        &format!("{host}/hubs/test"),
        TransportKind::WebSockets,
        Protocol::MessagePack,
    )
    .build()
    .unwrap();
    within(conn.start()).await.unwrap();
    within(conn.stop()).await.unwrap();
}

#[wasm_bindgen_test]
fn a_url_the_browser_cannot_resolve_is_a_config_error() {
    let error = HubConnectionBuilder::new("http://[not a host/hubs/test")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("Cannot resolve"), "{error}");
}

#[wasm_bindgen_test]
async fn a_non_ascii_hub_url_query_reaches_the_hub() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let url = format!("{}?name=Zoë Ångström&city=東京&emoji=🦀", hub_url());
        let conn = builder_for(&url, transport, protocol).build().unwrap();
        within(conn.start()).await.unwrap();
        let query: Value = within(conn.invoke("GetQuery", ())).await.unwrap();
        assert_eq!(query["name"], "Zoë Ångström", "{l}: {query}");
        assert_eq!(query["city"], "東京", "{l}: {query}");
        assert_eq!(query["emoji"], "🦀", "{l}: {query}");
        within(conn.stop()).await.unwrap();
    }
    // The same in a relative URL, with a non-ASCII path segment that `..` removes again.
    let _base = BaseHref::set(&format!("{}/", fixture()));
    let conn = builder_for(
        "hubs/ünïcode/../test?q=ü",
        TransportKind::WebSockets,
        Protocol::Json,
    )
    .build()
    .unwrap();
    within(conn.start()).await.unwrap();
    let query: Value = within(conn.invoke("GetQuery", ())).await.unwrap();
    assert_eq!(query["q"], "ü", "{query}");
    within(conn.stop()).await.unwrap();
}

#[wasm_bindgen_test]
async fn stop_during_start_settles_and_the_start_fails_as_stopped_during_negotiation() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(transport, protocol).build().unwrap();
        // `join` polls the start first: its command is queued before the stop's.
        let (started, stopped) =
            within(futures_util::future::join(conn.start(), conn.stop())).await;
        stopped.unwrap_or_else(|e| panic!("{l}: stop failed: {e}"));
        let error = started.expect_err("the start was stopped");
        assert_eq!(
            error.to_string(),
            "The connection was stopped during negotiation.",
            "{l}"
        );
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[wasm_bindgen_test]
async fn an_invoke_made_just_before_stop_is_cancelled_by_the_close() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(transport, protocol).await;
        let (invoked, stopped) = within(futures_util::future::join(
            conn.invoke::<u64>("Delay", (5000,)),
            conn.stop(),
        ))
        .await;
        stopped.unwrap();
        assert_eq!(
            invoked.unwrap_err().to_string(),
            "Invocation canceled due to the underlying connection being closed.",
            "{l}"
        );
    }
}

#[wasm_bindgen_test]
async fn an_upload_ended_with_an_error_fails_the_call_with_that_text() {
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(transport, protocol).await;
        let one = talkback_wasm::RawValue::encode(protocol, &1).unwrap();
        let items = futures_util::stream::iter(vec![Ok(one), Err("the upload failed".to_string())]);
        let error = within(conn.invoke_raw_with_uploads("UploadSum", Vec::new(), vec![items]))
            .await
            .unwrap_err();
        assert_eq!(error.server_message(), Some("the upload failed"), "{l}");
        within(conn.stop()).await.unwrap();
    }
}
