//! Any record decodes to a message or an error; a decoded message re-encodes and decodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::protocol::{Decoded, Protocol};

fuzz_target!(|data: &[u8]| {
    if let Ok(Decoded::Message(message)) = Protocol::Json.decode(data) {
        let mut out = Vec::new();
        Protocol::Json.encode(&message, &mut out);
        let again = Protocol::Json.decode(&out[..out.len() - 1]).expect("re-encoded message decodes");
        assert_eq!(again, Decoded::Message(message));
    }
});
