//! Connection loss against the in-process fixture: automatic reconnect, stateful reconnect,
//! server timeout, server Close messages.

mod common;

use common::*;
use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use talkback::{Protocol, State, TransportKind};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_63_reconnect_after_a_dropped_transport_fires_on_reconnected_and_rejoins_the_group() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(&hub, transport, protocol)
            .with_automatic_reconnect_delays(vec![Duration::ZERO, Duration::from_millis(100)])
            .build()
            .unwrap();
        let (events_tx, mut events) = mpsc::unbounded_channel::<String>();
        let tx = events_tx.clone();
        conn.on_reconnecting(move |e| {
            let _ = tx.send(format!("reconnecting: {e}"));
        });
        let rejoin = conn.clone();
        let tx = events_tx.clone();
        conn.on_reconnected(move |id| {
            let conn = rejoin.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                conn.invoke::<()>("JoinGroup", ("team",)).await.unwrap();
                let _ = tx.send(format!("rejoined as {}", id.unwrap_or_default()));
            });
        });
        let (gtx, mut group) = mpsc::unbounded_channel();
        conn.on("GroupMessage", move |(_g, text): (String, String)| {
            let _ = gtx.send(text);
        });
        within(conn.start()).await.unwrap();
        within(conn.invoke::<()>("JoinGroup", ("team",)))
            .await
            .unwrap();
        let first_id = conn.connection_id().unwrap();

        hub.drop_transport(&first_id);
        let reconnecting = within(events.recv()).await.unwrap();
        assert!(
            reconnecting.starts_with("reconnecting"),
            "{l}: {reconnecting}"
        );
        let rejoined = within(events.recv()).await.unwrap();
        assert!(rejoined.starts_with("rejoined as "), "{l}: {rejoined}");
        let second_id = conn.connection_id().unwrap();
        assert_ne!(first_id, second_id, "{l}: each reconnect negotiates again");
        assert!(rejoined.ends_with(&second_id), "{l}");
        assert_eq!(conn.state(), State::Connected, "{l}");

        let other = connect(&hub, transport, protocol).await;
        within(other.send("SendToGroup", ("team", "after")))
            .await
            .unwrap();
        assert_eq!(within(group.recv()).await.as_deref(), Some("after"), "{l}");
        within(other.stop()).await.unwrap();
        within(conn.stop()).await.unwrap();
        drop(conn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_66_a_lost_connection_without_reconnect_fails_pending_calls_and_fires_on_close() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let (ctx, mut closed) = mpsc::unbounded_channel();
        conn.on_close(move |e| {
            let _ = ctx.send(e);
        });
        let pending = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.invoke::<i64>("Delay", (5000,)).await })
        };
        let mut stream = within(conn.stream::<i64>("InfiniteCounter", (20,)))
            .await
            .unwrap();
        // The first item shows the stream is running on the server.
        assert_eq!(within(stream.next()).await.unwrap().unwrap(), 0, "{l}");
        hub.drop_transport(&conn.connection_id().unwrap());
        let error = within(pending).await.unwrap().unwrap_err();
        assert!(
            matches!(error, talkback::Error::Connection(_)),
            "{l}: {error}"
        );
        let items: Vec<_> = within(stream.collect::<Vec<_>>()).await;
        assert!(
            items.last().unwrap().is_err(),
            "{l}: the stream ends with an error"
        );
        let close = within(closed.recv()).await.unwrap();
        assert!(close.is_some(), "{l}: on_close gets the error");
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_53_server_timeout_closes_a_connection_that_hears_nothing() {
    let hub = Hub::start().await;
    hub.stop_pings();
    for (transport, protocol) in COMBOS {
        if transport == TransportKind::LongPolling {
            continue; // Long polling has no server timeout (item 56).
        }
        let l = label(transport, protocol);
        let conn = builder(&hub, transport, protocol)
            .with_server_timeout(Duration::from_millis(300))
            .with_keep_alive_interval(Duration::from_millis(100))
            .build()
            .unwrap();
        let (ctx, mut closed) = mpsc::unbounded_channel();
        conn.on_close(move |e| {
            let _ = ctx.send(e.map(|e| e.to_string()));
        });
        within(conn.start()).await.unwrap();
        let close = within(closed.recv()).await.unwrap().unwrap_or_default();
        assert_eq!(
            close, "Server timeout elapsed without receiving a message from the server.",
            "{l}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_65_a_server_close_without_allow_reconnect_ends_the_connection() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(&hub, transport, protocol)
            .with_automatic_reconnect_delays(vec![Duration::ZERO])
            .build()
            .unwrap();
        let reconnecting = Arc::new(AtomicUsize::new(0));
        let r = reconnecting.clone();
        conn.on_reconnecting(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let (ctx, mut closed) = mpsc::unbounded_channel();
        conn.on_close(move |e| {
            let _ = ctx.send(e.map(|e| e.to_string()));
        });
        within(conn.start()).await.unwrap();
        within(conn.send("CloseWithMessage", ("go away", false)))
            .await
            .unwrap();
        let close = within(closed.recv()).await.unwrap().unwrap_or_default();
        assert_eq!(close, "Server returned an error on close: go away", "{l}");
        assert_eq!(reconnecting.load(Ordering::SeqCst), 0, "{l}");
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_65_a_server_close_with_allow_reconnect_reconnects() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(&hub, transport, protocol)
            .with_automatic_reconnect_delays(vec![Duration::ZERO])
            .build()
            .unwrap();
        let (tx, mut events) = mpsc::unbounded_channel();
        let t = tx.clone();
        conn.on_reconnecting(move |e| {
            let _ = t.send(format!("reconnecting: {e}"));
        });
        conn.on_reconnected(move |_| {
            let _ = tx.send("reconnected".to_string());
        });
        within(conn.start()).await.unwrap();
        within(conn.send("CloseWithMessage", ("come back", true)))
            .await
            .unwrap();
        let first = within(events.recv()).await.unwrap();
        assert!(first.starts_with("reconnecting"), "{l}: {first}");
        assert_eq!(
            within(events.recv()).await.as_deref(),
            Some("reconnected"),
            "{l}"
        );
        let sum: i64 = within(conn.invoke("Add", (1, 2))).await.unwrap();
        assert_eq!(sum, 3, "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_88_stateful_reconnect_survives_100_websocket_drops_without_loss_or_duplicates() {
    let hub = Hub::start().await;
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let l = label(TransportKind::WebSockets, protocol);
        let conn = builder(&hub, TransportKind::WebSockets, protocol)
            .with_stateful_reconnect()
            .build()
            .unwrap();
        let lifecycle = Arc::new(Mutex::new(Vec::<String>::new()));
        let lc = lifecycle.clone();
        conn.on_reconnecting(move |e| lc.lock().unwrap().push(format!("reconnecting {e}")));
        let lc = lifecycle.clone();
        conn.on_close(move |e| lc.lock().unwrap().push(format!("closed {e:?}")));
        within(conn.start()).await.unwrap();
        let id = conn.connection_id().unwrap();
        let total = 10_000;
        let mut stream = within(conn.stream::<i64>("Counter", (total, 0)))
            .await
            .unwrap();
        let mut items = Vec::with_capacity(total as usize);
        let mut drops = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while let Some(item) = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap()
        {
            items.push(item.unwrap());
            if items.len() % 100 == 50 && drops < 100 {
                hub.drop_transport(&id);
                drops += 1;
            }
        }
        assert_eq!(drops, 100, "{l}");
        assert_eq!(
            items.len(),
            total as usize,
            "{l}: nothing lost, nothing duplicated"
        );
        assert!(items.iter().copied().eq(0..total), "{l}: in order");
        assert_eq!(
            conn.connection_id().as_deref(),
            Some(id.as_str()),
            "{l}: same connection"
        );
        assert!(
            lifecycle.lock().unwrap().is_empty(),
            "{l}: {:?}",
            lifecycle.lock().unwrap()
        );
        let sum: i64 = within(conn.invoke("Add", (2, 2))).await.unwrap();
        assert_eq!(sum, 4, "{l}");
        within(conn.stop()).await.unwrap();
    }
}
