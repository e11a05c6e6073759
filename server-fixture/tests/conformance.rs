//! The fixture against raw peers over real loopback sockets (reqwest for HTTP, tokio-tungstenite
//! for WebSockets): one test per `[server]` item of the checklist in `protocol.md` section 5.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use talkback_core::protocol::{
    CancelInvocation, Completion, CompletionResult, Decoded, HubMessage, Invocation, Protocol,
    RawValue, StreamItem,
};
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

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn negotiate(server: &Server, query: &str) -> Value {
    let url = format!("{}/negotiate?{query}", server.hub_url("test"));
    let response = within(http().post(url).send()).await.unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

fn ws_url(server: &Server, query: &str) -> String {
    format!("{}?{query}", server.hub_url("test")).replacen("http", "ws", 1)
}

async fn open(url: &str) -> Ws {
    within(tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .0
}

/// Reads frames until one holds data; returns its bytes.
async fn read(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        match within(ws.next()).await {
            Some(Ok(Message::Text(t))) => return Some(t.as_bytes().to_vec()),
            Some(Ok(Message::Binary(b))) => return Some(b.to_vec()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// A hub-protocol peer over one WebSocket.
struct Peer {
    ws: Ws,
    protocol: Protocol,
    framer: talkback_core::protocol::Framer,
    pending: Vec<HubMessage>,
}

impl Peer {
    /// Negotiates, opens the WebSocket, handshakes and eats the Welcome.
    async fn connect(server: &Server, protocol: Protocol) -> (Peer, String) {
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

    async fn handshake(mut ws: Ws, protocol: Protocol, version: u32) -> Peer {
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
        let mut peer = Peer {
            ws,
            protocol,
            framer: protocol.framer(1 << 20),
            pending: Vec::new(),
        };
        peer.framer.push(&response[3..]);
        peer
    }

    async fn send(&mut self, message: HubMessage) {
        let mut bytes = Vec::new();
        self.protocol.encode(&message, &mut bytes);
        let frame = match self.protocol {
            Protocol::Json => Message::text(String::from_utf8(bytes).unwrap()),
            Protocol::MessagePack => Message::binary(bytes),
        };
        within(self.ws.send(frame)).await.unwrap();
    }

    /// The next message that is not a Ping; `None` when the socket closed.
    async fn next(&mut self) -> Option<HubMessage> {
        loop {
            while let Some(record) = self.framer.next_record().unwrap() {
                if let Decoded::Message(m) = self.protocol.decode(&record).unwrap() {
                    self.pending.push(m);
                }
            }
            if let Some(pos) = self.pending.iter().position(|m| *m != HubMessage::Ping) {
                self.pending.drain(..pos);
                return Some(self.pending.remove(0));
            }
            self.pending.clear();
            let bytes = read(&mut self.ws).await?;
            self.framer.push(&bytes);
        }
    }

    fn arg<T: serde::Serialize>(&self, value: T) -> RawValue {
        RawValue::encode(self.protocol, &value).unwrap()
    }

    async fn invoke(&mut self, id: &str, target: &str, arguments: Vec<RawValue>) {
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

fn completion_value(message: &HubMessage) -> Option<Value> {
    match message {
        HubMessage::Completion(Completion {
            result: CompletionResult::Value(v),
            ..
        }) => v.decode().ok(),
        _ => None,
    }
}

#[tokio::test]
async fn item_05_a_good_handshake_gets_exactly_empty_braces_and_a_bad_protocol_an_error_then_close()
{
    let server = fixture(Config::default()).await;
    let mut ws = open(&ws_url(&server, "")).await;
    within(ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")))
        .await
        .unwrap();
    assert_eq!(read(&mut ws).await.unwrap()[..3], b"{}\x1e"[..]);

    let mut ws = open(&ws_url(&server, "")).await;
    within(ws.send(Message::text("{\"protocol\":\"xml\",\"version\":1}\x1e")))
        .await
        .unwrap();
    assert_eq!(
        read(&mut ws).await.unwrap(),
        b"{\"error\":\"The protocol 'xml' is not supported.\"}\x1e"
    );
    assert_eq!(read(&mut ws).await, None, "then the connection closes");
    server.shutdown().await;
}

#[tokio::test]
async fn item_06_messagepack_over_sse_is_refused_at_handshake() {
    let server = fixture(Config::default()).await;
    let negotiation = negotiate(&server, "negotiateVersion=1").await;
    let url = format!(
        "{}?id={}",
        server.hub_url("test"),
        negotiation["connectionToken"].as_str().unwrap()
    );
    let mut sse = within(
        http()
            .get(&url)
            .header("Accept", "text/event-stream")
            .send(),
    )
    .await
    .unwrap();
    within(
        http()
            .post(&url)
            .body("{\"protocol\":\"messagepack\",\"version\":1}\x1e")
            .send(),
    )
    .await
    .unwrap();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = within(sse.chunk()).await {
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format."), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn item_07_no_handshake_in_time_or_a_non_handshake_first_message_ends_the_connection() {
    let config = Config {
        handshake_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let server = fixture(config).await;
    let mut ws = open(&ws_url(&server, "")).await;
    let response = read(&mut ws).await.unwrap();
    assert_eq!(response, b"{\"error\":\"Handshake was canceled.\"}\x1e");
    assert_eq!(read(&mut ws).await, None);

    let mut ws = open(&ws_url(&server, "")).await;
    within(ws.send(Message::text("{\"type\":6}\x1e")))
        .await
        .unwrap();
    let response = String::from_utf8(read(&mut ws).await.unwrap()).unwrap();
    assert!(
        response.contains("Missing required property 'protocol'"),
        "{response}"
    );
    assert_eq!(read(&mut ws).await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn item_20_negotiate_v1_returns_an_id_a_distinct_token_and_transports_in_order() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "negotiateVersion=1").await;
    assert_eq!(body["negotiateVersion"], 1);
    assert_ne!(body["connectionId"], body["connectionToken"]);
    let names: Vec<&str> = body["availableTransports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transport"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["WebSockets", "ServerSentEvents", "LongPolling"]);
    assert_eq!(
        body["availableTransports"][1]["transferFormats"],
        json!(["Text"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_21_negotiate_v0_has_no_token_and_the_id_connects() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "").await;
    assert!(body.get("connectionToken").is_none(), "{body}");
    let id = body["connectionId"].as_str().unwrap();
    let mut peer = Peer::handshake(
        open(&ws_url(&server, &format!("id={id}"))).await,
        Protocol::Json,
        1,
    )
    .await;
    assert!(matches!(peer.next().await, Some(HubMessage::Invocation(i)) if i.target == "Welcome"));
    server.shutdown().await;
}

#[tokio::test]
async fn item_22_version_errors_come_with_status_200_and_non_post_gets_405() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "negotiateVersion=one").await;
    assert_eq!(
        body,
        json!({"error": "The client requested a non-integer protocol version."})
    );
    let url = format!("{}/negotiate", server.hub_url("test"));
    let response = within(http().get(&url).send()).await.unwrap();
    assert_eq!(response.status(), 405);
    server.shutdown().await;
}

#[tokio::test]
async fn item_36_the_authorization_header_wins_over_the_access_token_query() {
    let server = fixture(Config::default()).await;
    let url = format!(
        "{}/negotiate?negotiateVersion=1&access_token=query-user",
        server.hub_url("test")
    );
    let response = within(http().post(&url).bearer_auth("header-user").send())
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    let mut peer = Peer::handshake(
        open(&ws_url(&server, &format!("id={token}"))).await,
        Protocol::Json,
        1,
    )
    .await;
    peer.next().await;
    peer.invoke("1", "GetUserId", vec![]).await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!("header-user"))
    );

    // Only the query (a browser WebSocket): the query is used.
    let mut ws = open(&ws_url(&server, "access_token=query-user")).await;
    within(ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")))
        .await
        .unwrap();
    let mut peer = Peer {
        framer: Protocol::Json.framer(1 << 20),
        ws,
        protocol: Protocol::Json,
        pending: Vec::new(),
    };
    let first = read(&mut peer.ws).await.unwrap();
    peer.framer.push(&first[3..]);
    peer.invoke("1", "GetUserId", vec![]).await;
    let mut answer = None;
    while answer.is_none() {
        answer = completion_value(&peer.next().await.unwrap());
    }
    assert_eq!(answer, Some(json!("query-user")));
    server.shutdown().await;
}

#[tokio::test]
async fn item_37_unknown_ids_get_404_a_second_socket_409_and_no_id_a_new_connection() {
    let server = fixture(Config::default()).await;
    let unknown = tokio_tungstenite::connect_async(ws_url(&server, "id=nope")).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = unknown else {
        panic!("an unknown id is refused")
    };
    assert_eq!(response.status(), 404);

    let body = negotiate(&server, "negotiateVersion=1").await;
    let url = ws_url(
        &server,
        &format!("id={}", body["connectionToken"].as_str().unwrap()),
    );
    let _first = Peer::handshake(open(&url).await, Protocol::Json, 1).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) =
        tokio_tungstenite::connect_async(&url).await
    else {
        panic!("a second socket is refused")
    };
    assert_eq!(response.status(), 409);

    let mut fresh = Peer::handshake(open(&ws_url(&server, "")).await, Protocol::Json, 1).await;
    assert!(matches!(fresh.next().await, Some(HubMessage::Invocation(i)) if i.target == "Welcome"));
    server.shutdown().await;
}

#[tokio::test]
async fn item_38_sse_sends_its_headers_a_comment_first_and_data_lines() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "negotiateVersion=1").await;
    let url = format!(
        "{}?id={}",
        server.hub_url("test"),
        body["connectionToken"].as_str().unwrap()
    );
    let mut sse = within(
        http()
            .get(&url)
            .header("Accept", "text/event-stream")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    assert_eq!(sse.headers()["cache-control"], "no-cache,no-store");
    let first = within(sse.chunk()).await.unwrap().unwrap();
    assert_eq!(&first[..], b":\r\n");
    within(
        http()
            .post(&url)
            .body("{\"protocol\":\"json\",\"version\":1}\x1e")
            .send(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    while !text.contains("Welcome") {
        let chunk = within(sse.chunk()).await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("data: {}\x1e\r\n\r\n"), "{text:?}");
    assert!(
        text.contains("data: {\"type\":1,\"target\":\"Welcome\""),
        "{text:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_39_sse_without_an_id_gets_400_and_with_an_unknown_id_404() {
    let server = fixture(Config::default()).await;
    let get = |query: &'static str| {
        let url = format!("{}{query}", server.hub_url("test"));
        async move {
            within(http().get(url).header("Accept", "text/event-stream").send())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get("").await, 400);
    assert_eq!(get("?id=unknown").await, 404);
    server.shutdown().await;
}

/// Negotiates a long-polling connection, does the first poll and the handshake.
async fn long_polling(server: &Server) -> String {
    let body = negotiate(server, "negotiateVersion=1").await;
    let url = format!(
        "{}?id={}",
        server.hub_url("test"),
        body["connectionToken"].as_str().unwrap()
    );
    let first = within(http().get(&url).send()).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.unwrap().len(), 0);
    let post = within(
        http()
            .post(&url)
            .body("{\"protocol\":\"json\",\"version\":1}\x1e")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(post.status(), 200);
    url
}

#[tokio::test]
async fn item_41_the_first_long_poll_returns_at_once_without_data() {
    let server = fixture(Config::default()).await;
    let started = std::time::Instant::now();
    long_polling(&server).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    server.shutdown().await;
}

#[tokio::test]
async fn item_42_polls_batch_what_is_queued_and_answer_empty_after_the_poll_timeout() {
    let config = Config {
        long_poll_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let server = fixture(config).await;
    let url = long_polling(&server).await;
    let poll = within(http().get(&url).send()).await.unwrap();
    assert_eq!(poll.headers()["content-type"], "application/octet-stream");
    let length: usize = poll.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = poll.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(
        body.starts_with(b"{}\x1e{\"type\":1,\"target\":\"Welcome\""),
        "handshake and Welcome in one body"
    );
    let empty = within(http().get(&url).send()).await.unwrap();
    assert_eq!(empty.status(), 200);
    assert!(
        empty.bytes().await.unwrap().is_empty(),
        "the poll timed out empty"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_43_a_newer_poll_ends_the_older_with_204_and_polls_after_close_get_204() {
    let server = fixture(Config::default()).await;
    let url = long_polling(&server).await;
    within(http().get(&url).send()).await.unwrap(); // handshake response and Welcome
    let older = tokio::spawn({
        let url = url.clone();
        async move { http().get(url).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let newer = tokio::spawn({
        let url = url.clone();
        async move { http().get(url).send().await.unwrap().status() }
    });
    assert_eq!(within(older).await.unwrap(), 204);
    within(http().delete(&url).send()).await.unwrap();
    assert_eq!(within(newer).await.unwrap(), 204);
    assert_eq!(within(http().get(&url).send()).await.unwrap().status(), 204);
    server.shutdown().await;
}

#[tokio::test]
async fn item_46_delete_answers_202_ends_the_poll_and_is_refused_for_websockets() {
    let server = fixture(Config::default()).await;
    let url = long_polling(&server).await;
    within(http().get(&url).send()).await.unwrap();
    let poll = tokio::spawn({
        let url = url.clone();
        async move { http().get(url).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        within(http().delete(&url).send()).await.unwrap().status(),
        202
    );
    assert_eq!(within(poll).await.unwrap(), 204);

    let body = negotiate(&server, "negotiateVersion=1").await;
    let token = body["connectionToken"].as_str().unwrap();
    let _peer = Peer::handshake(
        open(&ws_url(&server, &format!("id={token}"))).await,
        Protocol::Json,
        1,
    )
    .await;
    let url = format!("{}?id={token}", server.hub_url("test"));
    let response = within(http().delete(&url).send()).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        "Cannot terminate this connection using the DELETE endpoint."
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_47_post_send_status_codes() {
    let server = fixture(Config::default()).await;
    let url = long_polling(&server).await;
    let ping = "{\"type\":6}\x1e";
    assert_eq!(
        within(http().post(&url).body(ping).send())
            .await
            .unwrap()
            .status(),
        200
    );
    let base = server.hub_url("test");
    assert_eq!(
        within(http().post(&base).body(ping).send())
            .await
            .unwrap()
            .status(),
        400
    );
    let unknown = format!("{base}?id=unknown");
    assert_eq!(
        within(http().post(&unknown).body(ping).send())
            .await
            .unwrap()
            .status(),
        404
    );
    let body = negotiate(&server, "negotiateVersion=1").await;
    let token = body["connectionToken"].as_str().unwrap();
    let _peer = Peer::handshake(
        open(&ws_url(&server, &format!("id={token}"))).await,
        Protocol::Json,
        1,
    )
    .await;
    let ws_conn = format!("{base}?id={token}");
    assert_eq!(
        within(http().post(&ws_conn).body(ping).send())
            .await
            .unwrap()
            .status(),
        405
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_51_cors_preflight_reflects_the_origin_with_credentials_and_signalr_headers() {
    let server = fixture(Config::default()).await;
    let response = within(
        http()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/negotiate", server.hub_url("test")),
            )
            .header("Origin", "http://app.example")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,x-signalr-user-agent,x-requested-with",
            )
            .send(),
    )
    .await
    .unwrap();
    assert!(response.status().is_success());
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "http://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["authorization", "x-signalr-user-agent", "x-requested-with"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_55_the_server_pings_after_its_interval_and_closes_silent_clients() {
    let config = Config {
        keep_alive_interval: Duration::from_millis(200),
        client_timeout: Duration::from_millis(800),
        ..Default::default()
    };
    let server = fixture(config).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    let bytes = read(&mut peer.ws).await.unwrap();
    assert_eq!(
        bytes, b"{\"type\":6}\x1e",
        "a ping while idle, before the timeout"
    );
    // The client stays silent: the server closes it with a Close message.
    let mut close = None;
    while let Some(bytes) = read(&mut peer.ws).await {
        if bytes.starts_with(b"{\"type\":7") {
            close = Some(String::from_utf8(bytes).unwrap());
        }
    }
    assert_eq!(close.as_deref(), Some("{\"type\":7,\"error\":\"Connection closed with an error.\",\"allowReconnect\":true}\x1e"));
    server.shutdown().await;
}

#[tokio::test]
async fn item_72_cancel_stops_a_stream_with_a_completion_and_unknown_ids_are_ignored() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::MessagePack).await;
    peer.send(HubMessage::CancelInvocation(CancelInvocation {
        invocation_id: "nothing".into(),
        headers: Default::default(),
    }))
    .await;
    let delay = peer.arg(5);
    peer.send(HubMessage::StreamInvocation(Invocation {
        invocation_id: Some("s".into()),
        target: "InfiniteCounter".into(),
        arguments: vec![delay],
        stream_ids: None,
        headers: Default::default(),
    }))
    .await;
    assert!(matches!(peer.next().await, Some(HubMessage::StreamItem(_))));
    peer.send(HubMessage::CancelInvocation(CancelInvocation {
        invocation_id: "s".into(),
        headers: Default::default(),
    }))
    .await;
    loop {
        match peer.next().await.unwrap() {
            HubMessage::StreamItem(_) => continue,
            HubMessage::Completion(c) => {
                assert_eq!(c.invocation_id, "s");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    peer.invoke("after", "Add", vec![peer.arg(1), peer.arg(2)])
        .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(3)),
        "the connection lives on"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_74_uploads_follow_their_stream_ids_and_unknown_stream_ids_are_refused() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    peer.send(HubMessage::Invocation(Invocation {
        invocation_id: Some("42".into()),
        target: "UploadSum".into(),
        arguments: vec![],
        stream_ids: Some(vec!["1".into()]),
        headers: Default::default(),
    }))
    .await;
    for n in 1..=3 {
        let item = peer.arg(n);
        peer.send(HubMessage::StreamItem(StreamItem {
            invocation_id: "1".into(),
            item,
            headers: Default::default(),
        }))
        .await;
    }
    peer.send(HubMessage::Completion(Completion {
        invocation_id: "1".into(),
        result: CompletionResult::Void,
        headers: Default::default(),
    }))
    .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(6))
    );
    // After the invocation completed, items for its stream are ignored...
    let late = peer.arg(9);
    peer.send(HubMessage::StreamItem(StreamItem {
        invocation_id: "1".into(),
        item: late,
        headers: Default::default(),
    }))
    .await;
    peer.invoke("p", "Add", vec![peer.arg(1), peer.arg(1)])
        .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(2))
    );
    // ...and an id never announced is a protocol error.
    let stray = peer.arg(1);
    peer.send(HubMessage::StreamItem(StreamItem {
        invocation_id: "never".into(),
        item: stray,
        headers: Default::default(),
    }))
    .await;
    assert!(
        matches!(peer.next().await, Some(HubMessage::Close(c)) if c.error.as_deref().is_some_and(|e| e.contains("unknown stream id")))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_79_non_blocking_calls_get_no_answer_and_blocking_ones_exactly_one_completion() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    let text = peer.arg("x");
    peer.send(HubMessage::Invocation(Invocation {
        invocation_id: None,
        target: "Add".into(),
        arguments: vec![peer.arg(1), peer.arg(2)],
        stream_ids: None,
        headers: Default::default(),
    }))
    .await;
    peer.invoke("only", "Echo", vec![text]).await;
    let answer = peer.next().await.unwrap();
    assert!(
        matches!(&answer, HubMessage::Completion(c) if c.invocation_id == "only"),
        "{answer:?}"
    );
    peer.invoke("last", "DoNothing", vec![]).await;
    let answer = peer.next().await.unwrap();
    assert_eq!(
        answer,
        HubMessage::Completion(Completion {
            invocation_id: "last".into(),
            result: CompletionResult::Void,
            headers: Default::default()
        }),
        "nothing for the non-blocking Add, no StreamItem, one Completion each"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_80_streaming_and_non_streaming_methods_refuse_the_wrong_invocation_kind() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    peer.send(HubMessage::StreamInvocation(Invocation {
        invocation_id: Some("a".into()),
        target: "Add".into(),
        arguments: vec![peer.arg(1), peer.arg(2)],
        stream_ids: None,
        headers: Default::default(),
    }))
    .await;
    let Some(HubMessage::Completion(c)) = peer.next().await else {
        panic!()
    };
    assert_eq!(c.result, CompletionResult::Error("The client attempted to invoke the non-streaming 'Add' method with a streaming invocation.".into()));
    peer.invoke("b", "Counter", vec![peer.arg(1), peer.arg(0)])
        .await;
    let Some(HubMessage::Completion(c)) = peer.next().await else {
        panic!()
    };
    assert_eq!(c.result, CompletionResult::Error("The client attempted to invoke the streaming 'Counter' method with a non-streaming invocation.".into()));
    server.shutdown().await;
}

#[tokio::test]
async fn item_81_reusing_a_running_invocation_id_is_refused_and_a_finished_one_is_free_again() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    peer.invoke("same", "Delay", vec![peer.arg(300)]).await;
    peer.invoke("same", "Echo", vec![peer.arg("again")]).await;
    let refused = peer.next().await.unwrap();
    assert_eq!(
        refused,
        HubMessage::Completion(Completion {
            invocation_id: "same".into(),
            result: CompletionResult::Error("Invocation ID 'same' is already in use.".into()),
            headers: Default::default()
        })
    );
    let delayed = peer.next().await.unwrap();
    assert_eq!(completion_value(&delayed), Some(json!(300)), "{delayed:?}");
    peer.invoke("same", "Echo", vec![peer.arg("free")]).await;
    let echoed = peer.next().await.unwrap();
    assert_eq!(completion_value(&echoed), Some(json!("free")), "{echoed:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn item_85_stateful_reconnect_is_echoed_only_when_allowed_and_asked() {
    for (allowed, asked, echoed) in [
        (true, true, true),
        (true, false, false),
        (false, true, false),
    ] {
        let server = fixture(Config {
            allow_stateful_reconnect: allowed,
            ..Default::default()
        })
        .await;
        let query = if asked {
            "negotiateVersion=1&useStatefulReconnect=true"
        } else {
            "negotiateVersion=1"
        };
        let body = negotiate(&server, query).await;
        let said = body["useStatefulReconnect"].as_bool().unwrap_or(false);
        assert_eq!(said, echoed, "allowed {allowed}, asked {asked}: {body}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn item_93_a_stateful_connection_resumes_on_a_new_socket_with_sequence_and_replay() {
    let server = fixture(Config {
        allow_stateful_reconnect: true,
        ..Default::default()
    })
    .await;
    let body = negotiate(&server, "negotiateVersion=1&useStatefulReconnect=true").await;
    let token = body["connectionToken"].as_str().unwrap().to_owned();
    let id = body["connectionId"].as_str().unwrap().to_owned();
    let url = ws_url(&server, &format!("id={token}"));
    let mut peer = Peer::handshake(open(&url).await, Protocol::Json, 2).await;
    assert!(matches!(peer.next().await, Some(HubMessage::Invocation(i)) if i.target == "Welcome"));
    // The socket dies without an Ack: the Welcome (sequence 1) is still unacknowledged.
    drop(peer);
    let mut ws = open(&url).await;
    within(ws.send(Message::text("{\"type\":9,\"sequenceId\":1}\x1e")))
        .await
        .unwrap();
    let mut peer = Peer {
        ws,
        protocol: Protocol::Json,
        framer: Protocol::Json.framer(1 << 20),
        pending: Vec::new(),
    };
    assert_eq!(peer.next().await, Some(HubMessage::Sequence(1)));
    assert!(
        matches!(peer.next().await, Some(HubMessage::Invocation(i)) if i.target == "Welcome"),
        "replayed"
    );
    peer.invoke("1", "GetConnectionId", vec![]).await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(id)),
        "the same logical connection"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_the_connection() {
    let server = fixture(Config {
        max_receive_message_size: 1024,
        ..Default::default()
    })
    .await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    let big = peer.arg("x".repeat(4096));
    peer.invoke("1", "Echo", vec![big]).await;
    let closing = peer.next().await;
    assert!(
        matches!(closing, Some(HubMessage::Close(ref c)) if c.error.as_deref() == Some("The maximum message size of 1024B was exceeded.")),
        "{closing:?}"
    );
    assert_eq!(peer.next().await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_while_others_keep_working() {
    let server = fixture(Config {
        outbound_queue_capacity: 64,
        ..Default::default()
    })
    .await;
    let (slow, slow_id) = Peer::connect(&server, Protocol::Json).await;
    let (mut fast, _) = Peer::connect(&server, Protocol::Json).await;
    let payload = "y".repeat(16 * 1024);
    for i in 0..2000 {
        let text = fast.arg(&payload);
        fast.send(HubMessage::Invocation(Invocation {
            invocation_id: None,
            target: "Broadcast".into(),
            arguments: vec![text],
            stream_ids: None,
            headers: Default::default(),
        }))
        .await;
        // The fast client reads its copy, the slow one never does.
        let _ = fast.next().await;
        if !server.connection_ids(Some("test")).contains(&slow_id) {
            assert!(i > 0);
            break;
        }
    }
    assert!(
        !server.connection_ids(Some("test")).contains(&slow_id),
        "the slow consumer was dropped"
    );
    fast.invoke("ok", "Add", vec![fast.arg(2), fast.arg(3)])
        .await;
    let mut answer = None;
    while answer.is_none() {
        answer = completion_value(&fast.next().await.unwrap());
    }
    assert_eq!(answer, Some(json!(5)));
    drop(slow);
    server.shutdown().await;
}

#[tokio::test]
async fn item_82_headers_on_client_messages_are_accepted_and_ignored() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    within(peer.ws.send(Message::text(
        "{\"type\":1,\"invocationId\":\"h\",\"target\":\"Add\",\"arguments\":[2,3],\"headers\":{\"Trace\":\"abc\"}}\x1e",
    )))
    .await
    .unwrap();
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(5))
    );
    server.shutdown().await;
}

/// A stateful connection (handshake version 2) and its token.
async fn stateful(server: &Server) -> (Peer, String) {
    let body = negotiate(server, "negotiateVersion=1&useStatefulReconnect=true").await;
    assert_eq!(body["useStatefulReconnect"], json!(true));
    let token = body["connectionToken"].as_str().unwrap().to_owned();
    let url = ws_url(server, &format!("id={token}"));
    let mut peer = Peer::handshake(open(&url).await, Protocol::Json, 2).await;
    assert!(matches!(peer.next().await, Some(HubMessage::Invocation(i)) if i.target == "Welcome"));
    (peer, url)
}

/// Opens a new socket for the same connection and sends `Sequence(next)`.
async fn reattach(url: &str, next: u64) -> Peer {
    let mut ws = open(url).await;
    let sequence = format!("{{\"type\":9,\"sequenceId\":{next}}}\x1e");
    within(ws.send(Message::text(sequence))).await.unwrap();
    Peer {
        ws,
        protocol: Protocol::Json,
        framer: Protocol::Json.framer(1 << 20),
        pending: Vec::new(),
    }
}

#[tokio::test]
async fn item_86_the_server_numbers_only_types_1_to_5_and_replays_no_pings() {
    let server = fixture(Config {
        allow_stateful_reconnect: true,
        keep_alive_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let (mut peer, url) = stateful(&server).await;
    // Let a few pings go out before the socket dies.
    let mut pings = 0;
    while pings < 3 {
        if read(&mut peer.ws).await.unwrap() == b"{\"type\":6}\x1e" {
            pings += 1;
        }
    }
    drop(peer);
    let mut peer = reattach(&url, 1).await;
    let first = read(&mut peer.ws).await.unwrap();
    let second = read(&mut peer.ws).await.unwrap();
    assert_eq!(
        first, b"{\"type\":9,\"sequenceId\":1}\x1e",
        "Welcome is number 1; pings have none"
    );
    assert!(
        second.starts_with(b"{\"type\":1,\"target\":\"Welcome\""),
        "then only Welcome is replayed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_88_after_a_reattach_the_server_sends_sequence_first_even_with_nothing_to_replay() {
    let server = fixture(Config {
        allow_stateful_reconnect: true,
        ..Default::default()
    })
    .await;
    let (mut peer, url) = stateful(&server).await;
    peer.send(HubMessage::Ack(1)).await; // the Welcome is acknowledged
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(peer);
    let mut peer = reattach(&url, 1).await;
    assert_eq!(peer.next().await, Some(HubMessage::Sequence(2)));
    peer.invoke("1", "Add", vec![peer.arg(1), peer.arg(2)])
        .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(3))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_89_the_server_drops_replayed_duplicates_after_a_reattach() {
    let server = fixture(Config {
        allow_stateful_reconnect: true,
        ..Default::default()
    })
    .await;
    let (mut peer, url) = stateful(&server).await;
    peer.send(HubMessage::Ack(1)).await;
    // Client message 1: processed once.
    peer.invoke("a", "Add", vec![peer.arg(1), peer.arg(1)])
        .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(2))
    );
    drop(peer);
    // The client did not see an Ack for it, so it replays message 1, then sends message 2.
    let mut peer = reattach(&url, 1).await;
    assert!(matches!(peer.next().await, Some(HubMessage::Sequence(_))));
    peer.invoke("a", "Add", vec![peer.arg(1), peer.arg(1)])
        .await;
    peer.invoke("b", "Add", vec![peer.arg(2), peer.arg(2)])
        .await;
    let mut answers = Vec::new();
    while answers.len() < 2 {
        match peer.next().await.unwrap() {
            HubMessage::Completion(c) => answers.push((
                c.invocation_id.clone(),
                completion_value(&HubMessage::Completion(c)),
            )),
            HubMessage::Ack(_) => {}
            other => answers.push((format!("{other:?}"), None)),
        }
    }
    // The replayed "a" is dropped; the completion of the first "a" may be replayed (unacked).
    assert!(
        answers.iter().all(|(id, _)| id == "a" || id == "b"),
        "{answers:?}"
    );
    assert!(
        answers.contains(&("b".into(), Some(json!(4)))),
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|(id, _)| id == "a").count(),
        1,
        "{answers:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_70_every_stream_ends_with_one_completion_even_one_that_finishes_at_once() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    const STREAMS: usize = 1000;
    for i in 0..STREAMS {
        let (count, delay) = (peer.arg(i % 2), peer.arg(0));
        peer.send(HubMessage::StreamInvocation(Invocation {
            invocation_id: Some(i.to_string()),
            target: "Counter".into(),
            arguments: vec![count, delay],
            stream_ids: None,
            headers: Default::default(),
        }))
        .await;
    }
    let mut completed = std::collections::HashSet::new();
    while completed.len() < STREAMS {
        match peer.next().await.expect("a Completion for every stream") {
            HubMessage::StreamItem(_) => {}
            HubMessage::Completion(c) => {
                assert_eq!(c.result, CompletionResult::Void);
                assert!(completed.insert(c.invocation_id), "one Completion each");
            }
            other => panic!("{other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_65_a_close_message_reaches_the_client_even_while_it_keeps_sending() {
    let server = fixture(Config::default()).await;
    for round in 0..20 {
        let (peer, _) = Peer::connect(&server, Protocol::Json).await;
        let (mut sink, mut stream) = peer.ws.split();
        // Pings keep arriving while the server ends the session: they must not cut off what
        // the session still had to say, nor make the closing socket reset the connection.
        let pinger = tokio::spawn(async move {
            let close =
                "{\"type\":1,\"target\":\"CloseWithMessage\",\"arguments\":[\"bye\",false]}\x1e";
            let _ = sink.send(Message::text(close)).await;
            loop {
                for _ in 0..100 {
                    if sink.feed(Message::text("{\"type\":6}\x1e")).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
        // A client busy elsewhere reads late: the Close must still be there when it does.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut received = Vec::new();
        while let Some(Ok(frame)) = within(stream.next()).await {
            if let Message::Text(text) = frame {
                received.extend_from_slice(text.as_bytes());
            }
        }
        pinger.abort();
        let text = String::from_utf8(received).unwrap();
        assert!(
            text.contains("{\"type\":7,\"error\":\"bye\"}\x1e"),
            "round {round}: no Close message in {text:?}"
        );
    }
    server.shutdown().await;
}
