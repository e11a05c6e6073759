//! Handshake requests and responses parse or fail cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::protocol::{HandshakeRequest, HandshakeResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = HandshakeRequest::parse(data) {
        let mut out = Vec::new();
        request.encode(&mut out);
        assert_eq!(HandshakeRequest::parse(&out[..out.len() - 1]).unwrap(), request);
    }
    let _ = HandshakeResponse::parse(data);
});
