//! Encode and decode throughput per message type and protocol.
//!
//! `cargo bench -p talkback-core --bench codec`; the headline figure is the invocation with one
//! 2 KB string argument (messages per second = 1 / time per iteration).

#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use talkback_core::protocol::{
    encode_arguments, Completion, CompletionResult, HubMessage, Invocation, Protocol, RawValue,
    StreamItem,
};

fn messages(protocol: Protocol) -> Vec<(&'static str, HubMessage)> {
    let text = "x".repeat(2048);
    vec![
        (
            "invocation_2kb",
            HubMessage::Invocation(Invocation {
                invocation_id: Some("17".into()),
                target: "Send".into(),
                arguments: encode_arguments(protocol, &(&text,)).unwrap(),
                stream_ids: None,
                headers: Default::default(),
            }),
        ),
        (
            "invocation_small",
            HubMessage::Invocation(Invocation {
                invocation_id: Some("17".into()),
                target: "Add".into(),
                arguments: encode_arguments(protocol, &(1, 2)).unwrap(),
                stream_ids: None,
                headers: Default::default(),
            }),
        ),
        (
            "stream_item",
            HubMessage::StreamItem(StreamItem {
                invocation_id: "3".into(),
                item: RawValue::encode(protocol, &12345).unwrap(),
                headers: Default::default(),
            }),
        ),
        (
            "completion",
            HubMessage::Completion(Completion {
                invocation_id: "3".into(),
                result: CompletionResult::Value(RawValue::encode(protocol, &"done").unwrap()),
                headers: Default::default(),
            }),
        ),
        ("ping", HubMessage::Ping),
        ("ack", HubMessage::Ack(1394)),
    ]
}

fn codec(c: &mut Criterion) {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let mut group = c.benchmark_group(protocol.name());
        group.throughput(Throughput::Elements(1));
        for (name, message) in messages(protocol) {
            group.bench_function(format!("encode/{name}"), |b| {
                let mut out = Vec::with_capacity(4096);
                b.iter(|| {
                    out.clear();
                    protocol.encode(black_box(&message), &mut out);
                })
            });
            let mut framed = Vec::new();
            protocol.encode(&message, &mut framed);
            group.bench_function(format!("decode/{name}"), |b| {
                b.iter_batched_ref(
                    || protocol.framer(1 << 20),
                    |framer| {
                        framer.push(black_box(&framed));
                        let record = framer.next_record().unwrap().unwrap();
                        black_box(protocol.decode(&record).unwrap());
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
