//! The MessagePack hub protocol (docs/protocol/hub-protocol.md, "MessagePack encoding"): one
//! array per record, arguments kept as the raw bytes of each value.

use super::framing::write_length_prefix;
use super::value::RecordValues;
use super::{
    CancelInvocation, Close, Completion, CompletionResult, Decoded, Headers, HubMessage,
    Invocation, Protocol, ProtocolError, RawValue, StreamItem,
};
use rmp::encode as enc;

/// How deep a value may nest inside a message.
const MAX_DEPTH: usize = 128;

/// Whose writer to follow where the reference client and server write a message differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Writer {
    /// The JavaScript client: Invocation with 5 elements when it has no stream ids, Close as
    /// `[7, error]` with `allowReconnect` only when set.
    Client,
    /// ASP.NET Core's server (`MessagePackHubProtocolWorker`): Invocation and StreamInvocation
    /// always with 6 elements (an empty stream-id array), an Invocation's empty id as nil,
    /// Close always `[7, error or nil, allowReconnect]` with an empty error as nil.
    Server,
}

/// Appends `message` with its VarInt length prefix, as the client writes it.
pub(super) fn encode(message: &HubMessage, out: &mut Vec<u8>) {
    encode_as(Writer::Client, message, out);
}

/// Appends `message` with its VarInt length prefix, as `writer` writes it.
pub(super) fn encode_as(writer: Writer, message: &HubMessage, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64);
    encode_body(writer, message, &mut body);
    write_length_prefix(body.len(), out);
    out.extend_from_slice(&body);
}

/// Writes to a `Vec`, which cannot fail.
fn ok<T, E: std::fmt::Debug>(result: Result<T, E>) {
    result.expect("writing to a Vec cannot fail");
}

fn encode_body(writer: Writer, message: &HubMessage, out: &mut Vec<u8>) {
    let type_id = message.type_id();
    let server = writer == Writer::Server;
    match message {
        HubMessage::Invocation(inv) | HubMessage::StreamInvocation(inv) => {
            let with_ids = server || inv.stream_ids.is_some();
            ok(enc::write_array_len(out, if with_ids { 6 } else { 5 }));
            ok(enc::write_uint(out, u64::from(type_id)));
            write_headers(&inv.headers, out);
            let nil_if_empty = server && type_id == 1;
            match inv.invocation_id.as_deref() {
                Some(id) if !(nil_if_empty && id.is_empty()) => ok(enc::write_str(out, id)),
                _ => ok(enc::write_nil(out)),
            }
            ok(enc::write_str(out, &inv.target));
            ok(enc::write_array_len(out, len32(inv.arguments.len())));
            for argument in &inv.arguments {
                write_raw(argument, out);
            }
            if with_ids {
                let ids = inv.stream_ids.as_deref().unwrap_or_default();
                ok(enc::write_array_len(out, len32(ids.len())));
                for id in ids {
                    ok(enc::write_str(out, id));
                }
            }
        }
        HubMessage::StreamItem(item) => {
            ok(enc::write_array_len(out, 4));
            ok(enc::write_uint(out, 2));
            write_headers(&item.headers, out);
            ok(enc::write_str(out, &item.invocation_id));
            write_raw(&item.item, out);
        }
        HubMessage::Completion(c) => {
            let void = matches!(c.result, CompletionResult::Void);
            ok(enc::write_array_len(out, if void { 4 } else { 5 }));
            ok(enc::write_uint(out, 3));
            write_headers(&c.headers, out);
            ok(enc::write_str(out, &c.invocation_id));
            match &c.result {
                CompletionResult::Error(error) => {
                    ok(enc::write_uint(out, 1));
                    ok(enc::write_str(out, error));
                }
                CompletionResult::Void => ok(enc::write_uint(out, 2)),
                CompletionResult::Value(value) => {
                    ok(enc::write_uint(out, 3));
                    write_raw(value, out);
                }
            }
        }
        HubMessage::CancelInvocation(c) => {
            ok(enc::write_array_len(out, 3));
            ok(enc::write_uint(out, 5));
            write_headers(&c.headers, out);
            ok(enc::write_str(out, &c.invocation_id));
        }
        HubMessage::Ping => {
            ok(enc::write_array_len(out, 1));
            ok(enc::write_uint(out, 6));
        }
        HubMessage::Close(close) => {
            // The client writes `[7, error]`, `allowReconnect` only when set; the server always
            // writes all three, an empty error as nil.
            let full = server || close.allow_reconnect;
            ok(enc::write_array_len(out, if full { 3 } else { 2 }));
            ok(enc::write_uint(out, 7));
            match close.error.as_deref().filter(|e| !(server && e.is_empty())) {
                Some(error) => ok(enc::write_str(out, error)),
                None => ok(enc::write_nil(out)),
            }
            if full {
                ok(enc::write_bool(out, close.allow_reconnect));
            }
        }
        HubMessage::Ack(id) | HubMessage::Sequence(id) => {
            ok(enc::write_array_len(out, 2));
            ok(enc::write_uint(out, u64::from(type_id)));
            ok(enc::write_uint(out, *id));
        }
    }
}

fn len32(len: usize) -> u32 {
    u32::try_from(len).expect("a message part has fewer than 2^32 elements")
}

fn write_headers(headers: &Headers, out: &mut Vec<u8>) {
    ok(enc::write_map_len(out, len32(headers.len())));
    for (key, value) in headers {
        ok(enc::write_str(out, key));
        ok(enc::write_str(out, value));
    }
}

/// Writes a value as MessagePack, transcoding a JSON value (`nil` if it cannot be).
fn write_raw(value: &RawValue, out: &mut Vec<u8>) {
    match value.protocol() {
        Protocol::MessagePack => out.extend_from_slice(value.as_bytes()),
        Protocol::Json => match value.to_protocol(Protocol::MessagePack) {
            Ok(packed) => out.extend_from_slice(packed.as_bytes()),
            Err(_) => ok(enc::write_nil(out)),
        },
    }
}

fn invalid(what: &str) -> ProtocolError {
    ProtocolError::InvalidPayload(what.to_string())
}

/// Returns the end offset of the MessagePack value starting at `pos`, checking that all of it
/// is present, without decoding it.
pub(super) fn value_span(buf: &[u8], pos: usize) -> Result<usize, ProtocolError> {
    skip(buf, pos, 0)
}

fn take(buf: &[u8], pos: usize, n: usize) -> Result<usize, ProtocolError> {
    let end = pos
        .checked_add(n)
        .ok_or_else(|| invalid("truncated value"))?;
    if end > buf.len() {
        return Err(invalid("truncated value"));
    }
    Ok(end)
}

fn read_be(buf: &[u8], pos: usize, n: usize) -> Result<(usize, usize), ProtocolError> {
    let end = take(buf, pos, n)?;
    let value = buf[pos..end]
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok((value, end))
}

fn skip(buf: &[u8], pos: usize, depth: usize) -> Result<usize, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(invalid("value nested too deeply"));
    }
    let marker = *buf.get(pos).ok_or_else(|| invalid("truncated value"))?;
    let pos = pos + 1;
    let (elements, pos) = match marker {
        0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => return Ok(pos),
        0x80..=0x8f => (usize::from(marker & 0x0f) * 2, pos),
        0x90..=0x9f => (usize::from(marker & 0x0f), pos),
        0xa0..=0xbf => return take(buf, pos, usize::from(marker & 0x1f)),
        0xc4 | 0xd9 => {
            let (n, pos) = read_be(buf, pos, 1)?;
            return take(buf, pos, n);
        }
        0xc5 | 0xda => {
            let (n, pos) = read_be(buf, pos, 2)?;
            return take(buf, pos, n);
        }
        0xc6 | 0xdb => {
            let (n, pos) = read_be(buf, pos, 4)?;
            return take(buf, pos, n);
        }
        0xc7 => {
            let (n, pos) = read_be(buf, pos, 1)?;
            return take(buf, pos, n + 1);
        }
        0xc8 => {
            let (n, pos) = read_be(buf, pos, 2)?;
            return take(buf, pos, n + 1);
        }
        0xc9 => {
            let (n, pos) = read_be(buf, pos, 4)?;
            return take(buf, pos, n + 1);
        }
        0xca => return take(buf, pos, 4),
        0xcb => return take(buf, pos, 8),
        0xcc | 0xd0 => return take(buf, pos, 1),
        0xcd | 0xd1 => return take(buf, pos, 2),
        0xce | 0xd2 => return take(buf, pos, 4),
        0xcf | 0xd3 => return take(buf, pos, 8),
        0xd4 => return take(buf, pos, 2),
        0xd5 => return take(buf, pos, 3),
        0xd6 => return take(buf, pos, 5),
        0xd7 => return take(buf, pos, 9),
        0xd8 => return take(buf, pos, 17),
        0xdc => read_be(buf, pos, 2)?,
        0xdd => read_be(buf, pos, 4)?,
        0xde => {
            let (n, pos) = read_be(buf, pos, 2)?;
            (n * 2, pos)
        }
        0xdf => {
            let (n, pos) = read_be(buf, pos, 4)?;
            (
                n.checked_mul(2).ok_or_else(|| invalid("map too large"))?,
                pos,
            )
        }
        0xc1 => return Err(invalid("reserved MessagePack marker 0xc1")),
    };
    // Every element takes at least one byte: refuse counts the input cannot hold.
    if elements > buf.len() - pos {
        return Err(invalid("truncated value"));
    }
    let mut pos = pos;
    for _ in 0..elements {
        pos = skip(buf, pos, depth + 1)?;
    }
    Ok(pos)
}

/// A cursor over one record.
struct Reader<'a> {
    record: &'a [u8],
    pos: usize,
    values: RecordValues<'a>,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.record[self.pos..]
    }

    fn advance_to(&mut self, rest: &[u8]) {
        self.pos = self.record.len() - rest.len();
    }

    fn array_len(&mut self) -> Result<usize, ProtocolError> {
        let mut rd = self.rest();
        let len = rmp::decode::read_array_len(&mut rd).map_err(|_| invalid("expected an array"))?;
        self.advance_to(rd);
        Ok(len as usize)
    }

    fn uint(&mut self, what: &str) -> Result<u64, ProtocolError> {
        let mut rd = self.rest();
        let value: u64 = rmp::decode::read_int(&mut rd).map_err(|_| invalid(what))?;
        self.advance_to(rd);
        Ok(value)
    }

    fn is_nil(&self) -> bool {
        self.rest().first() == Some(&0xc0)
    }

    fn string(&mut self, what: &str) -> Result<String, ProtocolError> {
        let mut rd = self.rest();
        let len = rmp::decode::read_str_len(&mut rd).map_err(|_| invalid(what))? as usize;
        if len > rd.len() {
            return Err(invalid(what));
        }
        let text = std::str::from_utf8(&rd[..len]).map_err(|_| invalid(what))?;
        let text = text.to_owned();
        self.advance_to(&rd[len..]);
        Ok(text)
    }

    fn optional_string(&mut self, what: &str) -> Result<Option<String>, ProtocolError> {
        if self.is_nil() {
            self.pos += 1;
            return Ok(None);
        }
        self.string(what).map(Some)
    }

    fn bool(&mut self, what: &str) -> Result<bool, ProtocolError> {
        let mut rd = self.rest();
        let value = rmp::decode::read_bool(&mut rd).map_err(|_| invalid(what))?;
        self.advance_to(rd);
        Ok(value)
    }

    /// The next value; `alone` when it is the record's only one.
    fn raw(&mut self, alone: bool) -> Result<RawValue, ProtocolError> {
        let end = value_span(self.record, self.pos)?;
        let value = self.values.value(self.pos..end, alone);
        self.pos = end;
        Ok(value)
    }

    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        let mut rd = self.rest();
        let len = rmp::decode::read_map_len(&mut rd).map_err(|_| ProtocolError::InvalidHeaders)?;
        self.advance_to(rd);
        if len as usize > self.rest().len() {
            return Err(ProtocolError::InvalidHeaders);
        }
        let mut headers = Headers::new();
        for _ in 0..len {
            let key = self
                .string("headers")
                .map_err(|_| ProtocolError::InvalidHeaders)?;
            let value = self
                .string("headers")
                .map_err(|_| ProtocolError::InvalidHeaders)?;
            headers.insert(key, value);
        }
        Ok(headers)
    }

    fn id(&mut self) -> Result<String, ProtocolError> {
        match self.string("invocation id") {
            Ok(id) if !id.is_empty() => Ok(id),
            _ => Err(ProtocolError::MissingField("invocationId")),
        }
    }
}

/// Decodes one MessagePack record (without its length prefix).
pub(super) fn decode(record: &[u8]) -> Result<Decoded, ProtocolError> {
    let mut r = Reader {
        record,
        pos: 0,
        values: RecordValues::new(Protocol::MessagePack, record),
    };
    let len = r.array_len().map_err(|_| invalid("Invalid payload."))?;
    if len == 0 {
        return Err(invalid("Invalid payload."));
    }
    let type_id = r.uint("message type")?;
    let need = |min: usize| {
        if len < min {
            Err(invalid(&format!(
                "message type {type_id} needs at least {min} elements, got {len}"
            )))
        } else {
            Ok(())
        }
    };
    let message = match type_id {
        1 | 4 => {
            need(5)?;
            let headers = r.headers()?;
            let invocation_id = r.optional_string("invocation id")?;
            if matches!(&invocation_id, Some(id) if id.is_empty())
                || (type_id == 4 && invocation_id.is_none())
            {
                return Err(ProtocolError::MissingField("invocationId"));
            }
            let target = r.string("target")?;
            if target.is_empty() {
                return Err(ProtocolError::MissingField("target"));
            }
            let count = r.array_len()?;
            if count > r.rest().len() {
                return Err(invalid("truncated arguments"));
            }
            let mut arguments = Vec::with_capacity(count);
            for _ in 0..count {
                arguments.push(r.raw(count == 1)?);
            }
            let stream_ids = if len >= 6 {
                let count = r.array_len()?;
                if count > r.rest().len() {
                    return Err(invalid("truncated stream ids"));
                }
                let mut ids = Vec::with_capacity(count);
                for _ in 0..count {
                    ids.push(r.string("stream id")?);
                }
                Some(ids)
            } else {
                None
            };
            let invocation = Invocation {
                invocation_id,
                target,
                arguments,
                stream_ids,
                headers,
            };
            if type_id == 1 {
                HubMessage::Invocation(invocation)
            } else {
                HubMessage::StreamInvocation(invocation)
            }
        }
        2 => {
            need(4)?;
            let headers = r.headers()?;
            let invocation_id = r.id()?;
            HubMessage::StreamItem(StreamItem {
                invocation_id,
                item: r.raw(true)?,
                headers,
            })
        }
        3 => {
            need(4)?;
            let headers = r.headers()?;
            let invocation_id = r.id()?;
            let kind = r.uint("result kind")?;
            if kind != 2 {
                need(5)?;
            }
            let result = match kind {
                1 => CompletionResult::Error(r.string("error")?),
                2 => CompletionResult::Void,
                3 => CompletionResult::Value(r.raw(true)?),
                other => return Err(invalid(&format!("invalid result kind {other}"))),
            };
            HubMessage::Completion(Completion {
                invocation_id,
                result,
                headers,
            })
        }
        5 => {
            need(3)?;
            let headers = r.headers()?;
            HubMessage::CancelInvocation(CancelInvocation {
                invocation_id: r.id()?,
                headers,
            })
        }
        6 => HubMessage::Ping,
        7 => {
            need(2)?;
            let error = r.optional_string("close error")?;
            let allow_reconnect = if len >= 3 {
                r.bool("allowReconnect")?
            } else {
                false
            };
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }
        8 | 9 => {
            need(2)?;
            let id = r.uint("sequence id")?;
            if type_id == 8 {
                HubMessage::Ack(id)
            } else {
                HubMessage::Sequence(id)
            }
        }
        other => return Ok(Decoded::Unknown { type_id: other }),
    };
    Ok(Decoded::Message(message))
}
