//! Golden bytes: every message the fixture sends, JSON and MessagePack, byte for byte as
//! ASP.NET Core's server writes it. Each test names the reference writer it mirrors
//! (`MessagePackHubProtocolWorker.cs`, `JsonHubProtocol.cs`, `HandshakeProtocol.cs` in
//! `dotnet/aspnetcore` `src/SignalR/common/`).
//!
//! The first half checks `talkback_fixture::wire` against hand-written vectors; the second half
//! reads what a running fixture sends to a raw WebSocket peer.

mod kit;

use futures::SinkExt;
use kit::*;
use std::collections::BTreeMap;
use std::time::Duration;
use talkback_core::protocol::{
    CancelInvocation, Close, Completion, CompletionResult, HubMessage, Invocation, StreamItem,
};
use talkback_fixture::wire::{encode_handshake_response, encode_server_message};
use talkback_fixture::Config;

fn json(message: &HubMessage) -> String {
    let mut out = Vec::new();
    encode_server_message(Protocol::Json, message, &mut out);
    String::from_utf8(out).unwrap()
}

fn msgpack(message: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    encode_server_message(Protocol::MessagePack, message, &mut out);
    out
}

/// A MessagePack record: the VarInt length prefix (one byte here), then `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(body);
    out
}

fn invocation(id: Option<&str>, target: &str, arguments: Vec<RawValue>) -> Invocation {
    Invocation {
        invocation_id: id.map(str::to_owned),
        target: target.into(),
        arguments,
        stream_ids: None,
        headers: Default::default(),
    }
}

fn headers() -> BTreeMap<String, String> {
    BTreeMap::from([("k".to_owned(), "v".to_owned())])
}

fn mp(value: impl serde::Serialize) -> RawValue {
    RawValue::encode(Protocol::MessagePack, &value).unwrap()
}

fn js(value: impl serde::Serialize) -> RawValue {
    RawValue::encode(Protocol::Json, &value).unwrap()
}

fn completion(id: &str, result: CompletionResult) -> HubMessage {
    HubMessage::Completion(Completion {
        invocation_id: id.into(),
        result,
        headers: Default::default(),
    })
}

// ------------------------------------------------------------------ MessagePack vectors

/// `WriteInvocationMessage`: `WriteArrayHeader(6)`, `nil` for no id, and `WriteStreamIds`
/// writes an empty array when there are none (the JS client writes 5 elements).
#[test]
fn msgpack_invocation_always_has_six_elements() {
    let welcome = HubMessage::Invocation(invocation(None, "Welcome", vec![mp("abc")]));
    let mut body = vec![0x96, 0x01, 0x80, 0xc0, 0xa7];
    body.extend_from_slice(b"Welcome");
    body.extend_from_slice(&[0x91, 0xa3, b'a', b'b', b'c', 0x90]);
    assert_eq!(msgpack(&welcome), framed(&body));

    // A client-result invocation: an id, headers, and stream ids when there are some.
    let mut ask = invocation(Some("s0"), "Ask", vec![]);
    ask.headers = headers();
    ask.stream_ids = Some(vec!["a".into()]);
    let body = [
        0x96, 0x01, 0x81, 0xa1, b'k', 0xa1, b'v', 0xa2, b's', b'0', 0xa3, b'A', b's', b'k', 0x90,
        0x91, 0xa1, b'a',
    ];
    assert_eq!(msgpack(&HubMessage::Invocation(ask)), framed(&body));

    // `string.IsNullOrEmpty(InvocationId)` writes nil.
    let empty = HubMessage::Invocation(invocation(Some(""), "T", vec![]));
    assert_eq!(
        msgpack(&empty),
        framed(&[0x96, 0x01, 0x80, 0xc0, 0xa1, b'T', 0x90, 0x90])
    );
}

/// `WriteStreamInvocationMessage`: six elements too.
#[test]
fn msgpack_stream_invocation_has_six_elements() {
    let message = HubMessage::StreamInvocation(invocation(Some("1"), "S", vec![mp(2)]));
    assert_eq!(
        msgpack(&message),
        framed(&[0x96, 0x04, 0x80, 0xa1, b'1', 0xa1, b'S', 0x91, 0x02, 0x90])
    );
}

/// `WriteStreamingItemMessage`: `[2, headers, id, item]`.
#[test]
fn msgpack_stream_item() {
    let message = HubMessage::StreamItem(StreamItem {
        invocation_id: "7".into(),
        item: mp(42),
        headers: Default::default(),
    });
    assert_eq!(
        msgpack(&message),
        framed(&[0x94, 0x02, 0x80, 0xa1, b'7', 0x2a])
    );
}

/// `WriteCompletionMessage`: result kind 1 (error), 2 (void), 3 (value); 4 or 5 elements.
#[test]
fn msgpack_completion_result_kinds() {
    let prefix = [0x03, 0x80, 0xa1, b'1'];
    let with = |len: u8, rest: &[u8]| {
        let mut body = vec![len];
        body.extend_from_slice(&prefix);
        body.extend_from_slice(rest);
        framed(&body)
    };
    assert_eq!(
        msgpack(&completion("1", CompletionResult::Void)),
        with(0x94, &[0x02])
    );
    assert_eq!(
        msgpack(&completion("1", CompletionResult::Value(mp(5)))),
        with(0x95, &[0x03, 0x05])
    );
    assert_eq!(
        msgpack(&completion(
            "1",
            CompletionResult::Value(RawValue::null(Protocol::MessagePack))
        )),
        with(0x95, &[0x03, 0xc0])
    );
    assert_eq!(
        msgpack(&completion("1", CompletionResult::Error("no".into()))),
        with(0x95, &[0x01, 0xa2, b'n', b'o'])
    );
    // A JSON-held value is transcoded.
    assert_eq!(
        msgpack(&completion("1", CompletionResult::Value(js(5)))),
        with(0x95, &[0x03, 0x05])
    );
}

/// `WriteCancelInvocationMessage`: `[5, headers, id]`.
#[test]
fn msgpack_cancel_invocation() {
    let message = HubMessage::CancelInvocation(CancelInvocation {
        invocation_id: "1".into(),
        headers: Default::default(),
    });
    assert_eq!(msgpack(&message), framed(&[0x93, 0x05, 0x80, 0xa1, b'1']));
}

/// `WritePingMessage`: `[6]`.
#[test]
fn msgpack_ping() {
    assert_eq!(msgpack(&HubMessage::Ping), [0x02, 0x91, 0x06]);
}

/// `WriteCloseMessage`: always `WriteArrayHeader(3)`: `[7, error or nil, allowReconnect]`,
/// `nil` when the error is null or empty (the JS client writes `[7, error]`).
#[test]
fn msgpack_close_always_has_three_elements() {
    let close = |error: Option<&str>, allow_reconnect| {
        msgpack(&HubMessage::Close(Close {
            error: error.map(str::to_owned),
            allow_reconnect,
        }))
    };
    assert_eq!(close(None, false), framed(&[0x93, 0x07, 0xc0, 0xc2]));
    assert_eq!(close(Some(""), false), framed(&[0x93, 0x07, 0xc0, 0xc2]));
    assert_eq!(close(None, true), framed(&[0x93, 0x07, 0xc0, 0xc3]));
    assert_eq!(
        close(Some("bye"), true),
        framed(&[0x93, 0x07, 0xa3, b'b', b'y', b'e', 0xc3])
    );
}

/// `WriteAckMessage` and `WriteSequenceMessage`: `[8|9, sequenceId]`, the id in its
/// shortest form.
#[test]
fn msgpack_ack_and_sequence() {
    assert_eq!(msgpack(&HubMessage::Ack(1)), framed(&[0x92, 0x08, 0x01]));
    assert_eq!(
        msgpack(&HubMessage::Ack(300)),
        framed(&[0x92, 0x08, 0xcd, 0x01, 0x2c])
    );
    assert_eq!(
        msgpack(&HubMessage::Sequence(1)),
        framed(&[0x92, 0x09, 0x01])
    );
}

/// `BinaryMessageFormatter.WriteLengthPrefix`: a VarInt, 7 bits a byte.
#[test]
fn msgpack_long_records_get_a_multi_byte_length_prefix() {
    let text = "x".repeat(200);
    let bytes = msgpack(&completion("1", CompletionResult::Error(text)));
    let body_len = 1 + 1 + 1 + 2 + 1 + 2 + 200;
    assert_eq!(body_len, 208);
    assert_eq!(&bytes[..2], &[0xd0, 0x01], "208 = 0x50 | 0x80, then 1");
    assert_eq!(bytes.len(), 2 + body_len);
}

// ------------------------------------------------------------------ JSON vectors

/// `WriteMessageCore` + `WriteInvocationMessage`: `type`, then `headers`, then the
/// invocation id (left out when null or empty), `target`, `arguments`, `streamIds` when set.
#[test]
fn json_invocation() {
    let welcome = HubMessage::Invocation(invocation(None, "Welcome", vec![js("abc")]));
    assert_eq!(
        json(&welcome),
        "{\"type\":1,\"target\":\"Welcome\",\"arguments\":[\"abc\"]}\x1e"
    );
    let mut ask = invocation(Some("s0"), "Ask", vec![js(1), mp(2)]);
    ask.headers = headers();
    ask.stream_ids = Some(vec!["a".into()]);
    assert_eq!(
        json(&HubMessage::Invocation(ask)),
        "{\"type\":1,\"headers\":{\"k\":\"v\"},\"invocationId\":\"s0\",\"target\":\"Ask\",\"arguments\":[1,2],\"streamIds\":[\"a\"]}\x1e"
    );
    let empty = HubMessage::Invocation(invocation(Some(""), "T", vec![]));
    assert_eq!(
        json(&empty),
        "{\"type\":1,\"target\":\"T\",\"arguments\":[]}\x1e"
    );
    let stream = HubMessage::StreamInvocation(invocation(Some("1"), "S", vec![]));
    assert_eq!(
        json(&stream),
        "{\"type\":4,\"invocationId\":\"1\",\"target\":\"S\",\"arguments\":[]}\x1e"
    );
}

/// `WriteStreamItemMessage`.
#[test]
fn json_stream_item() {
    let mut item = StreamItem {
        invocation_id: "7".into(),
        item: js(42),
        headers: Default::default(),
    };
    assert_eq!(
        json(&HubMessage::StreamItem(item.clone())),
        "{\"type\":2,\"invocationId\":\"7\",\"item\":42}\x1e"
    );
    item.headers = headers();
    assert_eq!(
        json(&HubMessage::StreamItem(item)),
        "{\"type\":2,\"headers\":{\"k\":\"v\"},\"invocationId\":\"7\",\"item\":42}\x1e"
    );
}

/// `WriteCompletionMessage`: `error` when non-empty, else `result` when there is one.
#[test]
fn json_completion_result_kinds() {
    assert_eq!(
        json(&completion("1", CompletionResult::Void)),
        "{\"type\":3,\"invocationId\":\"1\"}\x1e"
    );
    assert_eq!(
        json(&completion("1", CompletionResult::Value(js(5)))),
        "{\"type\":3,\"invocationId\":\"1\",\"result\":5}\x1e"
    );
    assert_eq!(
        json(&completion(
            "1",
            CompletionResult::Value(RawValue::null(Protocol::Json))
        )),
        "{\"type\":3,\"invocationId\":\"1\",\"result\":null}\x1e"
    );
    assert_eq!(
        json(&completion("1", CompletionResult::Error("no".into()))),
        "{\"type\":3,\"invocationId\":\"1\",\"error\":\"no\"}\x1e"
    );
    assert_eq!(
        json(&completion("1", CompletionResult::Error(String::new()))),
        "{\"type\":3,\"invocationId\":\"1\"}\x1e",
        "string.IsNullOrEmpty(Error): nothing written"
    );
}

/// `WriteCancelInvocationMessage`, the Ping case of `WriteMessageCore`, `WriteAckMessage`,
/// `WriteSequenceMessage`.
#[test]
fn json_cancel_ping_ack_sequence() {
    let cancel = HubMessage::CancelInvocation(CancelInvocation {
        invocation_id: "1".into(),
        headers: Default::default(),
    });
    assert_eq!(json(&cancel), "{\"type\":5,\"invocationId\":\"1\"}\x1e");
    assert_eq!(json(&HubMessage::Ping), "{\"type\":6}\x1e");
    assert_eq!(
        json(&HubMessage::Ack(300)),
        "{\"type\":8,\"sequenceId\":300}\x1e"
    );
    assert_eq!(
        json(&HubMessage::Sequence(1)),
        "{\"type\":9,\"sequenceId\":1}\x1e"
    );
}

/// `WriteCloseMessage`: `error` when not null (even empty), `allowReconnect` only when true.
#[test]
fn json_close_leaves_out_default_fields() {
    let close = |error: Option<&str>, allow_reconnect| {
        json(&HubMessage::Close(Close {
            error: error.map(str::to_owned),
            allow_reconnect,
        }))
    };
    assert_eq!(close(None, false), "{\"type\":7}\x1e");
    assert_eq!(close(Some(""), false), "{\"type\":7,\"error\":\"\"}\x1e");
    assert_eq!(
        close(Some("bye"), true),
        "{\"type\":7,\"error\":\"bye\",\"allowReconnect\":true}\x1e"
    );
    assert_eq!(
        close(None, true),
        "{\"type\":7,\"allowReconnect\":true}\x1e"
    );
}

/// `ReusableUtf8JsonWriter` uses `JavaScriptEncoder.UnsafeRelaxedJsonEscaping`: `'`, `<`, `&`
/// and non-ASCII stay as they are; quotes, backslashes and control characters are escaped,
/// characters outside the BMP as a surrogate pair, hex in upper case.
#[test]
fn json_strings_are_escaped_as_the_relaxed_encoder_does() {
    let text = "'a'<&>\"\\\n\t\u{1}\u{7f}é\u{2028}😀";
    assert_eq!(
        json(&completion("1", CompletionResult::Error(text.into()))),
        "{\"type\":3,\"invocationId\":\"1\",\"error\":\"'a'<&>\\\"\\\\\\n\\t\\u0001\\u007Fé\\u2028\\uD83D\\uDE00\"}\x1e"
    );
}

/// `HandshakeProtocol.WriteResponseMessage`: `{}` or `{"error":...}`, then `0x1E`.
#[test]
fn handshake_responses() {
    let mut ok = Vec::new();
    encode_handshake_response(None, &mut ok);
    assert_eq!(ok, b"{}\x1e");
    let mut refused = Vec::new();
    encode_handshake_response(Some("The protocol 'xml' is not supported."), &mut refused);
    assert_eq!(
        refused,
        b"{\"error\":\"The protocol 'xml' is not supported.\"}\x1e"
    );
}

// ------------------------------------------------------------------ over real sockets

/// A raw WebSocket peer after its handshake: every frame's bytes as they arrived.
async fn raw_peer(
    server: &talkback_fixture::Server,
    protocol: Protocol,
    version: u32,
) -> (Records, String, String) {
    let body = negotiate(server, "negotiateVersion=1&useStatefulReconnect=true").await;
    let token = body["connectionToken"].as_str().unwrap().to_owned();
    let id = body["connectionId"].as_str().unwrap().to_owned();
    let mut ws = open(&ws_url(server, &format!("id={token}"))).await;
    let request = format!(
        "{{\"protocol\":\"{}\",\"version\":{version}}}\x1e",
        protocol.name()
    );
    within(ws.send(Message::text(request))).await.unwrap();
    assert_eq!(
        read(&mut ws).await.unwrap(),
        b"{}\x1e",
        "HandshakeProtocol: {{}}"
    );
    (Records::new(ws), id, token)
}

/// A raw client socket read record by record: the fixture, like ASP.NET Core, may send several
/// records queued together as one WebSocket message.
struct Records {
    ws: Ws,
    /// Records of the last message not yet returned, each with its framing.
    pending: std::collections::VecDeque<Vec<u8>>,
}

impl Records {
    fn new(ws: Ws) -> Records {
        Records {
            ws,
            pending: Default::default(),
        }
    }

    /// The next record with its framing (the JSON record separator, the MessagePack length
    /// prefix), as the reference writers produce it.
    async fn next(&mut self, protocol: Protocol) -> Vec<u8> {
        while self.pending.is_empty() {
            let bytes = read(&mut self.ws).await.expect("a frame");
            self.pending.extend(split_records(protocol, &bytes));
        }
        self.pending.pop_front().unwrap()
    }
}

impl std::ops::Deref for Records {
    type Target = Ws;
    fn deref(&self) -> &Ws {
        &self.ws
    }
}

impl std::ops::DerefMut for Records {
    fn deref_mut(&mut self) -> &mut Ws {
        &mut self.ws
    }
}

/// One WebSocket message's records, each with its framing; fails on a partial record.
fn split_records(protocol: Protocol, mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let end = match protocol {
            Protocol::Json => {
                bytes
                    .iter()
                    .position(|&b| b == 0x1e)
                    .expect("a whole record")
                    + 1
            }
            Protocol::MessagePack => {
                // The length prefix: 7 bits per byte, low bits first, at most 5 bytes.
                let (mut length, mut prefix) = (0usize, 0usize);
                loop {
                    let byte = bytes[prefix];
                    length |= usize::from(byte & 0x7f) << (7 * prefix);
                    prefix += 1;
                    if byte & 0x80 == 0 || prefix == 5 {
                        break;
                    }
                }
                prefix + length
            }
        };
        assert!(end <= bytes.len(), "a whole record");
        records.push(bytes[..end].to_vec());
        bytes = &bytes[end..];
    }
    records
}

async fn send_text(ws: &mut Ws, protocol: Protocol, message: HubMessage) {
    let mut bytes = Vec::new();
    protocol.encode(&message, &mut bytes);
    let frame = match protocol {
        Protocol::Json => Message::text(String::from_utf8(bytes).unwrap()),
        Protocol::MessagePack => Message::binary(bytes),
    };
    within(ws.send(frame)).await.unwrap();
}

/// The next record that is not a Ping.
async fn next_frame(ws: &mut Records, protocol: Protocol) -> Vec<u8> {
    let ping = encoded(protocol, &HubMessage::Ping);
    loop {
        let frame = ws.next(protocol).await;
        if frame != ping {
            return frame;
        }
    }
}

fn encoded(protocol: Protocol, message: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    encode_server_message(protocol, message, &mut out);
    out
}

/// What the test hub sends, over a real socket, equals the reference writers' bytes: the
/// Welcome Invocation, Completions of each kind, StreamItems, and the Close.
async fn server_messages_over_a_socket(protocol: Protocol) {
    let server = fixture(Config::default()).await;
    let (mut ws, id, _) = raw_peer(&server, protocol, 1).await;
    let arg = |v: serde_json::Value| RawValue::encode(protocol, &v).unwrap();
    let welcome = next_frame(&mut ws, protocol).await;
    let expected =
        HubMessage::Invocation(invocation(None, "Welcome", vec![arg(id.clone().into())]));
    assert_eq!(welcome, encoded(protocol, &expected));
    match protocol {
        Protocol::MessagePack => assert_eq!(&welcome[1..5], &[0x96, 0x01, 0x80, 0xc0]),
        Protocol::Json => {
            assert!(welcome.starts_with(b"{\"type\":1,\"target\":\"Welcome\",\"arguments\":[\""))
        }
    }

    let call = |id: &str, target: &str, arguments: Vec<RawValue>| {
        HubMessage::Invocation(invocation(Some(id), target, arguments))
    };
    send_text(
        &mut ws,
        protocol,
        call("1", "Add", vec![arg(2.into()), arg(3.into())]),
    )
    .await;
    assert_eq!(
        next_frame(&mut ws, protocol).await,
        encoded(
            protocol,
            &completion("1", CompletionResult::Value(arg(5.into())))
        )
    );
    send_text(&mut ws, protocol, call("2", "DoNothing", vec![])).await;
    assert_eq!(
        next_frame(&mut ws, protocol).await,
        encoded(protocol, &completion("2", CompletionResult::Void))
    );
    send_text(&mut ws, protocol, call("3", "Nope", vec![])).await;
    let text = "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist.";
    assert_eq!(
        next_frame(&mut ws, protocol).await,
        encoded(
            protocol,
            &completion("3", CompletionResult::Error(text.into()))
        )
    );
    let stream = HubMessage::StreamInvocation(invocation(
        Some("4"),
        "Counter",
        vec![arg(1.into()), arg(0.into())],
    ));
    send_text(&mut ws, protocol, stream).await;
    let item = HubMessage::StreamItem(StreamItem {
        invocation_id: "4".into(),
        item: arg(0.into()),
        headers: Default::default(),
    });
    assert_eq!(
        next_frame(&mut ws, protocol).await,
        encoded(protocol, &item)
    );
    assert_eq!(
        next_frame(&mut ws, protocol).await,
        encoded(protocol, &completion("4", CompletionResult::Void))
    );
    let close = HubMessage::Close(Close {
        error: Some("bye".into()),
        allow_reconnect: false,
    });
    send_text(
        &mut ws,
        protocol,
        call(
            "5",
            "CloseWithMessage",
            vec![arg("bye".into()), arg(false.into())],
        ),
    )
    .await;
    let mut frame = next_frame(&mut ws, protocol).await;
    if frame == encoded(protocol, &completion("5", CompletionResult::Void)) {
        frame = next_frame(&mut ws, protocol).await;
    }
    assert_eq!(frame, encoded(protocol, &close));
    if protocol == Protocol::MessagePack {
        assert_eq!(frame, framed(&[0x93, 0x07, 0xa3, b'b', b'y', b'e', 0xc2]));
    } else {
        assert_eq!(frame, b"{\"type\":7,\"error\":\"bye\"}\x1e");
    }
    server.shutdown().await;
}

/// `MessagePackHubProtocolWorker`: `WriteInvocationMessage`, `WriteCompletionMessage`,
/// `WriteStreamingItemMessage`, `WriteCloseMessage`, as a MessagePack peer receives them.
#[tokio::test]
async fn msgpack_server_messages_over_a_socket() {
    server_messages_over_a_socket(Protocol::MessagePack).await;
}

/// `JsonHubProtocol.WriteMessageCore` for the same messages, as a JSON peer receives them.
#[tokio::test]
async fn json_server_messages_over_a_socket() {
    server_messages_over_a_socket(Protocol::Json).await;
}

/// `WritePingMessage` on the wire, both protocols.
#[tokio::test]
async fn pings_over_a_socket() {
    let server = fixture(Config {
        keep_alive_interval: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    for (protocol, ping) in [
        (Protocol::MessagePack, &b"\x02\x91\x06"[..]),
        (Protocol::Json, &b"{\"type\":6}\x1e"[..]),
    ] {
        let (mut ws, _, _) = raw_peer(&server, protocol, 1).await;
        let _welcome = read(&mut ws).await.unwrap();
        assert_eq!(read(&mut ws).await.unwrap(), ping, "{protocol:?}");
    }
    server.shutdown().await;
}

/// `WriteInvocationMessage` with an invocation id (a client result), both protocols.
#[tokio::test]
async fn client_result_invocations_over_a_socket() {
    let server = fixture(Config::default()).await;
    for protocol in [Protocol::MessagePack, Protocol::Json] {
        let (mut ws, _, _) = raw_peer(&server, protocol, 1).await;
        let _welcome = next_frame(&mut ws, protocol).await;
        let arg = |v: serde_json::Value| RawValue::encode(protocol, &v).unwrap();
        let ask = HubMessage::Invocation(invocation(
            Some("a"),
            "AskClient",
            vec![arg("Question".into()), arg(7.into())],
        ));
        send_text(&mut ws, protocol, ask).await;
        let expected =
            HubMessage::Invocation(invocation(Some("s0"), "Question", vec![arg(7.into())]));
        assert_eq!(
            next_frame(&mut ws, protocol).await,
            encoded(protocol, &expected),
            "{protocol:?}"
        );
    }
    server.shutdown().await;
}

/// `WriteAckMessage` and `WriteSequenceMessage` on the wire (stateful reconnect), both
/// protocols.
#[tokio::test]
async fn ack_and_sequence_over_a_socket() {
    let server = fixture(Config {
        allow_stateful_reconnect: true,
        ..Default::default()
    })
    .await;
    for protocol in [Protocol::MessagePack, Protocol::Json] {
        let (mut ws, _, token) = raw_peer(&server, protocol, 2).await;
        let _welcome = next_frame(&mut ws, protocol).await;
        let call = HubMessage::Invocation(invocation(None, "DoNothing", vec![]));
        send_text(&mut ws, protocol, call).await;
        assert_eq!(
            next_frame(&mut ws, protocol).await,
            encoded(protocol, &HubMessage::Ack(1)),
            "{protocol:?}"
        );
        drop(ws);
        let mut ws = Records::new(open(&ws_url(&server, &format!("id={token}"))).await);
        send_text(&mut ws, protocol, HubMessage::Sequence(2)).await;
        assert_eq!(
            next_frame(&mut ws, protocol).await,
            encoded(protocol, &HubMessage::Sequence(1)),
            "{protocol:?}: the Welcome (1) was never acknowledged"
        );
    }
    server.shutdown().await;
}
