//! The JSON hub protocol (docs/protocol/hub-protocol.md, "JSON encoding"): one object per
//! record, arguments kept raw.

use super::value::RecordValues;
use super::{
    CancelInvocation, Close, Completion, CompletionResult, Decoded, Headers, HubMessage,
    Invocation, Protocol, ProtocolError, RawValue, StreamItem, RECORD_SEPARATOR,
};
use crate::json_text::{write_string, write_u64, JsonError, Reader};

/// Appends `message` as a JSON record and its separator.
pub(super) fn encode(message: &HubMessage, out: &mut Vec<u8>) {
    let mut w = ObjectWriter::new(out, message.type_id());
    match message {
        HubMessage::Invocation(inv) | HubMessage::StreamInvocation(inv) => {
            if let Some(id) = &inv.invocation_id {
                w.string("invocationId", id);
            }
            w.string("target", &inv.target);
            w.key("arguments");
            w.out.push(b'[');
            for (i, argument) in inv.arguments.iter().enumerate() {
                if i > 0 {
                    w.out.push(b',');
                }
                write_raw(argument, w.out);
            }
            w.out.push(b']');
            if let Some(ids) = &inv.stream_ids {
                w.key("streamIds");
                w.out.push(b'[');
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        w.out.push(b',');
                    }
                    write_string(id, w.out);
                }
                w.out.push(b']');
            }
            w.headers(&inv.headers);
        }
        HubMessage::StreamItem(item) => {
            w.string("invocationId", &item.invocation_id);
            w.key("item");
            write_raw(&item.item, w.out);
            w.headers(&item.headers);
        }
        HubMessage::Completion(c) => {
            w.string("invocationId", &c.invocation_id);
            match &c.result {
                CompletionResult::Void => {}
                CompletionResult::Value(value) => {
                    w.key("result");
                    write_raw(value, w.out);
                }
                CompletionResult::Error(error) => w.string("error", error),
            }
            w.headers(&c.headers);
        }
        HubMessage::CancelInvocation(c) => {
            w.string("invocationId", &c.invocation_id);
            w.headers(&c.headers);
        }
        HubMessage::Ping => {}
        HubMessage::Close(close) => {
            if let Some(error) = &close.error {
                w.string("error", error);
            }
            if close.allow_reconnect {
                w.key("allowReconnect");
                w.out.extend_from_slice(b"true");
            }
        }
        HubMessage::Ack(id) | HubMessage::Sequence(id) => {
            w.key("sequenceId");
            write_u64(*id, w.out);
        }
    }
    out.extend_from_slice(b"}");
    out.push(RECORD_SEPARATOR);
}

/// Writes a value as JSON, transcoding a MessagePack value (`null` if it cannot be).
fn write_raw(value: &RawValue, out: &mut Vec<u8>) {
    match value.protocol() {
        Protocol::Json => out.extend_from_slice(value.as_bytes()),
        Protocol::MessagePack => match value.to_protocol(Protocol::Json) {
            Ok(json) => out.extend_from_slice(json.as_bytes()),
            Err(_) => out.extend_from_slice(b"null"),
        },
    }
}

/// Writes `{"type":N` and then `,"key":value` pairs.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut Vec<u8>, type_id: u8) -> Self {
        out.extend_from_slice(b"{\"type\":");
        write_u64(u64::from(type_id), out);
        ObjectWriter { out }
    }

    fn key(&mut self, key: &str) {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        write_string(value, self.out);
    }

    fn headers(&mut self, headers: &Headers) {
        if !headers.is_empty() {
            self.key("headers");
            self.out.push(b'{');
            for (i, (key, value)) in headers.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                write_string(key, self.out);
                self.out.push(b':');
                write_string(value, self.out);
            }
            self.out.push(b'}');
        }
    }
}

/// Every field any message type may carry; unknown fields are skipped (after checking their
/// syntax), a known field given twice is refused, and `null` counts as absent except for
/// `item` and `result`.
#[derive(Default)]
struct Wire<'a> {
    type_id: Option<u64>,
    invocation_id: Option<String>,
    target: Option<String>,
    arguments: Option<Vec<&'a str>>,
    stream_ids: Option<Vec<String>>,
    item: Option<&'a str>,
    result: Option<&'a str>,
    error: Option<String>,
    allow_reconnect: Option<bool>,
    sequence_id: Option<u64>,
    headers: Option<Headers>,
}

impl<'a> Wire<'a> {
    fn read(record: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut wire = Wire::default();
        let mut seen = 0u16;
        let mut reader = Reader::new(record).map_err(invalid)?;
        let mut duplicate = None;
        reader
            .object(|r, key| {
                let (bit, name) = match &*key {
                    "type" => (0, "type"),
                    "invocationId" => (1, "invocationId"),
                    "target" => (2, "target"),
                    "arguments" => (3, "arguments"),
                    "streamIds" => (4, "streamIds"),
                    "item" => (5, "item"),
                    "result" => (6, "result"),
                    "error" => (7, "error"),
                    "allowReconnect" => (8, "allowReconnect"),
                    "sequenceId" => (9, "sequenceId"),
                    "headers" => (10, "headers"),
                    _ => return r.skip().map(drop),
                };
                if seen & (1 << bit) != 0 {
                    duplicate = Some(name);
                }
                seen |= 1 << bit;
                match bit {
                    5 => wire.item = Some(r.skip()?),
                    6 => wire.result = Some(r.skip()?),
                    _ if r.null()? => {}
                    0 => wire.type_id = Some(r.u64()?),
                    1 => wire.invocation_id = Some(r.string()?.into_owned()),
                    2 => wire.target = Some(r.string()?.into_owned()),
                    3 => {
                        let mut items = Vec::new();
                        r.array(|r| {
                            items.push(r.skip()?);
                            Ok(())
                        })?;
                        wire.arguments = Some(items);
                    }
                    4 => {
                        let mut ids = Vec::new();
                        r.array(|r| {
                            ids.push(r.string()?.into_owned());
                            Ok(())
                        })?;
                        wire.stream_ids = Some(ids);
                    }
                    7 => wire.error = Some(r.string()?.into_owned()),
                    8 => wire.allow_reconnect = Some(r.bool()?),
                    9 => wire.sequence_id = Some(r.u64()?),
                    _ => {
                        let mut headers = Headers::new();
                        r.object(|r, key| {
                            headers.insert(key.into_owned(), r.string()?.into_owned());
                            Ok(())
                        })?;
                        wire.headers = Some(headers);
                    }
                }
                Ok(())
            })
            .and_then(|()| reader.finish())
            .map_err(invalid)?;
        match duplicate {
            Some(name) => Err(ProtocolError::InvalidPayload(format!(
                "duplicate field '{name}'"
            ))),
            None => Ok(wire),
        }
    }
}

fn invalid(error: JsonError) -> ProtocolError {
    ProtocolError::InvalidPayload(error.to_string())
}

/// Decodes one JSON record (without its separator).
pub(super) fn decode(record: &[u8]) -> Result<Decoded, ProtocolError> {
    let wire = Wire::read(record)?;
    let mut values = RecordValues::new(Protocol::Json, record);
    let mut raw = |value: &str, alone: bool| values.value_of(value.as_bytes(), alone);
    let type_id = wire.type_id.ok_or(ProtocolError::MissingField("type"))?;
    let headers = wire.headers.unwrap_or_default();
    let id = |id: Option<String>| match id {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(ProtocolError::MissingField("invocationId")),
    };
    let message = match type_id {
        1 | 4 => {
            let invocation_id = match wire.invocation_id {
                Some(id) if id.is_empty() => {
                    return Err(ProtocolError::MissingField("invocationId"))
                }
                other => other,
            };
            if type_id == 4 && invocation_id.is_none() {
                return Err(ProtocolError::MissingField("invocationId"));
            }
            let target = wire
                .target
                .filter(|t| !t.is_empty())
                .ok_or(ProtocolError::MissingField("target"))?;
            let arguments = wire
                .arguments
                .ok_or(ProtocolError::MissingField("arguments"))?;
            let alone = arguments.len() == 1;
            let arguments = arguments.into_iter().map(|a| raw(a, alone)).collect();
            let invocation = Invocation {
                invocation_id,
                target,
                arguments,
                stream_ids: wire.stream_ids,
                headers,
            };
            if type_id == 1 {
                HubMessage::Invocation(invocation)
            } else {
                HubMessage::StreamInvocation(invocation)
            }
        }
        2 => HubMessage::StreamItem(StreamItem {
            invocation_id: id(wire.invocation_id)?,
            item: raw(wire.item.ok_or(ProtocolError::MissingField("item"))?, true),
            headers,
        }),
        3 => {
            let result = match (wire.result, wire.error) {
                (Some(_), Some(_)) => return Err(ProtocolError::ResultAndError),
                (Some(value), None) => CompletionResult::Value(raw(value, true)),
                (None, Some(error)) => CompletionResult::Error(error),
                (None, None) => CompletionResult::Void,
            };
            HubMessage::Completion(Completion {
                invocation_id: id(wire.invocation_id)?,
                result,
                headers,
            })
        }
        5 => HubMessage::CancelInvocation(CancelInvocation {
            invocation_id: id(wire.invocation_id)?,
            headers,
        }),
        6 => HubMessage::Ping,
        7 => HubMessage::Close(Close {
            error: wire.error,
            allow_reconnect: wire.allow_reconnect.unwrap_or(false),
        }),
        8 => HubMessage::Ack(
            wire.sequence_id
                .ok_or(ProtocolError::MissingField("sequenceId"))?,
        ),
        9 => HubMessage::Sequence(
            wire.sequence_id
                .ok_or(ProtocolError::MissingField("sequenceId"))?,
        ),
        other => return Ok(Decoded::Unknown { type_id: other }),
    };
    Ok(Decoded::Message(message))
}
