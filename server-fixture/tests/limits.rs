//! Bounds and timeouts over real loopback sockets: idle-connection buffers, half-open
//! connections, clients that neither read nor write, and the HTTP layer's timeouts and
//! connection cap (issue 12).

mod kit;

use kit::*;
use std::time::{Duration, Instant};
use talkback_core::protocol::{HubMessage, Invocation};
use talkback_fixture::{Config, Hub, HubError, Server, StreamSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The test hubs plus `flood`, whose `Flood` stream sends 32 KB items as fast as the
/// connection's queue takes them.
async fn flood_fixture(config: Config) -> Server {
    let flood = Hub::builder("flood")
        .stream("Flood", |_ctx, (): (), items: StreamSender| async move {
            let chunk = "x".repeat(32 * 1024);
            loop {
                items.send(&chunk).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), HubError>(())
        })
        .build();
    talkback_fixture::spawn_with_hubs(
        config,
        vec![
            talkback_fixture::test_hub(),
            talkback_fixture::chat_hub(),
            flood,
        ],
    )
    .await
    .expect("the fixture starts")
}

fn flood_invocation() -> HubMessage {
    HubMessage::StreamInvocation(Invocation {
        invocation_id: Some("f".into()),
        target: "Flood".into(),
        arguments: Vec::new(),
        stream_ids: None,
        headers: Default::default(),
    })
}

/// Reads one HTTP/1.1 response head and its `Content-Length` body from a raw socket; `None`
/// if the socket closed first.
async fn raw_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match within(stream.read(&mut byte)).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    within(stream.read_exact(&mut body)).await.ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

/// Whether the peer closed `stream` (reads until EOF or an error, within the time limit).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    loop {
        match within(stream.read(&mut buffer)).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

fn negotiate_request(server: &Server) -> String {
    format!(
        "POST /hubs/test/negotiate?negotiateVersion=1 HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
        server.addr()
    )
}

// ------------------------------------------------------------------ idle connections

#[tokio::test]
async fn websocket_messages_larger_than_the_small_read_buffer_pass_both_ways() {
    // The read buffer per socket is small (memory per idle connection); a large frame must
    // still be read whole, and a large answer written whole.
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    let text = "y".repeat(30 * 1024);
    let arg = peer.arg(&text);
    peer.invoke("1", "Echo", vec![arg]).await;
    let answer = within(peer.next()).await.unwrap();
    assert_eq!(completion_value(&answer), Some(serde_json::json!(text)));
    server.shutdown().await;
}

// ------------------------------------------------------------------ half-open connections

#[tokio::test]
async fn a_negotiated_connection_that_never_connects_expires_at_the_handshake_timeout() {
    let server = fixture(Config {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let body = negotiate(&server, "negotiateVersion=1").await;
    let id = body["connectionId"].as_str().unwrap().to_owned();
    let token = body["connectionToken"].as_str().unwrap().to_owned();
    assert!(server.connection_info(&id).is_some());
    within(server.wait_for_connection_gone(&id)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Its token is forgotten: a late transport gets 404.
    let late = within(http().get(http_url(&server, &token)).send())
        .await
        .unwrap();
    assert_eq!(late.status(), 404);
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_never_handshakes_closes_at_the_handshake_timeout_on_sse_and_long_polling(
) {
    let server = fixture(Config {
        handshake_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // Server-Sent Events: the stream ends.
    let body = negotiate(&server, "negotiateVersion=1").await;
    let id = body["connectionId"].as_str().unwrap().to_owned();
    let url = http_url(&server, body["connectionToken"].as_str().unwrap());
    let events = within(
        http()
            .get(&url)
            .header("Accept", "text/event-stream")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(events.status(), 200);
    let all = within(events.bytes()).await.unwrap();
    assert!(
        String::from_utf8_lossy(&all).contains("Handshake was canceled."),
        "{all:?}"
    );
    within(server.wait_for_connection_gone(&id)).await;

    // Long polling: the first poll starts the connection; no handshake POST follows.
    let body = negotiate(&server, "negotiateVersion=1").await;
    let id = body["connectionId"].as_str().unwrap().to_owned();
    let url = http_url(&server, body["connectionToken"].as_str().unwrap());
    let first = within(http().get(&url).send()).await.unwrap();
    assert_eq!(first.status(), 200);
    within(server.wait_for_connection_gone(&id)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_websocket_client_that_neither_reads_nor_writes_is_closed_at_the_client_timeout() {
    let server = flood_fixture(Config {
        keep_alive_interval: Duration::from_millis(200),
        client_timeout: Duration::from_millis(1000),
        outbound_queue_capacity: 8,
        ..Default::default()
    })
    .await;
    let url = server.hub_url("flood").replacen("http", "ws", 1);
    let mut peer = Peer::handshake(open(&url).await, Protocol::Json, 1).await;
    peer.send(flood_invocation()).await;
    let id = within(server.wait_for_connections(Some("flood"), 1)).await[0]
        .id
        .clone();
    // From now on the client reads nothing and sends nothing: the socket buffers fill, then
    // the fixture's queues, and the session waits for room. Its client timeout still fires.
    let started = Instant::now();
    within(server.wait_for_connection_gone(&id)).await;
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(peer);
    server.shutdown().await;
}

#[tokio::test]
async fn a_long_polling_client_that_stops_polling_is_gone_after_the_disconnect_timeout_even_with_a_full_queue(
) {
    let server = flood_fixture(Config {
        disconnect_timeout: Duration::from_millis(800),
        outbound_queue_capacity: 8,
        ..Default::default()
    })
    .await;
    let body = within(
        http()
            .post(format!(
                "{}/negotiate?negotiateVersion=1",
                server.hub_url("flood")
            ))
            .send(),
    )
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = body["connectionId"].as_str().unwrap().to_owned();
    let url = format!(
        "{}?id={}",
        server.hub_url("flood"),
        body["connectionToken"].as_str().unwrap()
    );
    assert_eq!(within(http().get(&url).send()).await.unwrap().status(), 200);
    let handshake = "{\"protocol\":\"json\",\"version\":1}\x1e";
    let post = within(http().post(&url).body(handshake).send())
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let mut invocation = Vec::new();
    Protocol::Json.encode(&flood_invocation(), &mut invocation);
    let post = within(http().post(&url).body(invocation).send())
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    // No poll ever again: the queue fills and the session waits for room; the "no poll"
    // rule must still end the connection.
    within(server.wait_for_connection_gone(&id)).await;
    server.shutdown().await;
}

// ------------------------------------------------------------------ the HTTP layer

#[tokio::test]
async fn slowloris_connections_are_cut_at_the_header_read_timeout_and_others_are_served() {
    let server = fixture(Config {
        header_read_timeout: Duration::from_millis(800),
        ..Default::default()
    })
    .await;
    const SLOW: usize = 1000;
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(within(TcpStream::connect(server.addr())).await.unwrap());
    }
    let request = negotiate_request(&server).into_bytes();
    let started = Instant::now();
    // One header byte every 100 ms each, until the server closes them.
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in slow {
        let request = request.clone();
        tasks.spawn(async move {
            for byte in request.iter().take(40) {
                if stream.write_all(&[*byte]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            closed_by_server(&mut stream).await
        });
    }
    // Meanwhile an ordinary client is served.
    assert_eq!(negotiate_status(&server, "negotiateVersion=1").await.0, 200);
    let mut cut = 0;
    while let Some(result) = within(tasks.join_next()).await {
        if result.unwrap() {
            cut += 1;
        }
    }
    assert_eq!(cut, SLOW, "every slowloris connection is closed");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let server = fixture(Config {
        header_read_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let mut stream = within(TcpStream::connect(server.addr())).await.unwrap();
    within(stream.write_all(negotiate_request(&server).as_bytes()))
        .await
        .unwrap();
    let (status, _) = raw_response(&mut stream).await.unwrap();
    assert_eq!(status, 200);
    let started = Instant::now();
    assert!(closed_by_server(&mut stream).await);
    assert!(started.elapsed() >= Duration::from_millis(400));
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_post_body_gets_408_and_does_not_block_the_next_post() {
    let server = fixture(Config {
        request_body_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let (url, _) = long_polling(&server, 1).await;
    let path = url
        .split_once(&server.addr().to_string())
        .unwrap()
        .1
        .to_owned();
    let mut stream = within(TcpStream::connect(server.addr())).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"type\":6",
        server.addr()
    );
    within(stream.write_all(head.as_bytes())).await.unwrap();
    let (status, _) = raw_response(&mut stream).await.unwrap();
    assert_eq!(status, 408);
    // The connection's next POST is served.
    let ping = within(http().post(&url).body("{\"type\":6}\x1e").send())
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_post_whose_client_went_away_mid_body_does_not_block_the_next_post() {
    let server = fixture(Config::default()).await;
    let (url, id) = long_polling(&server, 1).await;
    let path = url
        .split_once(&server.addr().to_string())
        .unwrap()
        .1
        .to_owned();
    let mut stream = within(TcpStream::connect(server.addr())).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"type\":6",
        server.addr()
    );
    within(stream.write_all(head.as_bytes())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    // The next POST may still find the first one in progress for a moment; never for long.
    let started = Instant::now();
    loop {
        let ping = within(http().post(&url).body("{\"type\":6}\x1e").send())
            .await
            .unwrap();
        if ping.status() == 200 {
            break;
        }
        assert_eq!(ping.status(), 409);
        assert!(started.elapsed() < LIMIT, "the aborted POST still blocks");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.connection_info(&id).is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn over_the_connection_cap_negotiate_and_upgrade_get_503_until_a_connection_closes() {
    let server = fixture(Config {
        max_connections: 4,
        ..Default::default()
    })
    .await;
    // Four WebSocket connections take the four places (a socket counts as long as it lives,
    // upgraded or not).
    let mut peers = Vec::new();
    for _ in 0..4 {
        let ws = open(&ws_url(&server, "")).await;
        peers.push(Peer::handshake(ws, Protocol::Json, 1).await);
    }
    let mut stream = loop {
        let mut stream = within(TcpStream::connect(server.addr())).await.unwrap();
        within(stream.write_all(negotiate_request(&server).as_bytes()))
            .await
            .unwrap();
        match raw_response(&mut stream).await {
            Some((503, body)) => {
                assert!(body.contains("connection cap"), "{body}");
                break stream;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(closed_by_server(&mut stream).await, "a refusal closes");
    // A WebSocket upgrade over the cap: 503 before any upgrade.
    let refused = tokio_tungstenite::connect_async(ws_url(&server, "")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected a 503, got {:?}", other.map(|_| ())),
    }
    // One connection closes: a new one is served again.
    let mut first = peers.remove(0);
    within(first.ws.close(None)).await.unwrap();
    drop(first);
    let started = Instant::now();
    loop {
        let mut stream = within(TcpStream::connect(server.addr())).await.unwrap();
        within(stream.write_all(negotiate_request(&server).as_bytes()))
            .await
            .unwrap();
        if let Some((200, _)) = raw_response(&mut stream).await {
            break;
        }
        assert!(started.elapsed() < LIMIT, "a freed place is never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn with_detailed_errors_the_client_timeout_close_says_why_as_asp_net_core_does() {
    let server = fixture(Config {
        keep_alive_interval: Duration::from_millis(200),
        client_timeout: Duration::from_millis(600),
        detailed_errors: true,
        ..Default::default()
    })
    .await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    // The client stays silent; Pings from the server do not count.
    let close = loop {
        match peer.next().await {
            Some(HubMessage::Close(close)) => break close,
            Some(_) => {}
            None => panic!("closed without a Close message"),
        }
    };
    assert_eq!(
        close.error.as_deref(),
        Some("Connection closed with an error. OperationCanceledException: Client hasn't sent a message/ping within the configured ClientTimeoutInterval.")
    );
    assert!(close.allow_reconnect);
    server.shutdown().await;
}

#[tokio::test]
async fn with_an_idle_timeout_a_client_that_only_pings_is_closed_with_the_reason() {
    let server = fixture(Config {
        idle_timeout: Some(Duration::from_millis(600)),
        ..Default::default()
    })
    .await;
    let (mut peer, id) = Peer::connect(&server, Protocol::Json).await;
    let mut pings = tokio::time::interval(Duration::from_millis(100));
    let close = within(async {
        loop {
            tokio::select! {
                _ = pings.tick() => peer.send(HubMessage::Ping).await,
                message = peer.next() => match message {
                    Some(HubMessage::Close(close)) => return close,
                    Some(_) => {}
                    None => panic!("closed without a Close message"),
                },
            }
        }
    })
    .await;
    let error = close.error.unwrap_or_default();
    assert!(error.contains("idle timeout"), "{error}");
    assert!(!close.allow_reconnect);
    within(server.wait_for_connection_gone(&id)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn with_an_idle_timeout_a_client_that_keeps_invoking_stays_connected() {
    let server = fixture(Config {
        idle_timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    })
    .await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    // Six calls a quarter of a second apart: 1.5 s in all, never 1 s without a message.
    for n in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let id = n.to_string();
        let arg = peer.arg(n);
        peer.invoke(&id, "Echo", vec![arg]).await;
        let reply = peer.next().await.expect("still connected");
        assert!(
            matches!(&reply, HubMessage::Completion(c) if c.invocation_id == id),
            "{reply:?}"
        );
    }
    server.shutdown().await;
}

#[test]
fn the_idle_timeout_is_off_by_default() {
    assert_eq!(Config::default().idle_timeout, None);
}
