//! The event-stream parser takes input cut anywhere and never panics or exceeds its limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::sse::SseParser;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let mut parser = SseParser::with_max_event_size(4096);
    for chunk in rest.chunks(usize::from(cut).max(1)) {
        parser.push(chunk);
        loop {
            match parser.next_event() {
                Ok(Some(event)) => assert!(event.data.len() <= 4096),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
