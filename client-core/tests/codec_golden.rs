//! The wire format against the byte vectors of docs/protocol/hub-protocol.md ("Handshake" to
//! "MessagePack encoding"), in both directions.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use talkback_core::protocol::{
    decode_arguments, CancelInvocation, Close, Completion, CompletionResult, Decoded,
    HandshakeRequest, HandshakeResponse, HubMessage, Invocation, Protocol, ProtocolError, RawValue,
    StreamItem, DEFAULT_MAX_MESSAGE_SIZE,
};

fn decode_stream(protocol: Protocol, bytes: &[u8]) -> Result<Vec<Decoded>, ProtocolError> {
    let mut framer = protocol.framer(DEFAULT_MAX_MESSAGE_SIZE);
    framer.push(bytes);
    let mut out = Vec::new();
    while let Some(record) = framer.next_record()? {
        out.push(protocol.decode(&record)?);
    }
    Ok(out)
}

fn decode_one(protocol: Protocol, bytes: &[u8]) -> HubMessage {
    match decode_stream(protocol, bytes).unwrap().as_slice() {
        [Decoded::Message(m)] => m.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

fn encode(protocol: Protocol, message: &HubMessage) -> Vec<u8> {
    let mut out = Vec::new();
    protocol.encode(message, &mut out);
    out
}

fn json(text: &str) -> RawValue {
    RawValue::from_encoded(
        Protocol::Json,
        bytes::Bytes::copy_from_slice(text.as_bytes()),
    )
}

fn packed(body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut framed = vec![body.len() as u8];
    framed.extend_from_slice(body);
    framed
}

/// Each JSON example of docs/protocol/hub-protocol.md ("JSON encoding") decodes, and encodes
/// back to the same text.
#[test]
fn item_09_json_examples_of_the_spec_encode_to_their_exact_text() {
    let examples = [
        r#"{"type":1,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#,
        r#"{"type":1,"target":"Send","arguments":[42,"Test Message"]}"#,
        r#"{"type":1,"invocationId":"123","target":"Send","arguments":[42],"streamIds":["1"]}"#,
        r#"{"type":2,"invocationId":"123","item":42}"#,
        r#"{"type":3,"invocationId":"123"}"#,
        r#"{"type":3,"invocationId":"123","result":42}"#,
        r#"{"type":3,"invocationId":"123","error":"It didn't work!"}"#,
        r#"{"type":5,"invocationId":"123"}"#,
        r#"{"type":6}"#,
        r#"{"type":7,"error":"Connection closed because of an error!","allowReconnect":true}"#,
        r#"{"type":8,"sequenceId":1394}"#,
        r#"{"type":9,"sequenceId":1234}"#,
        r#"{"type":1,"invocationId":"1","target":"T","arguments":[],"headers":{"Foo":"Bar"}}"#,
    ];
    for example in examples {
        let framed = format!("{example}\x1e");
        let message = decode_one(Protocol::Json, framed.as_bytes());
        assert_eq!(
            String::from_utf8(encode(Protocol::Json, &message)).unwrap(),
            framed
        );
    }
}

#[test]
fn item_09_json_decoding_yields_the_spec_fields() {
    let m = decode_one(
        Protocol::Json,
        br#"{"type":1,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#
            .as_slice()
            .iter()
            .chain(b"\x1e")
            .copied()
            .collect::<Vec<_>>()
            .as_slice(),
    );
    let HubMessage::Invocation(inv) = m else {
        panic!()
    };
    assert_eq!(inv.invocation_id.as_deref(), Some("123"));
    let (n, text): (i64, String) = decode_arguments(&inv.arguments).unwrap();
    assert_eq!((n, text.as_str()), (42, "Test Message"));
    let m = decode_one(
        Protocol::Json,
        b"{\"type\":7,\"error\":\"x\",\"allowReconnect\":true}\x1e",
    );
    assert_eq!(
        m,
        HubMessage::Close(Close {
            error: Some("x".into()),
            allow_reconnect: true
        })
    );
    assert_eq!(
        decode_one(Protocol::Json, b"{\"type\":8,\"sequenceId\":1394}\x1e"),
        HubMessage::Ack(1394)
    );
}

#[test]
fn item_01_json_records_cut_at_frame_boundaries_are_buffered_not_failed() {
    let stream: &[u8] =
        b"{\"type\":6}\x1e{\"type\":2,\"invocationId\":\"1\",\"item\":\"a\"}\x1e{\"type\":6}\x1e";
    for cut in 1..stream.len() {
        let mut framer = Protocol::Json.framer(1024);
        framer.push(&stream[..cut]);
        let mut records = Vec::new();
        while let Some(r) = framer.next_record().unwrap() {
            records.push(r);
        }
        framer.push(&stream[cut..]);
        while let Some(r) = framer.next_record().unwrap() {
            records.push(r);
        }
        assert_eq!(records.len(), 3, "cut at {cut}");
    }
}

#[test]
fn item_02_varint_prefixes_decode_as_in_the_spec_and_a_large_fifth_byte_is_refused() {
    let body = b"Hello\nWorld";
    let mut framer = Protocol::MessagePack.framer(DEFAULT_MAX_MESSAGE_SIZE);
    framer.push(&[0x0b]);
    framer.push(body);
    assert_eq!(framer.next_record().unwrap().unwrap(), &body[..]);

    let mut framer = Protocol::MessagePack.framer(DEFAULT_MAX_MESSAGE_SIZE);
    framer.push(&[0x80, 0x29]);
    framer.push(&vec![0u8; 5247]);
    assert_eq!(
        framer.next_record().unwrap(),
        None,
        "5248 bytes announced, 5247 present"
    );
    framer.push(&[0]);
    assert_eq!(framer.next_record().unwrap().unwrap().len(), 5248);

    let mut framer = Protocol::MessagePack.framer(usize::MAX);
    framer.push(&[0xff, 0xff, 0xff, 0xff, 0x08]);
    assert_eq!(
        framer.next_record(),
        Err(ProtocolError::LengthPrefixTooLarge)
    );
}

#[test]
fn item_03_hub_messages_after_the_handshake_response_are_parsed_in_the_same_pass() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let mut bytes = Vec::new();
        HandshakeResponse::default().encode(&mut bytes);
        assert_eq!(bytes, b"{}\x1e");
        bytes.extend(encode(protocol, &HubMessage::Ping));
        bytes.extend(encode(protocol, &HubMessage::Ack(3)));
        let mut handshake = talkback_core::protocol::TextFramer::new(1024);
        handshake.push(&bytes);
        let record = handshake.next_record().unwrap().unwrap();
        assert_eq!(
            HandshakeResponse::parse(&record).unwrap(),
            HandshakeResponse::default()
        );
        let rest = handshake.take_remaining();
        let messages = decode_stream(protocol, &rest).unwrap();
        assert_eq!(
            messages,
            vec![
                Decoded::Message(HubMessage::Ping),
                Decoded::Message(HubMessage::Ack(3))
            ]
        );
    }
}

#[test]
fn item_04_the_handshake_request_names_the_protocol_and_version() {
    let mut out = Vec::new();
    HandshakeRequest {
        protocol: "messagepack".into(),
        version: 1,
    }
    .encode(&mut out);
    let text = String::from_utf8(out).unwrap();
    let value: serde_json::Value = serde_json::from_str(text.trim_end_matches('\x1e')).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"protocol":"messagepack","version":1})
    );
    assert!(text.ends_with('\x1e'));
}

#[test]
fn item_08_a_handshake_response_with_a_type_field_is_refused() {
    let err = HandshakeResponse::parse(br#"{"type":6}"#).unwrap_err();
    assert!(err
        .to_string()
        .contains("Expected a handshake response from the server."));
    let ok = HandshakeResponse::parse(br#"{"error":"nope","minorVersion":1}"#).unwrap();
    assert_eq!(ok.error.as_deref(), Some("nope"));
}

#[test]
fn item_10_json_properties_in_any_order_and_unknown_properties_are_accepted() {
    let m = decode_one(
        Protocol::Json,
        b"{\"arguments\":[1],\"extra\":{\"x\":[1,2]},\"target\":\"T\",\"type\":1}\x1e",
    );
    let HubMessage::Invocation(inv) = m else {
        panic!()
    };
    assert_eq!(inv.target, "T");
    assert_eq!(inv.invocation_id, None);
}

#[test]
fn item_11_unknown_message_types_are_skipped_in_both_protocols() {
    let got = decode_stream(Protocol::Json, b"{\"type\":42,\"x\":1}\x1e{\"type\":6}\x1e").unwrap();
    assert_eq!(
        got,
        vec![
            Decoded::Unknown { type_id: 42 },
            Decoded::Message(HubMessage::Ping)
        ]
    );
    let got = decode_stream(Protocol::MessagePack, &packed(&[0x92, 0x2a, 0x01])).unwrap();
    assert_eq!(got, vec![Decoded::Unknown { type_id: 42 }]);
}

#[test]
fn item_12_msgpack_arrays_of_every_accepted_length_decode() {
    // Invocation with 5 elements (no stream ids) and 6 + a trailing extra element.
    let five = b"\x95\x01\x80\xa1\x31\xa1T\x90";
    let HubMessage::Invocation(inv) = decode_one(Protocol::MessagePack, &packed(five)) else {
        panic!()
    };
    assert_eq!(inv.stream_ids, None);
    let seven = b"\x97\x01\x80\xa1\x31\xa1T\x90\x91\xa1\x32\xc3";
    let HubMessage::Invocation(inv) = decode_one(Protocol::MessagePack, &packed(seven)) else {
        panic!()
    };
    assert_eq!(inv.stream_ids, Some(vec!["2".into()]));
    // Close with 2 elements, and with 3.
    assert_eq!(
        decode_one(Protocol::MessagePack, &packed(b"\x92\x07\xc0")),
        HubMessage::Close(Close::default())
    );
    assert_eq!(
        decode_one(Protocol::MessagePack, &packed(b"\x93\x07\xa3xyz\xc3")),
        HubMessage::Close(Close {
            error: Some("xyz".into()),
            allow_reconnect: true
        })
    );
    // StreamItem with an extra trailing element.
    let HubMessage::StreamItem(item) = decode_one(
        Protocol::MessagePack,
        &packed(b"\x95\x02\x80\xa1\x31\x2a\xc0"),
    ) else {
        panic!()
    };
    assert_eq!(item.item.decode::<i32>().unwrap(), 42);
}

#[test]
fn item_13_msgpack_completions_use_result_kinds_and_void_has_four_elements() {
    let void = HubMessage::Completion(Completion {
        invocation_id: "1".into(),
        result: CompletionResult::Void,
        headers: Default::default(),
    });
    assert_eq!(
        encode(Protocol::MessagePack, &void),
        packed(b"\x94\x03\x80\xa1\x31\x02")
    );
    let error = HubMessage::Completion(Completion {
        invocation_id: "1".into(),
        result: CompletionResult::Error("e".into()),
        headers: Default::default(),
    });
    assert_eq!(
        encode(Protocol::MessagePack, &error),
        packed(b"\x95\x03\x80\xa1\x31\x01\xa1e")
    );
    let value = HubMessage::Completion(Completion {
        invocation_id: "1".into(),
        result: CompletionResult::Value(RawValue::encode(Protocol::MessagePack, &7).unwrap()),
        headers: Default::default(),
    });
    assert_eq!(
        encode(Protocol::MessagePack, &value),
        packed(b"\x95\x03\x80\xa1\x31\x03\x07")
    );
    for m in [void, error, value] {
        assert_eq!(
            decode_one(Protocol::MessagePack, &encode(Protocol::MessagePack, &m)),
            m
        );
    }
}

#[test]
fn item_14_msgpack_ping_is_exactly_0x91_0x06_with_its_prefix() {
    assert_eq!(
        encode(Protocol::MessagePack, &HubMessage::Ping),
        vec![0x02, 0x91, 0x06]
    );
    assert_eq!(
        decode_one(Protocol::MessagePack, &[0x02, 0x91, 0x06]),
        HubMessage::Ping
    );
}

#[test]
fn item_14_msgpack_golden_vectors_of_the_spec() {
    let invocation = b"\x96\x01\x80\xa3xyz\xa6method\x91\x2a\x90";
    let m = decode_one(Protocol::MessagePack, &packed(invocation));
    assert_eq!(encode(Protocol::MessagePack, &m), packed(invocation));
    let nonblocking = b"\x96\x01\x80\xc0\xa6method\x91\x2a\x90";
    let HubMessage::Invocation(inv) = decode_one(Protocol::MessagePack, &packed(nonblocking))
    else {
        panic!()
    };
    assert_eq!(inv.invocation_id, None);
    assert_eq!(
        encode(
            Protocol::MessagePack,
            &HubMessage::Close(Close {
                error: Some("xyz".into()),
                allow_reconnect: true
            })
        ),
        packed(b"\x93\x07\xa3xyz\xc3")
    );
    assert_eq!(
        encode(Protocol::MessagePack, &HubMessage::Ack(36)),
        packed(b"\x92\x08\x24")
    );
    assert_eq!(
        decode_one(Protocol::MessagePack, &packed(b"\x92\x08\xcc\x24")),
        HubMessage::Ack(36)
    );
    assert_eq!(
        decode_one(
            Protocol::MessagePack,
            &packed(b"\x92\x09\xcf\0\0\0\0\0\0\0\x05")
        ),
        HubMessage::Sequence(5)
    );
}

#[test]
fn item_15_msgpack_headers_are_a_string_map_in_position_one() {
    let mut headers = talkback_core::protocol::Headers::new();
    headers.insert("k".into(), "v".into());
    let m = HubMessage::CancelInvocation(CancelInvocation {
        invocation_id: "1".into(),
        headers,
    });
    assert_eq!(
        encode(Protocol::MessagePack, &m),
        packed(b"\x93\x05\x81\xa1k\xa1v\xa1\x31")
    );
    let err = Protocol::MessagePack
        .decode(b"\x93\x05\x91\x01\xa1\x31")
        .unwrap_err();
    assert_eq!(err, ProtocolError::InvalidHeaders);
}

#[test]
fn item_16_a_completion_with_result_and_error_is_refused_and_null_differs_from_none() {
    assert_eq!(
        Protocol::Json.decode(br#"{"type":3,"invocationId":"1","result":1,"error":"e"}"#),
        Err(ProtocolError::ResultAndError)
    );
    let HubMessage::Completion(c) = decode_one(
        Protocol::Json,
        b"{\"type\":3,\"invocationId\":\"1\",\"result\":null}\x1e",
    ) else {
        panic!()
    };
    assert!(matches!(c.result, CompletionResult::Value(ref v) if v.is_null()));
    let HubMessage::Completion(c) =
        decode_one(Protocol::Json, b"{\"type\":3,\"invocationId\":\"1\"}\x1e")
    else {
        panic!()
    };
    assert_eq!(c.result, CompletionResult::Void);
}

#[test]
fn item_17_byte_arrays_are_base64_in_json_and_bin_in_msgpack() {
    let bin = RawValue::from_encoded(
        Protocol::MessagePack,
        bytes::Bytes::from_static(b"\xc4\x03abc"),
    );
    assert_eq!(
        bin.to_protocol(Protocol::Json).unwrap().as_bytes(),
        b"\"YWJj\""
    );
    let item = HubMessage::StreamItem(StreamItem {
        invocation_id: "1".into(),
        item: bin,
        headers: Default::default(),
    });
    assert_eq!(
        encode(Protocol::Json, &item),
        b"{\"type\":2,\"invocationId\":\"1\",\"item\":\"YWJj\"}\x1e"
    );
    assert_eq!(
        encode(Protocol::MessagePack, &item),
        packed(b"\x94\x02\x80\xa1\x31\xc4\x03abc")
    );
}

#[test]
fn malformed_records_are_errors_not_panics() {
    let bad_json: [&[u8]; 7] = [
        b"",
        b"{",
        br#"{"type":"1"}"#,
        br#"{"type":1,"target":"","arguments":[]}"#,
        br#"{"type":2,"invocationId":"1"}"#,
        br#"{"type":3}"#,
        br#"{"type":8,"sequenceId":"x"}"#,
    ];
    for record in bad_json {
        assert!(
            Protocol::Json.decode(record).is_err(),
            "{:?}",
            String::from_utf8_lossy(record)
        );
    }
    let bad_msgpack: [&[u8]; 6] = [
        b"",
        b"\x90",
        b"\x01",
        b"\x95\x01\x80",
        b"\x94\x03\x80\xa1\x31\x03",
        b"\x96\x01\x80\xa1\x31\xa1T\xdd\xff\xff\xff\xff",
    ];
    for record in bad_msgpack {
        assert!(
            Protocol::MessagePack.decode(record).is_err(),
            "{record:02x?}"
        );
    }
}

#[test]
fn records_over_the_limit_are_refused_before_they_are_buffered() {
    let mut framer = Protocol::MessagePack.framer(100);
    framer.push(&[0xe8, 0x07]); // announces 1000 bytes
    assert!(matches!(
        framer.next_record(),
        Err(ProtocolError::MessageTooLarge {
            size: 1000,
            max: 100
        })
    ));
    let mut framer = Protocol::Json.framer(100);
    framer.push(&[b'x'; 101]);
    assert!(matches!(
        framer.next_record(),
        Err(ProtocolError::MessageTooLarge { .. })
    ));
}

#[test]
fn an_invocation_survives_both_protocols() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let m = HubMessage::StreamInvocation(Invocation {
            invocation_id: Some("7".into()),
            target: "Counter".into(),
            arguments: talkback_core::protocol::encode_arguments(protocol, &(10, 0)).unwrap(),
            stream_ids: Some(vec!["8".into()]),
            headers: [("a".to_string(), "b".to_string())].into(),
        });
        assert_eq!(decode_one(protocol, &encode(protocol, &m)), m);
    }
    let _ = json("1");
}
