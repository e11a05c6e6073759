//! The WebSocket transport: connection ids, keep-alive, size limits, slow consumers, closing: the fixture against raw peers over real loopback sockets, one test per
//! `[server]` item of the conformance checklist (docs/protocol).

mod kit;

use kit::*;

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

/// ASP.NET Core's Close text for a message over the limit with detailed errors (the
/// `InvalidDataException` its hub parser throws, after "Connection closed with an error.").
fn too_large_detailed(max: usize) -> String {
    format!("Connection closed with an error. InvalidDataException: The maximum message size of {max}B was exceeded. The message size can be configured in AddHubOptions.")
}

/// Reads until the socket ends: the hub messages received, then the close frame's code.
async fn messages_then_close_code(peer: &mut Peer) -> (Vec<HubMessage>, Option<u16>) {
    let mut messages = Vec::new();
    loop {
        match within(peer.ws.next()).await {
            Some(Ok(Message::Text(text))) => {
                peer.framer.push(text.as_bytes());
                while let Some(record) = peer.framer.next_record().unwrap() {
                    if let talkback_core::protocol::Decoded::Message(m) =
                        peer.protocol.decode(&record).unwrap()
                    {
                        messages.push(m);
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return (messages, frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (messages, None),
        }
    }
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_the_connection_with_the_reference_text() {
    let server = fixture(Config {
        max_receive_message_size: 1024,
        detailed_errors: true,
        ..Default::default()
    })
    .await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    let big = peer.arg("x".repeat(4096));
    peer.invoke("1", "Echo", vec![big]).await;
    let (messages, code) = messages_then_close_code(&mut peer).await;
    let closes: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            HubMessage::Close(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(closes.len(), 1, "{messages:?}");
    assert_eq!(
        closes[0].error.as_deref(),
        Some(too_large_detailed(1024).as_str())
    );
    assert!(!closes[0].allow_reconnect);
    assert_eq!(code, Some(1009), "Message Too Big");
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_a_little_over_the_limit_is_refused_by_the_hub_parser_with_the_same_text() {
    let server = fixture(Config {
        max_receive_message_size: 1024,
        detailed_errors: true,
        ..Default::default()
    })
    .await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    // One hub message of 1,030 bytes with its separator: over the hub limit, within the
    // WebSocket layer's room for framing.
    let invocation = |text: String| {
        HubMessage::Invocation(Invocation {
            invocation_id: Some("1".into()),
            target: "Echo".into(),
            arguments: vec![RawValue::encode(Protocol::Json, &text).unwrap()],
            stream_ids: None,
            headers: Default::default(),
        })
    };
    let mut empty = Vec::new();
    Protocol::Json.encode(&invocation(String::new()), &mut empty);
    peer.send(invocation("x".repeat(1030 - empty.len()))).await;
    let (messages, code) = messages_then_close_code(&mut peer).await;
    assert!(
        matches!(messages.last(), Some(HubMessage::Close(c)) if c.error.as_deref() == Some(too_large_detailed(1024).as_str())),
        "{messages:?}"
    );
    assert_eq!(code, Some(1000));
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_header_over_the_limit_is_refused_at_once_with_close_1009_and_others_carry_on() {
    let server = fixture(Config {
        max_receive_message_size: 1024,
        ..Default::default()
    })
    .await;
    let (mut other, _) = Peer::connect(&server, Protocol::Json).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    // A masked text frame announcing 2,048 bytes, twice the limit; its payload never follows.
    // The client timeout (30 s) is far beyond `within`'s limit: the refusal comes from the
    // header alone.
    let mut header = vec![0x81, 0x80 | 126];
    header.extend_from_slice(&2048u16.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    {
        use tokio::io::AsyncWriteExt;
        let stream = peer.ws.get_mut();
        within(stream.write_all(&header)).await.unwrap();
        within(stream.flush()).await.unwrap();
    }
    let started = std::time::Instant::now();
    let (messages, code) = messages_then_close_code(&mut peer).await;
    assert!(
        matches!(messages.last(), Some(HubMessage::Close(c)) if c.error.as_deref() == Some("Connection closed with an error.") && !c.allow_reconnect),
        "{messages:?}"
    );
    assert_eq!(code, Some(1009), "Message Too Big");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The other client is served as before.
    let arg = other.arg("still here");
    other.invoke("2", "Echo", vec![arg]).await;
    let reply = other.next().await.unwrap();
    assert_eq!(completion_value(&reply), Some(json!("still here")));
    server.shutdown().await;
}

#[tokio::test]
async fn a_close_frame_from_the_client_is_answered_with_a_close_frame_echoing_its_code() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let server = fixture(Config::default()).await;
    let (mut peer, id) = Peer::connect(&server, Protocol::Json).await;
    let close = CloseFrame {
        code: CloseCode::from(4000),
        reason: "bye".into(),
    };
    within(peer.ws.close(Some(close))).await.unwrap();
    let mut answer = None;
    loop {
        match within(peer.ws.next()).await {
            Some(Ok(Message::Close(frame))) => {
                answer = frame;
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("no close frame before the end: {e}"),
            None => break,
        }
    }
    let answer = answer.expect("the fixture answers with a close frame");
    assert_eq!(u16::from(answer.code), 4000);
    within(server.wait_for_connection_gone(&id)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_65_a_close_message_reaches_the_client_even_while_it_keeps_sending() {
    let server = fixture(Config::default()).await;
    for round in 0..20 {
        let (peer, id) = Peer::connect(&server, Protocol::Json).await;
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
        // A client busy elsewhere reads late, after the session has ended: the Close must
        // still be there when it does.
        within(server.wait_for_connection_gone(&id)).await;
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
