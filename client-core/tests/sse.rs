//! The Server-Sent Events parser and formatter (docs/protocol/transport.md, "Server-Sent
//! Events").

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use proptest::prelude::*;
use talkback_core::sse::{format_event, SseError, SseParser};

fn events(parser: &mut SseParser) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(event) = parser.next_event().unwrap() {
        out.push(event.data.to_vec());
    }
    out
}

fn parse_all(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut parser = SseParser::new();
    parser.push(stream);
    events(&mut parser)
}

#[test]
fn item_40_multiple_data_lines_are_joined_with_newline() {
    assert_eq!(
        parse_all(b":\r\ndata: Hello\r\ndata: World\r\n\r\n"),
        [b"Hello\nWorld".to_vec()]
    );
    assert_eq!(
        parse_all(b"data:a\ndata:\ndata:  b\n\n"),
        [b"a\n\n b".to_vec()]
    );
}

#[test]
fn cr_lf_and_crlf_line_ends_all_work() {
    assert_eq!(
        parse_all(b"data: one\r\rdata: two\n\ndata: three\r\n\r\n"),
        [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn a_crlf_split_across_pushes_is_one_line_end() {
    let mut parser = SseParser::new();
    parser.push(b"data: a\r");
    assert_eq!(events(&mut parser), Vec::<Vec<u8>>::new());
    parser.push(b"\n");
    assert_eq!(events(&mut parser), Vec::<Vec<u8>>::new());
    parser.push(b"\r");
    assert_eq!(events(&mut parser), [b"a".to_vec()]);
    parser.push(b"\ndata: b\n\n");
    assert_eq!(events(&mut parser), [b"b".to_vec()]);
}

#[test]
fn comments_other_fields_and_empty_events_are_skipped() {
    assert_eq!(
        parse_all(
            b": keep-alive\r\nevent: x\r\nid: 7\r\nretry: 10\r\nfoo: bar\r\n\r\nevent: only\r\n\r\ndata\r\n\r\n"
        ),
        [b"".to_vec()]
    );
}

#[test]
fn a_leading_bom_is_ignored_even_when_split() {
    let mut parser = SseParser::new();
    parser.push(b"\xEF\xBB");
    assert_eq!(events(&mut parser), Vec::<Vec<u8>>::new());
    parser.push(b"\xBFdata: x\n\n");
    assert_eq!(events(&mut parser), [b"x".to_vec()]);
}

#[test]
fn an_event_or_line_larger_than_the_limit_is_an_error() {
    let mut parser = SseParser::with_max_event_size(8);
    parser.push(b"data: 12345\ndata: 6789\n\n");
    assert_eq!(parser.next_event(), Err(SseError::TooLarge { limit: 8 }));
    assert!(parser.next_event().is_err());

    let mut parser = SseParser::with_max_event_size(8);
    parser.push(b"data: 0123456789");
    assert!(parser.next_event().is_err());

    let mut parser = SseParser::with_max_event_size(8);
    parser.push(b"data: 12345678\n\n");
    assert_eq!(events(&mut parser), [b"12345678".to_vec()]);
}

#[test]
fn format_event_writes_one_data_line_per_payload_line() {
    let mut out = Vec::new();
    format_event(b"Hello\nWorld", &mut out);
    assert_eq!(out, b"data: Hello\r\ndata: World\r\n\r\n");
    out.clear();
    format_event(b"a\r\nb", &mut out);
    assert_eq!(out, b"data: a\r\ndata: b\r\n\r\n");
    out.clear();
    format_event(b"", &mut out);
    assert_eq!(out, b"data: \r\n\r\n");
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    // Payloads without a lone `\r`: the format turns `\r\n` into `\n`, so compare normalized.
    prop::collection::vec(
        prop_oneof![
            any::<u8>().prop_filter("no CR", |b| *b != b'\r'),
            Just(b'\n')
        ],
        0..64,
    )
}

proptest! {
    #[test]
    fn format_then_parse_gives_back_payloads(payloads in prop::collection::vec(payload(), 0..6)) {
        let mut stream = b":\r\n".to_vec();
        for p in &payloads {
            format_event(p, &mut stream);
        }
        prop_assert_eq!(parse_all(&stream), payloads);
    }

    #[test]
    fn any_split_of_a_stream_gives_the_same_events(
        payloads in prop::collection::vec(payload(), 0..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut stream = b"\xEF\xBB\xBF:\r\n".to_vec();
        for p in &payloads {
            format_event(p, &mut stream);
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parser = SseParser::new();
        let mut got = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            parser.push(&stream[start..cut]);
            start = cut;
            got.extend(events(&mut parser));
        }
        prop_assert_eq!(got, payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let mut parser = SseParser::with_max_event_size(100);
        for chunk in &chunks {
            parser.push(chunk);
            while let Ok(Some(event)) = parser.next_event() {
                prop_assert!(event.data.len() <= 100);
            }
        }
    }
}

#[test]
fn a_long_line_arriving_byte_by_byte_is_parsed() {
    let mut parser = SseParser::new();
    let mut stream = Vec::new();
    format_event(&vec![b'x'; 100_000], &mut stream);
    let mut got = Vec::new();
    for b in &stream {
        parser.push(std::slice::from_ref(b));
        got.extend(events(&mut parser));
    }
    assert_eq!(got, [vec![b'x'; 100_000]]);
}
