//! [`RawValue`]: an argument, result or stream item kept in its wire encoding.

use super::msgpack::value_span;
use super::scratch::{with_scratch, VALUE_SCRATCH_KEPT};
use super::Protocol;
use crate::json_text::{write_string, Json, Reader};
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
        with_scratch(VALUE_SCRATCH_KEPT, |out| {
            serialize_into(protocol, value, out)?;
            Ok(RawValue::from_encoded(
                protocol,
                Bytes::copy_from_slice(out),
            ))
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
        is_null(self.protocol, &self.bytes)
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
                let value = Json::parse(&self.bytes).map_err(|e| ValueError(e.to_string()))?;
                let mut out = Vec::with_capacity(self.bytes.len());
                json_to_msgpack(&value, &mut out);
                Ok(RawValue::from_encoded(Protocol::MessagePack, out.into()))
            }
            _ => {
                let mut out = Vec::with_capacity(self.bytes.len() * 2);
                let end = msgpack_to_json(&self.bytes, 0, 0, &mut out)?;
                if end != self.bytes.len() {
                    return Err(ValueError("trailing bytes after the value".into()));
                }
                Ok(RawValue::from_encoded(Protocol::Json, out.into()))
            }
        }
    }
}

/// Writes a JSON value as MessagePack as `serde_json::Value` would serialize: non-negative
/// integers as the smallest `uint`, negative ones as the smallest `int`, other numbers as
/// `float64`.
fn json_to_msgpack(value: &Json<'_>, out: &mut Vec<u8>) {
    use rmp::encode;
    // Writing to a Vec cannot fail, and a count of values parsed from memory fits in u32
    // (each takes at least two bytes of text: u32::MAX of them would be 8 GB).
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match value {
        Json::Null => {
            let _ = encode::write_nil(out);
        }
        Json::Bool(b) => {
            let _ = encode::write_bool(out, *b);
        }
        Json::Number(n) => {
            if let Ok(u) = n.parse::<u64>() {
                let _ = encode::write_uint(out, u);
            } else if let Some(i) = n.parse::<i64>().ok().filter(|_| *n != "-0") {
                let _ = encode::write_sint(out, i);
            } else {
                // The grammar was checked, so this parses (too large a number: infinity).
                let _ = encode::write_f64(out, n.parse().unwrap_or(f64::NAN));
            }
        }
        Json::String(s) => {
            let _ = encode::write_str(out, s);
        }
        Json::Array(items) => {
            let _ = encode::write_array_len(out, len(items.len()));
            for item in items {
                json_to_msgpack(item, out);
            }
        }
        Json::Object(members) => {
            let _ = encode::write_map_len(out, len(members.len()));
            for (key, value) in members {
                let _ = encode::write_str(out, key);
                json_to_msgpack(value, out);
            }
        }
    }
}

fn truncated() -> ValueError {
    ValueError("truncated MessagePack value".into())
}

/// `n` bytes at `pos`, and the offset after them.
fn take(buf: &[u8], pos: usize, n: usize) -> Result<(&[u8], usize), ValueError> {
    let end = pos.checked_add(n).ok_or_else(truncated)?;
    Ok((buf.get(pos..end).ok_or_else(truncated)?, end))
}

/// A big-endian unsigned integer of `n` (1, 2, 4 or 8) bytes at `pos`.
fn read_be(buf: &[u8], pos: usize, n: usize) -> Result<(u64, usize), ValueError> {
    let (bytes, end) = take(buf, pos, n)?;
    Ok((
        bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b)),
        end,
    ))
}

/// Writes the MessagePack value at `pos` as JSON the way the hub protocol's type mapping does
/// (`bin` and `ext` payloads as Base64 strings, a non-string map key as its JSON text, a
/// non-finite float as `null`), without building a tree; returns the offset after the value.
fn msgpack_to_json(
    buf: &[u8],
    pos: usize,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<usize, ValueError> {
    if depth > MAX_TRANSCODE_DEPTH {
        return Err(ValueError("MessagePack value nested too deeply".into()));
    }
    let marker = *buf.get(pos).ok_or_else(truncated)?;
    let pos = pos + 1;
    let number = |out: &mut Vec<u8>, text: &str| out.extend_from_slice(text.as_bytes());
    let (kind, len, pos) = match marker {
        0x00..=0x7f => {
            number(out, &marker.to_string());
            return Ok(pos);
        }
        0xe0..=0xff => {
            number(out, &(marker as i8).to_string());
            return Ok(pos);
        }
        0xc0 => {
            out.extend_from_slice(b"null");
            return Ok(pos);
        }
        0xc2 | 0xc3 => {
            out.extend_from_slice(if marker == 0xc3 { b"true" } else { b"false" });
            return Ok(pos);
        }
        0xcc..=0xcf => {
            let (v, end) = read_be(buf, pos, 1 << (marker - 0xcc))?;
            number(out, &v.to_string());
            return Ok(end);
        }
        0xd0..=0xd3 => {
            let size = 1 << (marker - 0xd0);
            let (v, end) = read_be(buf, pos, size)?;
            // Sign-extend from `size` bytes.
            let shift = 64 - 8 * size as u32;
            number(out, &(((v << shift) as i64) >> shift).to_string());
            return Ok(end);
        }
        0xca | 0xcb => {
            let (v, end) = read_be(buf, pos, if marker == 0xca { 4 } else { 8 })?;
            let f = if marker == 0xca {
                f64::from(f32::from_bits(v as u32))
            } else {
                f64::from_bits(v)
            };
            if f.is_finite() {
                // The shortest digits that read back as the same f64, without an exponent
                // (`1e300` is written out in full): always a valid JSON number.
                number(out, &f.to_string());
            } else {
                out.extend_from_slice(b"null");
            }
            return Ok(end);
        }
        0xa0..=0xbf => (b's', usize::from(marker & 0x1f), pos),
        0x90..=0x9f => (b'a', usize::from(marker & 0x0f), pos),
        0x80..=0x8f => (b'm', usize::from(marker & 0x0f), pos),
        0xd9..=0xdb | 0xc4..=0xc6 | 0xdc..=0xdf | 0xc7..=0xc9 => {
            let (kind, size) = match marker {
                0xd9..=0xdb => (b's', 1 << (marker - 0xd9)),
                0xc4..=0xc6 => (b'b', 1 << (marker - 0xc4)),
                0xc7..=0xc9 => (b'e', 1 << (marker - 0xc7)),
                0xdc | 0xdd => (b'a', 2 << (marker - 0xdc)),
                _ => (b'm', 2 << (marker - 0xde)),
            };
            let (len, pos) = read_be(buf, pos, size)?;
            let len = usize::try_from(len).map_err(|_| truncated())?;
            // An ext's type byte comes before its payload.
            (kind, len, if kind == b'e' { pos + 1 } else { pos })
        }
        0xd4..=0xd8 => (b'e', 1 << (marker - 0xd4), pos + 1),
        0xc1 => return Err(ValueError("invalid MessagePack marker 0xc1".into())),
    };
    match kind {
        b's' => {
            let (bytes, end) = take(buf, pos, len)?;
            write_string(&String::from_utf8_lossy(bytes), out);
            Ok(end)
        }
        b'b' | b'e' => {
            let (bytes, end) = take(buf, pos, len)?;
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .as_bytes(),
            );
            out.push(b'"');
            Ok(end)
        }
        b'a' => {
            out.push(b'[');
            let mut pos = pos;
            for i in 0..len {
                if i > 0 {
                    out.push(b',');
                }
                pos = msgpack_to_json(buf, pos, depth + 1, out)?;
            }
            out.push(b']');
            Ok(pos)
        }
        _ => {
            out.push(b'{');
            let mut pos = pos;
            for i in 0..len {
                if i > 0 {
                    out.push(b',');
                }
                if matches!(buf.get(pos), Some(0xa0..=0xbf | 0xd9..=0xdb)) {
                    pos = msgpack_to_json(buf, pos, depth + 1, out)?;
                } else {
                    let mut key = Vec::new();
                    pos = msgpack_to_json(buf, pos, depth + 1, &mut key)?;
                    let key = String::from_utf8(key).map_err(|_| truncated())?;
                    write_string(&key, out);
                }
                out.push(b':');
                pos = msgpack_to_json(buf, pos, depth + 1, out)?;
            }
            out.push(b'}');
            Ok(pos)
        }
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

/// Copies the values of one received record out of the network's buffer: a value that is its
/// record's only one (a result, a stream item, a lone argument) gets a copy of its own, one
/// allocation; several values share one copy of the record (which costs a second allocation,
/// for the count of its sharers, when the first of them is sliced off it).
pub(crate) struct RecordValues<'a> {
    protocol: Protocol,
    record: &'a [u8],
    shared: Option<Bytes>,
}

impl<'a> RecordValues<'a> {
    pub(crate) fn new(protocol: Protocol, record: &'a [u8]) -> Self {
        RecordValues {
            protocol,
            record,
            shared: None,
        }
    }

    /// The value at `span` of the record; `alone` when it is the record's only value.
    pub(crate) fn value(&mut self, span: std::ops::Range<usize>, alone: bool) -> RawValue {
        let bytes = if alone {
            Bytes::copy_from_slice(&self.record[span])
        } else {
            let record = self.record;
            self.shared
                .get_or_insert_with(|| Bytes::copy_from_slice(record))
                .slice(span)
        };
        RawValue::from_encoded(self.protocol, bytes)
    }

    /// The value `text`, a slice of the record; `alone` when it is the record's only value.
    pub(crate) fn value_of(&mut self, text: &[u8], alone: bool) -> RawValue {
        let start = (text.as_ptr() as usize).wrapping_sub(self.record.as_ptr() as usize);
        assert!(
            start <= self.record.len() && text.len() <= self.record.len() - start,
            "a value outside its record"
        );
        self.value(start..start + text.len(), alone)
    }
}

/// Serializes `value` for `protocol` at the end of `out` (MessagePack structs become maps, as
/// the official clients write them).
fn serialize_into<T: Serialize + ?Sized>(
    protocol: Protocol,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), ValueError> {
    let written = match protocol {
        Protocol::Json => serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string()),
        Protocol::MessagePack => value
            .serialize(&mut rmp_serde::Serializer::new(&mut *out).with_struct_map())
            .map_err(|e| e.to_string()),
    };
    written.map_err(ValueError)
}

/// Encodes a tuple or sequence (`(1, "a")`, `Vec<T>`, `()`) as one [`RawValue`] per element:
/// the argument list of an invocation.
///
/// The list is serialized into this thread's scratch buffer, and its elements are copied out as
/// a received record's values are: a single argument (the usual call) alone, one
/// allocation; several together, shared by their values.
pub fn encode_arguments<T: Serialize + ?Sized>(
    protocol: Protocol,
    arguments: &T,
) -> Result<Vec<RawValue>, ValueError> {
    with_scratch(VALUE_SCRATCH_KEPT, |out| {
        serialize_into(protocol, arguments, out)?;
        if is_null(protocol, out) {
            return Ok(Vec::new());
        }
        split_array(protocol, out).ok_or_else(|| {
            ValueError("arguments must serialize as a sequence, such as a tuple: (a, b)".into())
        })
    })
}

/// Whether `bytes` is `null` (JSON) or `nil` (MessagePack).
fn is_null(protocol: Protocol, bytes: &[u8]) -> bool {
    match protocol {
        Protocol::Json => bytes.trim_ascii() == b"null",
        Protocol::MessagePack => bytes == [0xc0],
    }
}

/// Splits an encoded array into its elements, copied out of `array` (read once: the first
/// element waits until the second shows whether it is alone); `None` if it is not an array.
fn split_array(protocol: Protocol, array: &[u8]) -> Option<Vec<RawValue>> {
    let mut values = RecordValues::new(protocol, array);
    let mut items = Vec::new();
    let mut first = None;
    each_element(protocol, array, |item| {
        if items.is_empty() && first.is_none() {
            first = Some(item);
            return;
        }
        if let Some(first) = first.take() {
            items.push(values.value_of(first, false));
        }
        items.push(values.value_of(item, false));
    })?;
    if let Some(first) = first {
        items.push(values.value_of(first, true));
    }
    Some(items)
}

/// Calls `element` with each element of an encoded array, in order; `None` if `array` is not
/// one.
fn each_element<'a>(
    protocol: Protocol,
    array: &'a [u8],
    mut element: impl FnMut(&'a [u8]),
) -> Option<()> {
    match protocol {
        Protocol::Json => {
            let mut reader = Reader::new(array).ok()?;
            reader
                .array(|r| {
                    element(r.skip()?.as_bytes());
                    Ok(())
                })
                .and_then(|()| reader.finish())
                .ok()
        }
        Protocol::MessagePack => {
            let mut rd = array;
            let len = rmp::decode::read_array_len(&mut rd).ok()?;
            let mut pos = array.len() - rd.len();
            for _ in 0..len {
                let end = value_span(array, pos).ok()?;
                element(&array[pos..end]);
                pos = end;
            }
            Some(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A value whose serialization encodes another value on the same thread.
    struct Nested;

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = RawValue::encode(Protocol::Json, &("inner", 1)).expect("encodes");
            serializer.serialize_str(std::str::from_utf8(inner.as_bytes()).expect("UTF-8"))
        }
    }

    #[test]
    fn a_value_that_encodes_another_while_it_is_encoded_gets_both_right() {
        for protocol in [Protocol::Json, Protocol::MessagePack] {
            let args = encode_arguments(protocol, &(Nested, 2)).expect("encodes");
            assert_eq!(args.len(), 2);
            assert_eq!(args[0].decode::<String>().unwrap(), r#"["inner",1]"#);
            assert_eq!(args[1].decode::<i32>().unwrap(), 2);
            let alone = encode_arguments(protocol, &(Nested,)).expect("encodes");
            assert_eq!(alone[0].decode::<String>().unwrap(), r#"["inner",1]"#);
        }
    }

    #[test]
    fn arguments_that_are_not_a_sequence_are_refused() {
        for protocol in [Protocol::Json, Protocol::MessagePack] {
            let error = encode_arguments(protocol, &"text").unwrap_err();
            assert!(error.0.contains("sequence"), "{error}");
            assert!(encode_arguments(protocol, &()).unwrap().is_empty());
        }
    }

    #[test]
    fn a_received_value_is_copied_out_of_its_record() {
        let record = br#"[1,"two",3]"#;
        let mut values = RecordValues::new(Protocol::Json, record);
        let alone = values.value_of(&record[3..8], true);
        let shared = values.value_of(&record[9..10], false);
        assert_eq!(alone.decode::<String>().unwrap(), "two");
        assert_eq!(shared.decode::<i32>().unwrap(), 3);
    }
}
