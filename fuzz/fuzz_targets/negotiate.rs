//! Negotiate bodies parse or fail cleanly, and a parsed response survives the server's encoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::negotiate::NegotiateResponse;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = NegotiateResponse::parse(data) {
        let _ = NegotiateResponse::parse(response.to_json().as_bytes());
    }
});
