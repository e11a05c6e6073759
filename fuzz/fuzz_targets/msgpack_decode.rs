//! Any record decodes to a message or an error; a decoded message re-encodes and decodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::protocol::{Decoded, Protocol};

fuzz_target!(|data: &[u8]| {
    if let Ok(Decoded::Message(message)) = Protocol::MessagePack.decode(data) {
        let mut out = Vec::new();
        Protocol::MessagePack.encode(&message, &mut out);
        let again = Protocol::MessagePack.decode(&frame_body(&out)).expect("re-encoded message decodes");
        assert_eq!(again, Decoded::Message(message));
    }
});

/// The record inside one framed message.
fn frame_body(framed: &[u8]) -> Vec<u8> {
    let mut framer = Protocol::MessagePack.framer(usize::MAX);
    framer.push(framed);
    framer.next_record().unwrap().unwrap().to_vec()
}
