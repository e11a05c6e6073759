//! The test kit shared by the fixture's integration tests: a fixture, raw HTTP and WebSocket
//! peers over real loopback sockets, and a time limit on every await.
//!
//! Each test file includes it with `mod kit;` and `use kit::*;` (which also brings the common
//! imports below); not every file uses every helper.
// Each test binary compiles its own copy of the kit and uses part of it, the re-exports too.
#![allow(dead_code, unreachable_pub, unused_imports)]

// What the test files use besides the kit's own helpers, so that each needs only `use kit::*;`.
pub use futures::{SinkExt, StreamExt};
pub use serde_json::{json, Value};
pub use std::time::Duration;
pub use talkback_core::protocol::{
    CancelInvocation, Completion, CompletionResult, Decoded, HubMessage, Invocation, Protocol,
    RawValue, StreamItem,
};
pub use talkback_fixture::{Config, Server};
pub use tokio_tungstenite::tungstenite::Message;

/// A client WebSocket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The longest any single step of a test may take.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("finished in time")
}

/// Starts a fixture with the test hubs.
pub async fn fixture(config: Config) -> Server {
    talkback_fixture::spawn(config)
        .await
        .expect("the fixture starts")
}

/// A plain HTTP client.
pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `POST /hubs/test/negotiate?{query}`: the JSON body of a 200 answer.
pub async fn negotiate(server: &Server, query: &str) -> Value {
    let (status, body) = negotiate_status(server, query).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `POST /hubs/test/negotiate?{query}`: the status and the body (Null unless JSON).
pub async fn negotiate_status(server: &Server, query: &str) -> (u16, Value) {
    let url = format!("{}/negotiate?{query}", server.hub_url("test"));
    let response = within(http().post(url).send()).await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

/// `POST {base}{path}`; returns the status code.
pub async fn admin(server: &Server, path: &str) -> u16 {
    let url = format!("{}{path}", server.url());
    within(http().post(url).header("X-Talkback-Admin", "1").send())
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `ws://` URL of the test hub with `query`.
pub fn ws_url(server: &Server, query: &str) -> String {
    format!("{}?{query}", server.hub_url("test")).replacen("http", "ws", 1)
}

/// The `http://` URL of the test hub for the connection `token`.
pub fn http_url(server: &Server, token: &str) -> String {
    format!("{}?id={token}", server.hub_url("test"))
}

/// Opens a WebSocket.
pub async fn open(url: &str) -> Ws {
    within(tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .0
}

/// Reads frames until one holds data; returns its bytes (`None` once the socket ended).
pub async fn read(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(t))) => return Some(t.as_bytes().to_vec()),
            Some(Ok(Message::Binary(b))) => return Some(b.to_vec()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// The value of a Completion with a result.
pub fn completion_value(message: &HubMessage) -> Option<Value> {
    match message {
        HubMessage::Completion(Completion {
            result: CompletionResult::Value(v),
            ..
        }) => v.decode().ok(),
        _ => None,
    }
}

/// A hub-protocol peer over one WebSocket.
pub struct Peer {
    pub ws: Ws,
    pub protocol: Protocol,
    pub framer: talkback_core::protocol::Framer,
    pub pending: std::collections::VecDeque<HubMessage>,
}

impl Peer {
    /// Negotiates, opens the WebSocket, handshakes (version 1) and eats the Welcome; returns
    /// the peer and its connection id.
    pub async fn connect(server: &Server, protocol: Protocol) -> (Peer, String) {
        let negotiation = negotiate(server, "negotiateVersion=1").await;
        let token = negotiation["connectionToken"].as_str().unwrap().to_owned();
        let id = negotiation["connectionId"].as_str().unwrap().to_owned();
        let mut peer = Peer::handshake(
            open(&ws_url(server, &format!("id={token}"))).await,
            protocol,
            1,
        )
        .await;
        let welcome = peer.next().await.unwrap();
        assert!(matches!(welcome, HubMessage::Invocation(ref i) if i.target == "Welcome"));
        (peer, id)
    }

    /// Sends the handshake request on `ws` and checks the answer is exactly `{}`.
    pub async fn handshake(mut ws: Ws, protocol: Protocol, version: u32) -> Peer {
        let request = format!(
            "{{\"protocol\":\"{}\",\"version\":{version}}}\x1e",
            protocol.name()
        );
        within(ws.send(Message::text(request))).await.unwrap();
        let response = read(&mut ws).await.unwrap();
        assert!(
            response.starts_with(b"{}\x1e"),
            "{:?}",
            String::from_utf8_lossy(&response)
        );
        let mut peer = Peer::raw(ws, protocol);
        peer.framer.push(&response[3..]);
        peer
    }

    /// A peer on a socket whose handshake is done (or not needed, as after a re-attach).
    pub fn raw(ws: Ws, protocol: Protocol) -> Peer {
        Peer {
            ws,
            protocol,
            framer: protocol.framer(1 << 20),
            pending: Default::default(),
        }
    }

    /// Sends one hub message in the peer's protocol.
    pub async fn send(&mut self, message: HubMessage) {
        let mut bytes = Vec::new();
        self.protocol.encode(&message, &mut bytes);
        let frame = match self.protocol {
            Protocol::Json => Message::text(String::from_utf8(bytes).unwrap()),
            Protocol::MessagePack => Message::binary(bytes),
        };
        within(self.ws.send(frame)).await.unwrap();
    }

    /// The next hub message, Pings included; `None` when the socket closed.
    pub async fn next_any(&mut self) -> Option<HubMessage> {
        loop {
            while let Some(record) = self.framer.next_record().unwrap() {
                if let Decoded::Message(m) = self.protocol.decode(&record).unwrap() {
                    self.pending.push_back(m);
                }
            }
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            let bytes = read(&mut self.ws).await?;
            self.framer.push(&bytes);
        }
    }

    /// The next message that is not a Ping; `None` when the socket closed.
    pub async fn next(&mut self) -> Option<HubMessage> {
        loop {
            match self.next_any().await? {
                HubMessage::Ping => {}
                message => return Some(message),
            }
        }
    }

    /// Encodes `value` in the peer's protocol.
    pub fn arg<T: serde::Serialize>(&self, value: T) -> RawValue {
        RawValue::encode(self.protocol, &value).unwrap()
    }

    /// Sends a blocking Invocation.
    pub async fn invoke(&mut self, id: &str, target: &str, arguments: Vec<RawValue>) {
        self.send(HubMessage::Invocation(Invocation {
            invocation_id: Some(id.into()),
            target: target.into(),
            arguments,
            stream_ids: None,
            headers: Default::default(),
        }))
        .await;
    }
}

/// A long-polling connection after negotiate, the first poll and the handshake POST: returns
/// the connection's URL (with `id=`) and its public id.
pub async fn long_polling(server: &Server, version: u32) -> (String, String) {
    let body = negotiate(server, "negotiateVersion=1").await;
    let url = http_url(server, body["connectionToken"].as_str().unwrap());
    let first = within(http().get(&url).send()).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.unwrap().len(), 0);
    let handshake = format!("{{\"protocol\":\"json\",\"version\":{version}}}\x1e");
    let post = within(http().post(&url).body(handshake).send())
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    (url, body["connectionId"].as_str().unwrap().to_owned())
}
