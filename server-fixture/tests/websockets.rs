//! The WebSocket transport: connection ids, keep-alive, size limits, slow consumers, closing: the fixture against raw peers over real loopback sockets, one test per
//! `[server]` item of the conformance checklist (docs/protocol).

mod kit;

#[allow(unused_imports)]
use futures::{SinkExt, StreamExt};
#[allow(unused_imports)]
use kit::*;
#[allow(unused_imports)]
use serde_json::{json, Value};
#[allow(unused_imports)]
use std::time::Duration;
#[allow(unused_imports)]
use talkback_core::protocol::{
    CancelInvocation, Completion, CompletionResult, HubMessage, Invocation, StreamItem,
};
#[allow(unused_imports)]
use talkback_fixture::{Config, Server};

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
