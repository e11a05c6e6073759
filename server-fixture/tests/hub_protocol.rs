//! The hub protocol: handshake, invocations, streams both ways, headers: the fixture against raw peers over real loopback sockets, one test per
//! `[server]` item of the conformance checklist (docs/protocol).

mod kit;

use kit::*;

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

/// Issue 12: announced stream ids are bounded per invocation (16) before anything is allocated
/// for them: a known method gets an error Completion, an unknown one its usual error, and the
/// connection keeps working.
#[tokio::test]
async fn announced_stream_ids_are_bounded_per_invocation() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    let ids: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    for (id, target) in [("a", "UploadSum"), ("b", "Nope")] {
        peer.send(HubMessage::Invocation(Invocation {
            invocation_id: Some(id.into()),
            target: target.into(),
            arguments: vec![],
            stream_ids: Some(ids.clone()),
            headers: Default::default(),
        }))
        .await;
    }
    let Some(HubMessage::Completion(a)) = peer.next().await else {
        panic!("a Completion")
    };
    assert_eq!(
        a.result,
        CompletionResult::Error("An invocation may announce at most 16 stream ids.".into())
    );
    let Some(HubMessage::Completion(b)) = peer.next().await else {
        panic!("a Completion")
    };
    assert_eq!(b.result, CompletionResult::Error("Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist.".into()));
    peer.invoke("c", "Add", vec![peer.arg(1), peer.arg(2)])
        .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!(3))
    );
    server.shutdown().await;
}

/// Issue 12: blocking and streaming invocations each run as a task, so a connection may have at
/// most 1,024 running; one more gets an error Completion, and the connection keeps working.
#[tokio::test]
async fn running_invocations_are_bounded_per_connection() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    for i in 0..1024 {
        peer.invoke(&format!("d{i}"), "Delay", vec![peer.arg(600_000)])
            .await;
    }
    peer.invoke("over", "Delay", vec![peer.arg(1)]).await;
    let Some(HubMessage::Completion(over)) = peer.next().await else {
        panic!("a Completion")
    };
    assert_eq!(over.invocation_id, "over");
    assert_eq!(
        over.result,
        CompletionResult::Error("A connection may have at most 1024 invocations running.".into())
    );
    // Non-blocking sends still run.
    peer.send(HubMessage::Invocation(Invocation {
        invocation_id: None,
        target: "EchoToCaller".into(),
        arguments: vec![peer.arg("still here")],
        stream_ids: None,
        headers: Default::default(),
    }))
    .await;
    loop {
        match peer.next().await.expect("the socket stays open") {
            HubMessage::Invocation(i) => {
                assert_eq!(i.target, "Echoed");
                break;
            }
            HubMessage::Ping => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    server.shutdown().await;
}

/// Reads the peer's messages until the Completion of `id`.
async fn until_completion(peer: &mut Peer, id: &str) -> HubMessage {
    loop {
        let message = peer.next().await.expect("the socket stays open");
        if matches!(&message, HubMessage::Completion(c) if c.invocation_id == id) {
            return message;
        }
    }
}

/// Opens a WebSocket for `user` without sending the handshake; the connection is registered
/// (its transport attached) but not yet part of the hub.
async fn unhandshaken(server: &Server, user: &str) -> Ws {
    let ws = open(&ws_url(server, &format!("access_token={user}"))).await;
    let info = server
        .connections(Some("test"))
        .into_iter()
        .find(|c| c.user.as_deref() == Some(user))
        .expect("the connection is registered");
    assert_eq!(info.handshake_version, None);
    ws
}

/// A broadcast and a send to `user`, both completed (queued for every recipient) on return.
async fn send_to_everyone_and_to(sender: &mut Peer, user: &str) {
    let text = sender.arg("to everyone");
    sender.invoke("b", "Broadcast", vec![text]).await;
    until_completion(sender, "b").await;
    let (user, text) = (sender.arg(user), sender.arg("to the user"));
    sender.invoke("u", "SendToUser", vec![user, text]).await;
    until_completion(sender, "u").await;
}

#[tokio::test]
async fn messages_sent_to_a_connection_before_its_handshake_never_precede_the_handshake_response() {
    let server = fixture(Config::default()).await;
    let (mut sender, _) = Peer::connect(&server, Protocol::Json).await;
    let mut pending = unhandshaken(&server, "pending-user").await;
    send_to_everyone_and_to(&mut sender, "pending-user").await;
    within(pending.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")))
        .await
        .unwrap();
    let first = read(&mut pending).await.unwrap();
    assert!(
        first.starts_with(b"{}\x1e"),
        "the handshake response comes first: {:?}",
        String::from_utf8_lossy(&first)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_never_handshakes_receives_nothing_but_its_handshake_failure() {
    let server = fixture(Config {
        handshake_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let (mut sender, _) = Peer::connect(&server, Protocol::Json).await;
    let mut pending = unhandshaken(&server, "pending-user").await;
    // Both sends reach the pending connection's queue well before its handshake timeout.
    send_to_everyone_and_to(&mut sender, "pending-user").await;
    let mut received = Vec::new();
    while let Some(bytes) = read(&mut pending).await {
        received.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    assert_eq!(
        received,
        vec!["{\"error\":\"Handshake was canceled.\"}\x1e".to_owned()]
    );
    server.shutdown().await;
}
