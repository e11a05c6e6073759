//! The MessagePack hub protocol (`protocol.md` 2.4).

use super::{Decoded, HubMessage, ProtocolError};

pub(super) fn encode(message: &HubMessage, out: &mut Vec<u8>) {
    let _ = (message, out);
    todo!("codec")
}

pub(super) fn decode(record: &[u8]) -> Result<Decoded, ProtocolError> {
    let _ = record;
    todo!("codec")
}
