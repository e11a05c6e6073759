//! The connection's life against the in-process fixture: URLs, stop, keep-alive, and the
//! reconnect lifecycle when the server keeps refusing (checklist items named in each test).

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;
use talkback::{HubConnectionBuilder, Protocol, State, TransportKind, TransportSet};
use tokio::sync::mpsc;

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
        within(hub.server.wait_for_connection_gone(&id)).await;
        assert_eq!(conn.state(), State::Disconnected, "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_54_client_pings_keep_a_quiet_connection_alive_and_item_56_long_polling_sends_none() {
    let config = talkback_fixture::Config {
        // Ten ping intervals per timeout: a loaded CI machine may stall a task for a few hundred
        // milliseconds, and the test is about pings being sent at all.
        client_timeout: Duration::from_millis(1000),
        ..Default::default()
    };
    let hub = Hub::start_with(config).await;
    let mut conns = Vec::new();
    for (transport, protocol) in COMBOS {
        let conn = builder(&hub, transport, protocol)
            .with_keep_alive_interval(Duration::from_millis(100))
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        conns.push((transport, protocol, conn));
    }
    // Quiet for two client timeouts and more, measured by the pings themselves: a connection
    // that sent no pings would be closed by the server's client timeout before its twentieth.
    for (transport, protocol, conn) in &conns {
        if *transport == TransportKind::LongPolling {
            continue;
        }
        let l = label(*transport, *protocol);
        let id = conn.connection_id().unwrap();
        let info = within(
            hub.server
                .wait_for_connection(&id, |c| c.pings_received >= 20),
        )
        .await;
        assert!(info.is_some(), "{l}: the server dropped a pinging client");
    }
    for (transport, protocol, conn) in conns {
        let l = label(transport, protocol);
        assert_eq!(conn.state(), State::Connected, "{l}");
        if transport == TransportKind::LongPolling {
            let id = conn.connection_id().unwrap();
            let info = hub.server.connection_info(&id).expect("still connected");
            assert_eq!(
                info.pings_received, 0,
                "{l}: item 56, no pings over long polling"
            );
        }
        let sum: i64 = within(conn.invoke("Add", (1, 1))).await.unwrap();
        assert_eq!(sum, 2, "{l}");
        within(conn.stop()).await.unwrap();
    }
}

/// The connection's callbacks, in the order the client ran them.
fn record_callbacks(conn: &talkback::HubConnection) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let t = tx.clone();
    conn.on_reconnecting(move |_| {
        let _ = t.send("reconnecting".to_owned());
    });
    let t = tx.clone();
    conn.on_reconnected(move |_| {
        let _ = t.send("reconnected".to_owned());
    });
    conn.on_close(move |e| {
        let _ = tx.send(format!("closed {}", e.is_some()));
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_60_item_62_item_59_refused_reconnects_end_in_one_on_close_without_an_error() {
    let hub = Hub::start().await;
    let conn = builder(&hub, TransportKind::WebSockets, Protocol::Json)
        .with_automatic_reconnect_delays(vec![Duration::ZERO, Duration::from_millis(50)])
        .build()
        .unwrap();
    let mut log = record_callbacks(&conn);
    within(conn.start()).await.unwrap();
    hub.server
        .faults()
        .refuse_new_connections(Duration::from_secs(30));
    hub.drop_transport(&conn.connection_id().unwrap());
    assert_eq!(within(log.recv()).await.unwrap(), "reconnecting");
    assert_eq!(within(log.recv()).await.unwrap(), "closed false");
    assert_eq!(conn.state(), State::Disconnected);
    // Callbacks run in order on one queue: anything the first life still fired would come
    // before the callbacks of a second one.
    hub.server.faults().reset();
    within(conn.start()).await.unwrap();
    within(conn.stop()).await.unwrap();
    assert_eq!(within(log.recv()).await.unwrap(), "closed false");
    assert!(log.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_64_stop_during_a_reconnect_delay_closes_at_once() {
    let hub = Hub::start().await;
    let conn = builder(&hub, TransportKind::WebSockets, Protocol::Json)
        .with_automatic_reconnect_delays(vec![Duration::from_secs(60)])
        .build()
        .unwrap();
    let mut log = record_callbacks(&conn);
    within(conn.start()).await.unwrap();
    hub.drop_transport(&conn.connection_id().unwrap());
    assert_eq!(within(log.recv()).await.unwrap(), "reconnecting");
    assert_eq!(conn.state(), State::Reconnecting);
    // `within` is 10 s, far below the 60 s delay: the stop does not wait for it.
    within(conn.stop()).await.unwrap();
    assert_eq!(conn.state(), State::Disconnected);
    assert_eq!(
        within(log.recv()).await.unwrap(),
        "closed false",
        "on_close once, without an error"
    );
    assert!(log.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_83_stateful_reconnect_asks_for_handshake_version_2_only_over_websockets() {
    let hub = Hub::start().await;
    for transport in [
        TransportKind::WebSockets,
        TransportKind::LongPolling,
        TransportKind::ServerSentEvents,
    ] {
        let conn = builder(&hub, transport, Protocol::Json)
            .with_stateful_reconnect()
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let id = conn.connection_id().unwrap();
        let info = hub.server.connection_info(&id).expect("connected");
        assert_eq!(info.transport, Some(transport));
        let expected = if transport == TransportKind::WebSockets {
            2
        } else {
            1
        };
        assert_eq!(info.handshake_version, Some(expected), "{transport:?}");
        let sum: i64 = within(conn.invoke("Add", (2, 3))).await.unwrap();
        assert_eq!(sum, 5, "{transport:?}");
        within(conn.stop()).await.unwrap();
    }
}
