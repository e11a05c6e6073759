//! The fault-injection admin endpoint (`/admin/...`) against raw peers over real loopback
//! sockets: every fault it offers changes what a client sees, and bad admin requests get clear
//! status codes.

mod kit;

use kit::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use talkback_core::protocol::HubMessage;
use talkback_fixture::{Config, Server};

/// One JSON hub-protocol client: negotiated, handshaken, Welcome eaten.
struct Client {
    peer: Peer,
    id: String,
}

impl Client {
    async fn connect(server: &Server) -> Client {
        let (peer, id) = Peer::connect(server, Protocol::Json).await;
        Client { peer, id }
    }

    /// The next hub message, Pings included; `None` once the socket ended.
    async fn next(&mut self) -> Option<HubMessage> {
        self.peer.next_any().await
    }

    /// The next hub message that is not a Ping.
    async fn next_non_ping(&mut self) -> Option<HubMessage> {
        self.peer.next().await
    }

    async fn invoke(&mut self, id: &str, target: &str, argument: impl serde::Serialize) {
        let argument = self.peer.arg(argument);
        self.peer.invoke(id, target, vec![argument]).await;
    }
}

/// Negotiates with version 1; returns the status and the body (Null unless JSON).
async fn negotiate(server: &Server) -> (u16, Value) {
    negotiate_status(server, "negotiateVersion=1").await
}

#[tokio::test]
async fn the_admin_endpoint_lists_live_connections_and_refuses_bad_requests() {
    let server = fixture(Config::default()).await;
    let peer = Client::connect(&server).await;
    let url = format!("{}/admin/connections?hub=test", server.url());
    let body = within(http().get(url).header("X-Talkback-Admin", "1").send())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listed: Vec<String> = serde_json::from_slice(&body).unwrap();
    assert_eq!(listed, vec![peer.id.clone()]);
    assert_eq!(server.connection_ids(Some("test")), listed);
    assert_eq!(admin(&server, "/admin/connections/nobody/drop").await, 404);
    let path = format!("/admin/connections/{}/explode", peer.id);
    assert_eq!(admin(&server, &path).await, 404, "an unknown action");
    let path = format!("/admin/connections/{}/drop-after", peer.id);
    assert_eq!(admin(&server, &path).await, 400, "drop-after without n");
    assert_eq!(admin(&server, "/admin/faults/refuse-transport").await, 400);
    assert_eq!(admin(&server, "/admin/faults/explode").await, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn drop_after_n_messages_ends_the_socket_without_a_close_message() {
    let server = fixture(Config::default()).await;
    let mut peer = Client::connect(&server).await;
    let path = format!("/admin/connections/{}/drop-after?n=2", peer.id);
    assert_eq!(admin(&server, &path).await, 204);
    peer.invoke("1", "Echo", "one").await;
    peer.invoke("2", "Echo", "two").await;
    for id in ["1", "2"] {
        let answer = peer.next_non_ping().await.expect("a completion");
        assert!(
            matches!(&answer, HubMessage::Completion(c) if c.invocation_id == id),
            "{answer:?}"
        );
    }
    assert_eq!(
        peer.next().await,
        None,
        "the socket ends after the second message, with no Close message"
    );
    within(server.wait_for_connection_gone(&peer.id)).await;
    assert!(server.connection_ids(None).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_delay_fault_holds_back_each_message_from_the_server() {
    let server = fixture(Config::default()).await;
    let mut peer = Client::connect(&server).await;
    let path = format!("/admin/connections/{}/delay?ms=300", peer.id);
    assert_eq!(admin(&server, &path).await, 204);
    let started = Instant::now();
    peer.invoke("1", "Echo", "late").await;
    let answer = peer.next_non_ping().await.expect("a completion");
    assert!(matches!(&answer, HubMessage::Completion(c) if c.invocation_id == "1"));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered after {:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stopped_pings_stay_silent_until_resumed() {
    let server = fixture(Config {
        keep_alive_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let mut peer = Client::connect(&server).await;
    assert_eq!(peer.next().await, Some(HubMessage::Ping), "pings at first");
    let path = format!("/admin/connections/{}/stop-pings", peer.id);
    assert_eq!(admin(&server, &path).await, 204);
    // A Ping already on its way may still arrive; after that, silence.
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let started = Instant::now();
            assert_eq!(peer.next().await, Some(HubMessage::Ping));
            if started.elapsed() > Duration::from_millis(50) {
                return started.elapsed();
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a Ping came after stop-pings: {quiet:?}");
    let path = format!("/admin/connections/{}/resume-pings", peer.id);
    assert_eq!(admin(&server, &path).await, 204);
    assert_eq!(peer.next().await, Some(HubMessage::Ping), "pings again");
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_transport_leaves_negotiate_or_gets_404_at_connect() {
    let server = fixture(Config::default()).await;
    let offered = |body: &Value| -> Vec<String> {
        body["availableTransports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["transport"].as_str().unwrap().to_owned())
            .collect()
    };
    let path = "/admin/faults/refuse-transport?transport=WebSockets&at=negotiate";
    assert_eq!(admin(&server, path).await, 204);
    let (_, body) = negotiate(&server).await;
    assert_eq!(offered(&body), ["ServerSentEvents", "LongPolling"]);
    let path = "/admin/faults/allow-transport?transport=WebSockets&at=negotiate";
    assert_eq!(admin(&server, path).await, 204);
    let path = "/admin/faults/refuse-transport?transport=WebSockets&at=connect";
    assert_eq!(admin(&server, path).await, 204);
    let (_, body) = negotiate(&server).await;
    assert_eq!(
        offered(&body),
        ["WebSockets", "ServerSentEvents", "LongPolling"],
        "still offered, refused only when used"
    );
    let token = body["connectionToken"].as_str().unwrap();
    let refused = within(tokio_tungstenite::connect_async(ws_url(
        &server,
        &format!("id={token}"),
    )))
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert_eq!(admin(&server, "/admin/faults/reset").await, 204);
    let (_, body) = negotiate(&server).await;
    let token = body["connectionToken"].as_str().unwrap();
    let (ws, _) = within(tokio_tungstenite::connect_async(ws_url(
        &server,
        &format!("id={token}"),
    )))
    .await
    .expect("accepted again after reset");
    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn refusing_new_connections_answers_503_for_the_period_only() {
    let server = fixture(Config::default()).await;
    let mut existing = Client::connect(&server).await;
    assert_eq!(admin(&server, "/admin/faults/refuse-new?ms=400").await, 204);
    let (status, _) = negotiate(&server).await;
    assert_eq!(status, 503);
    existing.invoke("1", "Echo", "still here").await;
    let answer = existing.next_non_ping().await.expect("a completion");
    assert!(
        matches!(&answer, HubMessage::Completion(c) if c.invocation_id == "1"),
        "live connections keep working: {answer:?}"
    );
    // Wait for the period's end itself (the instant the fixture refuses until), no margin.
    let until = server.faults().refusing_new_until().expect("refusing");
    tokio::time::sleep_until(until.into()).await;
    let (status, _) = negotiate(&server).await;
    assert_eq!(status, 200, "accepted again after the period");
    server.shutdown().await;
}
