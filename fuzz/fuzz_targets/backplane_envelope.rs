//! Anything published to Redis is untrusted: every backplane decoder (invocation, group command,
//! ack, client-result completion) returns a value or an error for any bytes, never panics, and a
//! decoded envelope re-encodes to a payload that decodes to the same envelope.
//!
//! The codec is `server-fixture/src/backplane/protocol.rs`, included by path: it is pure (rmp and
//! thiserror only), so the fuzz build does not pull in the fixture's server stack.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../server-fixture/src/backplane/protocol.rs"]
#[allow(dead_code)]
mod protocol;

fuzz_target!(|data: &[u8]| {
    if let Ok(invocation) = protocol::decode_invocation(data) {
        let again = protocol::decode_invocation(&protocol::encode_invocation(&invocation));
        assert_eq!(again.as_ref(), Ok(&invocation));
    }
    if let Ok(command) = protocol::decode_group_command(data) {
        let again = protocol::decode_group_command(&protocol::encode_group_command(&command));
        assert_eq!(again.as_ref(), Ok(&command));
    }
    if let Ok(id) = protocol::decode_ack(data) {
        assert_eq!(protocol::decode_ack(&protocol::encode_ack(id)), Ok(id));
    }
    if let Ok(completion) = protocol::decode_completion(data) {
        let again = protocol::decode_completion(&protocol::encode_completion(&completion));
        assert_eq!(again.as_ref(), Ok(&completion));
    }
});
