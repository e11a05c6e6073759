//! Stateful reconnect: Ack, Sequence, replay and re-attach: the fixture against raw peers over real loopback sockets, one test per
//! `[server]` item of the conformance checklist (docs/protocol).

mod kit;

use kit::*;

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
    let mut peer = Peer::raw(ws, Protocol::Json);
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
    Peer::raw(ws, Protocol::Json)
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
    // Records, whether they come as one WebSocket message or several.
    assert_eq!(
        peer.next_any().await,
        Some(HubMessage::Sequence(1)),
        "Welcome is number 1; pings have none"
    );
    assert!(
        matches!(peer.next_any().await, Some(HubMessage::Invocation(i)) if i.target == "Welcome"),
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
    let id = server.connections(Some("test"))[0].id.clone();
    peer.send(HubMessage::Ack(1)).await; // the Welcome is acknowledged
    within(server.wait_for_connection(&id, |c| c.messages_received >= 1))
        .await
        .expect("the session read the Ack");
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
