//! The connection's life against the in-process fixture: URLs, stop, keep-alive, and the
//! reconnect lifecycle when the server keeps refusing (checklist items named in each test).

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use talkback::{HubConnectionBuilder, Protocol, State, TransportKind, TransportSet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_19_a_base_url_with_a_trailing_slash_and_a_query_connects_and_keeps_the_query() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let url = format!("{}/?tenant=blue&negotiateVersion=1", hub.url());
        let conn = HubConnectionBuilder::new(url)
            .with_transports(TransportSet::only(transport))
            .with_protocol(protocol)
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let query: HashMap<String, String> = within(conn.invoke("GetQuery", ())).await.unwrap();
        assert_eq!(
            query.get("tenant").map(String::as_str),
            Some("blue"),
            "{l}: {query:?}"
        );
        assert!(
            query.contains_key("id"),
            "{l}: item 30, the token goes in id: {query:?}"
        );
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_45_stop_ends_the_connection_on_the_server_on_every_transport() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let id = conn.connection_id().unwrap();
        assert!(hub.server.connection_ids(Some("test")).contains(&id), "{l}");
        within(conn.stop()).await.unwrap();
        eventually(&format!("{l}: the server forgets the connection"), || {
            !hub.server.connection_ids(Some("test")).contains(&id)
        })
        .await;
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_54_client_pings_keep_a_quiet_connection_alive_and_item_56_long_polling_needs_none() {
    let config = talkback_fixture::Config {
        // Ten ping intervals per timeout: a loaded CI machine may stall a task for a few hundred
        // milliseconds, and the test is about pings being sent at all.
        client_timeout: Duration::from_millis(1000),
        ..Default::default()
    };
    let hub = Hub::start_with(config).await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(&hub, transport, protocol)
            .with_keep_alive_interval(Duration::from_millis(100))
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        // Quiet for two client timeouts: only pings (none over long polling) keep it.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(conn.state(), State::Connected, "{l}");
        let sum: i64 = within(conn.invoke("Add", (1, 1))).await.unwrap();
        assert_eq!(sum, 2, "{l}");
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_60_item_62_item_59_refused_reconnects_end_in_one_on_close_without_an_error() {
    let hub = Hub::start().await;
    let conn = builder(&hub, TransportKind::WebSockets, Protocol::Json)
        .with_automatic_reconnect_delays(vec![Duration::ZERO, Duration::from_millis(50)])
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    conn.on_reconnecting(move |_| l.lock().unwrap().push("reconnecting".into()));
    let l = log.clone();
    conn.on_reconnected(move |_| l.lock().unwrap().push("reconnected".into()));
    let l = log.clone();
    conn.on_close(move |e| l.lock().unwrap().push(format!("closed {}", e.is_some())));
    within(conn.start()).await.unwrap();
    hub.server
        .faults()
        .refuse_new_connections(Duration::from_secs(30));
    hub.drop_transport(&conn.connection_id().unwrap());
    eventually("on_close", || {
        log.lock().unwrap().iter().any(|e| e.starts_with("closed"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*log.lock().unwrap(), vec!["reconnecting", "closed false"]);
    assert_eq!(conn.state(), State::Disconnected);
    hub.server.faults().reset();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_64_stop_during_a_reconnect_delay_closes_at_once() {
    let hub = Hub::start().await;
    let conn = builder(&hub, TransportKind::WebSockets, Protocol::Json)
        .with_automatic_reconnect_delays(vec![Duration::from_secs(60)])
        .build()
        .unwrap();
    let closed = Arc::new(Mutex::new(Vec::new()));
    let c = closed.clone();
    conn.on_close(move |e| c.lock().unwrap().push(e.is_some()));
    within(conn.start()).await.unwrap();
    hub.drop_transport(&conn.connection_id().unwrap());
    eventually("reconnecting", || conn.state() == State::Reconnecting).await;
    within(conn.stop()).await.unwrap();
    assert_eq!(conn.state(), State::Disconnected);
    eventually("on_close", || !closed.lock().unwrap().is_empty()).await;
    assert_eq!(
        *closed.lock().unwrap(),
        vec![false],
        "on_close once, without an error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_83_stateful_reconnect_is_only_used_over_websockets() {
    let hub = Hub::start().await;
    for transport in [TransportKind::LongPolling, TransportKind::ServerSentEvents] {
        let conn = builder(&hub, transport, Protocol::Json)
            .with_stateful_reconnect()
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let sum: i64 = within(conn.invoke("Add", (2, 3))).await.unwrap();
        assert_eq!(
            sum, 5,
            "{transport:?}: version 1 handshake, plain connection"
        );
        within(conn.stop()).await.unwrap();
    }
}
