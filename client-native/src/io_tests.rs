//! Tests of the IO layer (WebSocket and HTTP tasks) against a small axum server, without the
//! protocol engine.

use crate::http;
use crate::websocket;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use bytes::Bytes;
use std::time::Duration;
use talkback_core::client::{BoxStream, Outgoing, WebSocket as Socket, WebSocketRequest};
use talkback_core::{
    HttpEvent, HttpMethod, HttpRequest, RequestId, TransferFormat, WebSocketEvent,
};

async fn echo_socket(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            Message::Text(t) if t.as_str() == "bye" => {
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 4001,
                        reason: "bye".into(),
                    })))
                    .await;
                return;
            }
            Message::Text(_) | Message::Binary(_) => {
                let sent = socket.send(message).await;
                if sent.is_err() {
                    return;
                }
            }
            // Keep reading: the next read flushes tungstenite's automatic close reply.
            _ => {}
        }
    }
}

async fn ws(upgrade: WebSocketUpgrade, headers: HeaderMap) -> Response {
    if headers.get("x-test").map(|v| v.as_bytes()) != Some(b"yes") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    upgrade.on_upgrade(echo_socket)
}

async fn chunks() -> Response {
    let parts = futures::stream::iter(["one", "two", "three"])
        .map(|p| Ok::<_, std::io::Error>(Bytes::from(p)));
    Response::new(Body::from_stream(parts))
}

use futures::{SinkExt, StreamExt};

async fn server() -> String {
    let app = Router::new()
        .route("/ws", any(ws))
        .route(
            "/echo",
            post(|body: Bytes| async move { (StatusCode::CREATED, body) }),
        )
        .route(
            "/slow",
            // Never answers: the client's own timeout must end the request.
            get(std::future::pending::<&'static str>),
        )
        .route("/chunks", get(chunks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("127.0.0.1:{}", addr.port())
}

async fn next_ws(socket: &mut Socket) -> WebSocketEvent {
    tokio::time::timeout(Duration::from_secs(5), socket.events.next())
        .await
        .expect("a WebSocket event within 5 s")
        .expect("the socket reports until its end")
}

async fn next_http(events: &mut BoxStream<HttpEvent>) -> HttpEvent {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an HTTP event within 5 s")
        .expect("the request reports until its end")
}

fn open(url: String, headers: Vec<(String, String)>) -> Socket {
    websocket::open(WebSocketRequest {
        url,
        headers,
        max_message_size: 1 << 20,
    })
}

#[tokio::test]
async fn websocket_reports_open_text_and_binary_messages_and_the_servers_close() {
    let addr = server().await;
    let headers = vec![("X-Test".to_string(), "yes".to_string())];
    let mut socket = open(format!("ws://{addr}/ws"), headers);
    assert_eq!(next_ws(&mut socket).await, WebSocketEvent::Opened);
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from_static(b"hello"),
            TransferFormat::Text,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_ws(&mut socket).await,
        WebSocketEvent::Message(Bytes::from_static(b"hello"))
    );
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from_static(&[0, 1, 2]),
            TransferFormat::Binary,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_ws(&mut socket).await,
        WebSocketEvent::Message(Bytes::from_static(&[0, 1, 2]))
    );
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from_static(b"bye"),
            TransferFormat::Text,
        ))
        .await
        .unwrap();
    assert_eq!(
        next_ws(&mut socket).await,
        WebSocketEvent::Closed {
            code: Some(4001),
            reason: "bye".into()
        }
    );
}

#[tokio::test]
async fn websocket_close_request_ends_with_a_closed_event() {
    let addr = server().await;
    let headers = vec![("x-test".to_string(), "yes".to_string())];
    let mut socket = open(format!("ws://{addr}/ws"), headers);
    assert_eq!(next_ws(&mut socket).await, WebSocketEvent::Opened);
    socket.frames.send(Outgoing::Close).await.unwrap();
    match next_ws(&mut socket).await {
        WebSocketEvent::Closed { code, .. } => assert_eq!(code, Some(1000)),
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_refused_upgrade_reports_the_http_status() {
    let addr = server().await;
    let mut socket = open(format!("ws://{addr}/ws"), Vec::new());
    match next_ws(&mut socket).await {
        WebSocketEvent::Failed { status, .. } => assert_eq!(status, Some(401)),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_to_a_closed_port_fails_without_a_status() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut socket = open(format!("ws://127.0.0.1:{port}/ws"), Vec::new());
    match next_ws(&mut socket).await {
        WebSocketEvent::Failed { status, .. } => assert_eq!(status, None),
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// A server that accepts one connection, reads the upgrade request and writes what `answer`
/// makes of its `Sec-WebSocket-Key`, then reads until the client goes away.
async fn raw_server(answer: impl FnOnce(&str) -> Vec<u8> + Send + 'static) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client sent its whole request");
            head.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a Sec-WebSocket-Key header")
            .trim()
            .to_string();
        // A client that gave up early (an answer past its bound) may make this fail.
        let _ = tcp.write_all(&answer(&key)).await;
        while tcp.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
    });
    format!("ws://127.0.0.1:{}/ws", addr.port())
}

fn switching(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

fn accept_key(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
}

/// An unmasked server frame (RFC 6455 5.2) with a payload under 126 bytes.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![0x80 | opcode, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn websocket_frames_sent_with_the_upgrade_answer_are_not_lost() {
    // A server that accepts the upgrade and closes at once, in the same write (as a server
    // that does not know a stateful connection's token does).
    let url = raw_server(|key| {
        let mut answer = switching(&accept_key(key));
        answer.extend(server_frame(0x1, b"first"));
        let mut close = 4404u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"Connection not found.");
        answer.extend(server_frame(0x8, &close));
        answer
    })
    .await;
    let mut socket = open(url, Vec::new());
    assert_eq!(next_ws(&mut socket).await, WebSocketEvent::Opened);
    assert_eq!(
        next_ws(&mut socket).await,
        WebSocketEvent::Message(Bytes::from_static(b"first"))
    );
    assert_eq!(
        next_ws(&mut socket).await,
        WebSocketEvent::Closed {
            code: Some(4404),
            reason: "Connection not found.".into()
        }
    );
}

/// Opens a WebSocket to `url` and expects it to fail before opening: no HTTP status, and a
/// message that mentions `expected`.
async fn expect_upgrade_failure(url: String, expected: &str) {
    let mut socket = open(url, Vec::new());
    match next_ws(&mut socket).await {
        WebSocketEvent::Failed { status, message } => {
            assert_eq!(status, None);
            assert!(message.contains(expected), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_answer_with_a_wrong_accept_key_fails() {
    let url = raw_server(|_| switching("bm90IHRoZSByaWdodCBrZXk=")).await;
    expect_upgrade_failure(url, "Sec-WebSocket-Accept").await;
}

#[tokio::test]
async fn websocket_answer_choosing_an_extension_that_was_not_asked_for_fails() {
    let url = raw_server(|key| {
        let mut answer = switching(&accept_key(key));
        answer.truncate(answer.len() - 2);
        answer.extend_from_slice(b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
        answer
    })
    .await;
    expect_upgrade_failure(url, "extension").await;
}

#[tokio::test]
async fn websocket_answer_larger_than_its_bound_fails() {
    // Headers without end: the client stops reading at its bound.
    let url = raw_server(|_| {
        let mut answer = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        while answer.len() < 40 * 1024 {
            answer.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        answer
    })
    .await;
    expect_upgrade_failure(url, "invalid answer").await;
}

#[tokio::test]
async fn websocket_server_closing_before_answering_fails() {
    // Part of a status line, then the end of the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client sent its whole request");
            head.extend_from_slice(&chunk[..n]);
        }
        tcp.write_all(b"HTTP/1.1 101 Swi").await.unwrap();
        tcp.shutdown().await.unwrap();
        while tcp.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
    });
    expect_upgrade_failure(format!("ws://127.0.0.1:{port}/ws"), "closed the connection").await;
}

#[tokio::test]
async fn websocket_burst_of_messages_and_a_large_message_arrive_whole_and_in_order() {
    let addr = server().await;
    let headers = vec![("X-Test".to_string(), "yes".to_string())];
    let mut socket = open(format!("ws://{addr}/ws"), headers);
    assert_eq!(next_ws(&mut socket).await, WebSocketEvent::Opened);
    // Many small messages in one write (they arrive in few reads, more than a read buffer's
    // worth at a time), then one larger than the read-ahead buffer.
    let large: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for i in 0..500 {
        socket
            .frames
            .feed(Outgoing::Frame(
                Bytes::from(format!("message {i}")),
                TransferFormat::Text,
            ))
            .await
            .unwrap();
    }
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from(large.clone()),
            TransferFormat::Binary,
        ))
        .await
        .unwrap();
    for i in 0..500 {
        assert_eq!(
            next_ws(&mut socket).await,
            WebSocketEvent::Message(Bytes::from(format!("message {i}")))
        );
    }
    assert_eq!(
        next_ws(&mut socket).await,
        WebSocketEvent::Message(Bytes::from(large))
    );
}

fn request(
    method: HttpMethod,
    url: String,
    timeout: Option<Duration>,
    streaming: bool,
) -> HttpRequest {
    HttpRequest {
        id: RequestId(7),
        method,
        url,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Bytes::from_static(b"payload"),
        timeout,
        streaming,
    }
}

#[tokio::test]
async fn http_request_reports_status_and_whole_body() {
    let addr = server().await;
    let req = request(HttpMethod::Post, format!("http://{addr}/echo"), None, false);
    let mut events = http::perform(req);
    assert_eq!(
        next_http(&mut events).await,
        HttpEvent::Response {
            status: 201,
            body: Bytes::from_static(b"payload")
        }
    );
}

#[tokio::test]
async fn http_request_past_its_timeout_reports_timed_out() {
    let addr = server().await;
    let mut req = request(
        HttpMethod::Get,
        format!("http://{addr}/slow"),
        Some(Duration::from_millis(100)),
        false,
    );
    req.body = Bytes::new();
    let mut events = http::perform(req);
    match next_http(&mut events).await {
        HttpEvent::Failed { timed_out, .. } => assert!(timed_out),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn streaming_http_request_reports_head_chunks_and_end() {
    let addr = server().await;
    let mut req = request(HttpMethod::Get, format!("http://{addr}/chunks"), None, true);
    req.body = Bytes::new();
    let mut events = http::perform(req);
    assert_eq!(
        next_http(&mut events).await,
        HttpEvent::Head { status: 200 }
    );
    let mut body = Vec::new();
    loop {
        match next_http(&mut events).await {
            HttpEvent::Chunk(c) => body.extend_from_slice(&c),
            HttpEvent::End { error } => {
                assert_eq!(error, None);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(body, b"onetwothree");
}

#[tokio::test]
async fn http_request_to_a_closed_port_fails_without_timing_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let req = request(
        HttpMethod::Post,
        format!("http://127.0.0.1:{port}/x"),
        None,
        false,
    );
    let mut events = http::perform(req);
    match next_http(&mut events).await {
        HttpEvent::Failed { timed_out, message } => {
            assert!(!timed_out);
            assert!(!message.is_empty());
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
