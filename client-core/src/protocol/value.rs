//! [`RawValue`]: an argument, result or stream item kept in its wire encoding.

use super::msgpack::value_span;
use super::Protocol;
use base64::Engine as _;
use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

/// How deep a MessagePack value may nest when it is transcoded.
const MAX_TRANSCODE_DEPTH: usize = 128;

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
    pub fn encode<T: Serialize + ?Sized>(
        protocol: Protocol,
        value: &T,
    ) -> Result<Self, ValueError> {
        let bytes = match protocol {
            Protocol::Json => serde_json::to_vec(value).map_err(|e| ValueError(e.to_string()))?,
            Protocol::MessagePack => {
                let mut out = Vec::new();
                value
                    .serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())
                    .map_err(|e| ValueError(e.to_string()))?;
                out
            }
        };
        Ok(RawValue {
            protocol,
            bytes: bytes.into(),
        })
    }

    /// The encoded `null` of `protocol`.
    pub fn null(protocol: Protocol) -> Self {
        let bytes: &'static [u8] = match protocol {
            Protocol::Json => b"null",
            Protocol::MessagePack => &[0xc0],
        };
        RawValue {
            protocol,
            bytes: Bytes::from_static(bytes),
        }
    }

    /// Decodes into a serde type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        match self.protocol {
            Protocol::Json => {
                serde_json::from_slice(&self.bytes).map_err(|e| ValueError(e.to_string()))
            }
            Protocol::MessagePack => {
                rmp_serde::from_slice(&self.bytes).map_err(|e| ValueError(e.to_string()))
            }
        }
    }

    /// Whether the value is `null` (JSON) or `nil` (MessagePack).
    pub fn is_null(&self) -> bool {
        match self.protocol {
            Protocol::Json => self.bytes.trim_ascii() == b"null",
            Protocol::MessagePack => self.bytes[..] == [0xc0],
        }
    }

    /// The protocol whose encoding the bytes are in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The encoded bytes (JSON text or one MessagePack value).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the encoding is empty (never true for a decoded value).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The same value in another protocol's encoding (MessagePack `bin` becomes a Base64 string
    /// in JSON; non-string map keys become their JSON text).
    pub fn to_protocol(&self, protocol: Protocol) -> Result<RawValue, ValueError> {
        match (self.protocol, protocol) {
            (a, b) if a == b => Ok(self.clone()),
            (Protocol::Json, Protocol::MessagePack) => {
                let value: serde_json::Value = self.decode()?;
                RawValue::encode(Protocol::MessagePack, &value)
            }
            _ => {
                let value = rmpv::decode::read_value_with_max_depth(
                    &mut &self.bytes[..],
                    MAX_TRANSCODE_DEPTH,
                )
                .map_err(|e| ValueError(e.to_string()))?;
                RawValue::encode(Protocol::Json, &msgpack_to_json(value))
            }
        }
    }
}

/// Maps a MessagePack value onto JSON the way the hub protocol's type mapping does.
fn msgpack_to_json(value: rmpv::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        rmpv::Value::Nil => J::Null,
        rmpv::Value::Boolean(b) => J::Bool(b),
        rmpv::Value::Integer(i) => i
            .as_i64()
            .map(J::from)
            .or_else(|| i.as_u64().map(J::from))
            .unwrap_or(J::Null),
        rmpv::Value::F32(f) => {
            serde_json::Number::from_f64(f64::from(f)).map_or(J::Null, J::Number)
        }
        rmpv::Value::F64(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        rmpv::Value::String(s) => J::String(s.into_str().unwrap_or_default()),
        rmpv::Value::Binary(b) | rmpv::Value::Ext(_, b) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        rmpv::Value::Array(items) => J::Array(items.into_iter().map(msgpack_to_json).collect()),
        rmpv::Value::Map(entries) => J::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        rmpv::Value::String(s) => s.into_str().unwrap_or_default(),
                        other => msgpack_to_json(other).to_string(),
                    };
                    (key, msgpack_to_json(v))
                })
                .collect(),
        ),
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
    let whole = RawValue::encode(protocol, arguments)?;
    if whole.is_null() {
        return Ok(Vec::new());
    }
    split_array(&whole).ok_or_else(|| {
        ValueError("arguments must serialize as a sequence, such as a tuple: (a, b)".into())
    })
}

/// Splits an encoded array into its elements, `None` if it is not an array.
fn split_array(array: &RawValue) -> Option<Vec<RawValue>> {
    match array.protocol {
        Protocol::Json => {
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_slice(&array.bytes).ok()?;
            Some(
                items
                    .into_iter()
                    .map(|item| {
                        RawValue::from_encoded(
                            Protocol::Json,
                            array.bytes.slice_ref(item.get().as_bytes()),
                        )
                    })
                    .collect(),
            )
        }
        Protocol::MessagePack => {
            let bytes = &array.bytes[..];
            let mut rd = bytes;
            let len = rmp::decode::read_array_len(&mut rd).ok()?;
            let mut pos = bytes.len() - rd.len();
            let mut items = Vec::with_capacity((len as usize).min(rd.len()));
            for _ in 0..len {
                let end = value_span(bytes, pos).ok()?;
                items.push(RawValue::from_encoded(
                    Protocol::MessagePack,
                    array.bytes.slice(pos..end),
                ));
                pos = end;
            }
            Some(items)
        }
    }
}

/// Decodes an argument list into a tuple or sequence type (`(i64, String)`, `Vec<T>`, `()`).
///
/// Arguments in different encodings are first brought to the encoding of the first one.
pub fn decode_arguments<T: DeserializeOwned>(arguments: &[RawValue]) -> Result<T, ValueError> {
    let protocol = arguments.first().map_or(Protocol::Json, |a| a.protocol);
    let mut array = Vec::new();
    match protocol {
        Protocol::Json => {
            array.push(b'[');
            for (i, argument) in arguments.iter().enumerate() {
                if i > 0 {
                    array.push(b',');
                }
                array.extend_from_slice(argument.to_protocol(protocol)?.as_bytes());
            }
            array.push(b']');
        }
        Protocol::MessagePack => {
            let len = u32::try_from(arguments.len())
                .map_err(|_| ValueError("too many arguments".into()))?;
            rmp::encode::write_array_len(&mut array, len).map_err(|e| ValueError(e.to_string()))?;
            for argument in arguments {
                array.extend_from_slice(argument.to_protocol(protocol)?.as_bytes());
            }
        }
    }
    let whole = RawValue::from_encoded(protocol, array.into());
    match whole.decode() {
        Ok(value) => Ok(value),
        // `()` is `null` to serde, while an empty argument list is `[]`.
        Err(error) if arguments.is_empty() => RawValue::null(protocol).decode().map_err(|_| error),
        Err(error) => Err(error),
    }
}
