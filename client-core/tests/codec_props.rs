//! Property tests of the wire format: round trips, arbitrary cuts, arbitrary bytes.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use proptest::prelude::*;
use talkback_core::protocol::{
    decode_arguments, encode_arguments, CancelInvocation, Close, Completion, CompletionResult,
    Decoded, HandshakeRequest, HandshakeResponse, Headers, HubMessage, Invocation, Protocol,
    RawValue, StreamItem,
};

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z\\u{0}-\\u{1f}\"\\\\é😀]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn id() -> impl Strategy<Value = String> {
    "[0-9a-z]{1,6}"
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::collection::btree_map("[A-Za-z-]{1,6}", "[ -~]{0,6}", 0..3)
}

fn message(protocol: Protocol) -> impl Strategy<Value = HubMessage> {
    let raw = move || json_value().prop_map(move |v| RawValue::encode(protocol, &v).unwrap());
    prop_oneof![
        (
            any::<bool>(),
            prop::option::of(id()),
            "[A-Za-z]{1,8}",
            prop::collection::vec(raw(), 0..4),
            prop::option::of(prop::collection::vec(id(), 0..3)),
            headers()
        )
            .prop_map(
                |(stream, invocation_id, target, arguments, stream_ids, headers)| {
                    if stream {
                        HubMessage::StreamInvocation(Invocation {
                            invocation_id: Some(invocation_id.unwrap_or_else(|| "1".into())),
                            target,
                            arguments,
                            stream_ids,
                            headers,
                        })
                    } else {
                        HubMessage::Invocation(Invocation {
                            invocation_id,
                            target,
                            arguments,
                            stream_ids,
                            headers,
                        })
                    }
                }
            ),
        (id(), raw(), headers()).prop_map(|(invocation_id, item, headers)| {
            HubMessage::StreamItem(StreamItem {
                invocation_id,
                item,
                headers,
            })
        }),
        (
            id(),
            prop_oneof![
                Just(CompletionResult::Void),
                raw().prop_map(CompletionResult::Value),
                "[ -~]{0,10}".prop_map(CompletionResult::Error)
            ],
            headers()
        )
            .prop_map(|(invocation_id, result, headers)| {
                HubMessage::Completion(Completion {
                    invocation_id,
                    result,
                    headers,
                })
            }),
        (id(), headers()).prop_map(|(invocation_id, headers)| {
            HubMessage::CancelInvocation(CancelInvocation {
                invocation_id,
                headers,
            })
        }),
        Just(HubMessage::Ping),
        (prop::option::of("[ -~]{0,10}"), any::<bool>()).prop_map(|(error, allow_reconnect)| {
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }),
        any::<u64>().prop_map(HubMessage::Ack),
        any::<u64>().prop_map(HubMessage::Sequence),
    ]
}

fn protocol_and_messages() -> impl Strategy<Value = (Protocol, Vec<HubMessage>)> {
    prop_oneof![Just(Protocol::Json), Just(Protocol::MessagePack)]
        .prop_flat_map(|p| (Just(p), prop::collection::vec(message(p), 1..12)))
}

proptest! {
    #[test]
    fn messages_survive_encode_then_decode_cut_at_arbitrary_points(
        (protocol, messages) in protocol_and_messages(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for m in &messages {
            protocol.encode(m, &mut stream);
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut framer = protocol.framer(1 << 20);
        let mut decoded = Vec::new();
        for pair in points.windows(2) {
            framer.push(&stream[pair[0]..pair[1]]);
            while let Some(record) = framer.next_record().unwrap() {
                match protocol.decode(&record).unwrap() {
                    Decoded::Message(m) => decoded.push(m),
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for protocol in [Protocol::Json, Protocol::MessagePack] {
            let _ = protocol.decode(&bytes);
            let mut framer = protocol.framer(64);
            framer.push(&bytes);
            while let Ok(Some(record)) = framer.next_record() {
                let _ = protocol.decode(&record);
            }
        }
        let _ = HandshakeRequest::parse(&bytes);
        let _ = HandshakeResponse::parse(&bytes);
    }

    #[test]
    fn argument_lists_round_trip(a in any::<i64>(), b in ".{0,20}", c in prop::collection::vec(any::<u8>(), 0..8)) {
        for protocol in [Protocol::Json, Protocol::MessagePack] {
            let args = encode_arguments(protocol, &(a, &b, &c)).unwrap();
            prop_assert_eq!(args.len(), 3);
            let back: (i64, String, Vec<u8>) = decode_arguments(&args).unwrap();
            prop_assert_eq!(&back, &(a, b.clone(), c.clone()));
        }
    }

    #[test]
    fn argument_lists_of_any_length_round_trip(items in prop::collection::vec(".{0,12}", 0..5)) {
        for protocol in [Protocol::Json, Protocol::MessagePack] {
            let args = encode_arguments(protocol, &items).unwrap();
            prop_assert_eq!(args.len(), items.len());
            for (arg, item) in args.iter().zip(&items) {
                prop_assert_eq!(&arg.decode::<String>().unwrap(), item);
            }
            let back: Vec<String> = decode_arguments(&args).unwrap();
            prop_assert_eq!(&back, &items);
        }
    }

    #[test]
    fn values_transcode_without_loss(v in json_value()) {
        let json = RawValue::encode(Protocol::Json, &v).unwrap();
        let packed = json.to_protocol(Protocol::MessagePack).unwrap();
        let back: serde_json::Value = packed.to_protocol(Protocol::Json).unwrap().decode().unwrap();
        prop_assert_eq!(back, v);
    }
}
