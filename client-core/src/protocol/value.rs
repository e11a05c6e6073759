//! [`RawValue`]: an argument, result or stream item kept in its wire encoding.

use super::Protocol;
use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

/// One argument, result or stream item, still in the encoding of the protocol it arrived in
/// (JSON text or MessagePack bytes). Decoding to a serde type happens only when asked.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawValue {
    protocol: Protocol,
    bytes: Bytes,
}

/// A value could not be converted to or from a serde type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl RawValue {
    /// Wraps bytes that already hold one complete value in `protocol`'s encoding.
    ///
    /// The caller vouches for the bytes; decoders use this after validating the record.
    pub fn from_encoded(protocol: Protocol, bytes: Bytes) -> Self {
        RawValue { protocol, bytes }
    }

    /// Encodes a serde value for `protocol` (MessagePack structs become maps, as the official
    /// clients write them).
    pub fn encode<T: Serialize + ?Sized>(protocol: Protocol, value: &T) -> Result<Self, ValueError> {
        let _ = (protocol, value);
        todo!("codec")
    }

    /// The encoded `null` of `protocol`.
    pub fn null(protocol: Protocol) -> Self {
        let _ = protocol;
        todo!("codec")
    }

    /// Decodes into a serde type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        todo!("codec")
    }

    /// The protocol whose encoding the bytes are in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The encoded bytes (JSON text or one MessagePack value).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The same value in another protocol's encoding (MessagePack `bin` becomes a Base64 string
    /// in JSON).
    pub fn to_protocol(&self, protocol: Protocol) -> Result<RawValue, ValueError> {
        let _ = protocol;
        todo!("codec")
    }
}

impl std::fmt::Debug for RawValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.protocol {
            Protocol::Json => write!(f, "Json({})", String::from_utf8_lossy(&self.bytes)),
            Protocol::MessagePack => write!(f, "MessagePack({:02x?})", &self.bytes[..]),
        }
    }
}

/// Encodes a tuple or sequence (`(1, "a")`, `Vec<T>`, `()`) as one [`RawValue`] per element:
/// the argument list of an invocation.
pub fn encode_arguments<T: Serialize + ?Sized>(
    protocol: Protocol,
    arguments: &T,
) -> Result<Vec<RawValue>, ValueError> {
    let _ = (protocol, arguments);
    todo!("codec")
}

/// Decodes an argument list into a tuple or sequence type (`(i64, String)`, `Vec<T>`, `()`).
pub fn decode_arguments<T: DeserializeOwned>(arguments: &[RawValue]) -> Result<T, ValueError> {
    let _ = arguments;
    todo!("codec")
}
