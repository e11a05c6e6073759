//! The fault-injection admin endpoint (`/admin/...`) against raw peers over real loopback
//! sockets: every fault it offers changes what a client sees, and bad admin requests get clear
//! status codes.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::{Duration, Instant};
use talkback_core::protocol::{Decoded, HubMessage, Invocation, Protocol, RawValue};
use talkback_fixture::{Config, Server};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const LIMIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("finished in time")
}

async fn fixture(config: Config) -> Server {
    talkback_fixture::spawn(config)
        .await
        .expect("the fixture starts")
}

/// `POST {base}{path}`; returns the status code.
async fn admin(server: &Server, path: &str) -> u16 {
    let url = format!("{}{path}", server.url());
    within(reqwest::Client::new().post(url).send())
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Negotiates with version 1; returns the status and the body (Null unless JSON).
async fn negotiate(server: &Server) -> (u16, Value) {
    let url = format!("{}/negotiate?negotiateVersion=1", server.hub_url("test"));
    let response = within(reqwest::Client::new().post(url).send())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

fn ws_url(server: &Server, token: &str) -> String {
    format!("{}?id={token}", server.hub_url("test")).replacen("http", "ws", 1)
}

/// One JSON hub-protocol peer: negotiated, handshaken, Welcome eaten.
struct Peer {
    ws: Ws,
    framer: talkback_core::protocol::Framer,
    id: String,
}

impl Peer {
    async fn connect(server: &Server) -> Peer {
        let (status, body) = negotiate(server).await;
        assert_eq!(status, 200, "{body}");
        let token = body["connectionToken"].as_str().unwrap();
        let (mut ws, _) = within(tokio_tungstenite::connect_async(ws_url(server, token)))
            .await
            .unwrap();
        within(ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")))
            .await
            .unwrap();
        let mut peer = Peer {
            ws,
            framer: Protocol::Json.framer(1 << 20),
            id: body["connectionId"].as_str().unwrap().to_owned(),
        };
        let handshake = peer.next_raw().await.expect("a handshake response");
        assert_eq!(handshake, HubRecord::Text("{}".into()));
        let welcome = peer.next().await.expect("the Welcome");
        assert!(matches!(welcome, HubMessage::Invocation(ref i) if i.target == "Welcome"));
        peer
    }

    /// The next record (the handshake response as text, then hub messages); `None` once the
    /// socket ended.
    async fn next_raw(&mut self) -> Option<HubRecord> {
        loop {
            if let Some(record) = self.framer.next_record().unwrap() {
                return Some(match Protocol::Json.decode(&record) {
                    Ok(Decoded::Message(m)) => HubRecord::Message(m),
                    _ => HubRecord::Text(String::from_utf8_lossy(&record).into_owned()),
                });
            }
            match within(self.ws.next()).await {
                Some(Ok(Message::Text(t))) => self.framer.push(t.as_bytes()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next hub message, Pings included; `None` once the socket ended.
    async fn next(&mut self) -> Option<HubMessage> {
        match self.next_raw().await? {
            HubRecord::Message(m) => Some(m),
            HubRecord::Text(t) => panic!("not a hub message: {t:?}"),
        }
    }

    /// The next hub message that is not a Ping.
    async fn next_non_ping(&mut self) -> Option<HubMessage> {
        loop {
            match self.next().await? {
                HubMessage::Ping => {}
                m => return Some(m),
            }
        }
    }

    async fn invoke(&mut self, id: &str, target: &str, argument: impl serde::Serialize) {
        let message = HubMessage::Invocation(Invocation {
            invocation_id: Some(id.into()),
            target: target.into(),
            arguments: vec![RawValue::encode(Protocol::Json, &argument).unwrap()],
            stream_ids: None,
            headers: Default::default(),
        });
        let mut bytes = Vec::new();
        Protocol::Json.encode(&message, &mut bytes);
        within(
            self.ws
                .send(Message::text(String::from_utf8(bytes).unwrap())),
        )
        .await
        .unwrap();
    }
}

#[derive(Debug, PartialEq)]
enum HubRecord {
    Text(String),
    Message(HubMessage),
}

#[tokio::test]
async fn the_admin_endpoint_lists_live_connections_and_refuses_bad_requests() {
    let server = fixture(Config::default()).await;
    let peer = Peer::connect(&server).await;
    let url = format!("{}/admin/connections?hub=test", server.url());
    let body = within(reqwest::get(url))
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
    let mut peer = Peer::connect(&server).await;
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
    within(async {
        while !server.connection_ids(None).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_delay_fault_holds_back_each_message_from_the_server() {
    let server = fixture(Config::default()).await;
    let mut peer = Peer::connect(&server).await;
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
    let mut peer = Peer::connect(&server).await;
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
    let refused = within(tokio_tungstenite::connect_async(ws_url(&server, token))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert_eq!(admin(&server, "/admin/faults/reset").await, 204);
    let (_, body) = negotiate(&server).await;
    let token = body["connectionToken"].as_str().unwrap();
    let (ws, _) = within(tokio_tungstenite::connect_async(ws_url(&server, token)))
        .await
        .expect("accepted again after reset");
    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn refusing_new_connections_answers_503_for_the_period_only() {
    let server = fixture(Config::default()).await;
    let mut existing = Peer::connect(&server).await;
    assert_eq!(admin(&server, "/admin/faults/refuse-new?ms=400").await, 204);
    let (status, _) = negotiate(&server).await;
    assert_eq!(status, 503);
    existing.invoke("1", "Echo", "still here").await;
    let answer = existing.next_non_ping().await.expect("a completion");
    assert!(
        matches!(&answer, HubMessage::Completion(c) if c.invocation_id == "1"),
        "live connections keep working: {answer:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = negotiate(&server).await;
    assert_eq!(status, 200, "accepted again after the period");
    server.shutdown().await;
}
