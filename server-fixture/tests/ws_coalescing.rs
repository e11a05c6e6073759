//! The WebSocket transport sends the frames queued together as one WebSocket message (as ASP.NET
//! Core sends what its application pipe holds): a raw tokio-tungstenite client over loopback
//! checks that replies produced together arrive in one message, in order, for JSON and
//! MessagePack, that a message stays within the bound, and that the Close still comes last.
//!
//! The tests run on a current-thread runtime with the fixture in it: the session produces all
//! replies to one client message before the socket task runs again, so they are all queued when
//! it does.

mod kit;

use futures::SinkExt;
use kit::*;
use serde_json::{json, Value};
use talkback_core::protocol::{Decoded, HubMessage, Invocation};
use talkback_fixture::Config;

/// How many calls the client sends in one WebSocket message.
const CALLS: usize = 20;

/// The most bytes of queued frames the fixture puts in one WebSocket message.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Sends `arguments.len()` non-blocking `EchoToCaller` calls as ONE WebSocket message.
async fn send_batch(peer: &mut Peer, texts: &[String]) {
    let mut bytes = Vec::new();
    for text in texts {
        let message = HubMessage::Invocation(Invocation {
            invocation_id: None,
            target: "EchoToCaller".into(),
            arguments: vec![peer.arg(text)],
            stream_ids: None,
            headers: Default::default(),
        });
        peer.protocol.encode(&message, &mut bytes);
    }
    let frame = match peer.protocol {
        Protocol::Json => Message::text(String::from_utf8(bytes).unwrap()),
        Protocol::MessagePack => Message::binary(bytes),
    };
    within(peer.ws.send(frame)).await.unwrap();
}

/// Every hub message in one WebSocket message's bytes, Pings left out; fails on a partial record.
fn records(protocol: Protocol, bytes: &[u8]) -> Vec<HubMessage> {
    let mut framer = protocol.framer(1 << 20);
    framer.push(bytes);
    let mut messages = Vec::new();
    while let Some(record) = framer.next_record().unwrap() {
        match protocol.decode(&record).unwrap() {
            Decoded::Message(HubMessage::Ping) => {}
            Decoded::Message(message) => messages.push(message),
            Decoded::Unknown { type_id } => panic!("unknown message type {type_id}"),
        }
    }
    assert_eq!(
        framer.next_record().unwrap(),
        None,
        "no partial record left"
    );
    messages
}

/// The text argument of an `Echoed` invocation.
fn echoed(protocol: Protocol, message: &HubMessage) -> String {
    let HubMessage::Invocation(invocation) = message else {
        panic!("an Echoed invocation, got {message:?}")
    };
    assert_eq!(invocation.target, "Echoed");
    let _ = protocol;
    let value: Value = invocation.arguments[0].decode().unwrap();
    value.as_str().unwrap().to_owned()
}

async fn replies_queued_together_arrive_as_one_message(protocol: Protocol) {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, protocol).await;
    let texts: Vec<String> = (0..CALLS).map(|i| format!("call {i}")).collect();
    send_batch(&mut peer, &texts).await;

    let first = read(&mut peer.ws).await.expect("a message");
    let messages = records(protocol, &first);
    let got: Vec<String> = messages.iter().map(|m| echoed(protocol, m)).collect();
    assert_eq!(
        got, texts,
        "all {CALLS} replies, in order, in the first message"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn json_replies_queued_together_arrive_as_one_text_message_in_order() {
    replies_queued_together_arrive_as_one_message(Protocol::Json).await;
}

#[tokio::test(flavor = "current_thread")]
async fn messagepack_replies_queued_together_arrive_as_one_binary_message_in_order() {
    replies_queued_together_arrive_as_one_message(Protocol::MessagePack).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_of_queued_replies_stays_within_64_kib_and_keeps_their_order() {
    // Room for the client's own batch of calls (about 200 KB in one message).
    let config = Config {
        max_receive_message_size: 1 << 20,
        ..Default::default()
    };
    let server = fixture(config).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    // Five replies of about 25 KB: at most two fit in one message, so the third is held back
    // for the next message, and so on; a 70 KB one goes alone, whole.
    let mut texts: Vec<String> = (0..5)
        .map(|i| format!("{i}{}", "x".repeat(25_000)))
        .collect();
    texts.insert(2, "big".to_owned() + &"y".repeat(70_000));
    texts.push("small".to_owned());
    send_batch(&mut peer, &texts).await;

    let mut got = Vec::new();
    let mut sizes = Vec::new();
    while got.len() < texts.len() {
        let bytes = read(&mut peer.ws).await.expect("a message");
        sizes.push(bytes.len());
        for message in records(Protocol::Json, &bytes) {
            got.push(echoed(Protocol::Json, &message));
        }
    }
    assert_eq!(got, texts, "every reply, in order");
    for (size, count) in sizes.iter().zip(1..) {
        assert!(
            *size <= COALESCE_LIMIT || *size > 70_000,
            "message {count} of {size} B is over the bound without being one large reply: {sizes:?}"
        );
    }
    assert!(
        sizes.len() < texts.len(),
        "some replies were sent together: {sizes:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_close_message_comes_after_the_replies_queued_before_it() {
    let server = fixture(Config::default()).await;
    let (mut peer, _) = Peer::connect(&server, Protocol::Json).await;
    // Calls to a method that does not exist: the session answers each at once with an error
    // Completion, then meets a record it cannot parse and answers with a Close; all of it is
    // queued before the socket task runs.
    let ids: Vec<String> = (0..CALLS).map(|i| i.to_string()).collect();
    let mut bytes = Vec::new();
    for id in &ids {
        let message = HubMessage::Invocation(Invocation {
            invocation_id: Some(id.clone()),
            target: "NoSuchMethod".into(),
            arguments: vec![],
            stream_ids: None,
            headers: Default::default(),
        });
        peer.protocol.encode(&message, &mut bytes);
    }
    bytes.extend_from_slice(b"{\"type\":1,\"target\":}\x1e");
    within(
        peer.ws
            .send(Message::text(String::from_utf8(bytes).unwrap())),
    )
    .await
    .unwrap();

    let mut got = Vec::new();
    let mut close = None;
    let mut messages = 0;
    while let Some(bytes) = read(&mut peer.ws).await {
        messages += 1;
        for message in records(Protocol::Json, &bytes) {
            match message {
                HubMessage::Close(c) => close = Some(c),
                HubMessage::Completion(c) => {
                    assert!(close.is_none(), "nothing after the Close: {c:?}");
                    got.push(c.invocation_id);
                }
                other => panic!("an unexpected message: {other:?}"),
            }
        }
    }
    assert_eq!(
        got, ids,
        "the error Completions, in order, before the Close"
    );
    assert_eq!(messages, 1, "the Completions and the Close in one message");
    let close = close.expect("a Close message");
    assert_eq!(
        json!(close.error),
        json!("Connection closed with an error.")
    );
    server.shutdown().await;
}
