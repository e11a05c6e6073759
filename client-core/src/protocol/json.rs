//! The JSON hub protocol (docs/protocol/hub-protocol.md, "JSON encoding"): one object per
//! record, arguments kept raw.

use super::{
    CancelInvocation, Close, Completion, CompletionResult, Decoded, Headers, HubMessage,
    Invocation, Protocol, ProtocolError, RawValue, StreamItem, RECORD_SEPARATOR,
};
use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue as JsonRaw;

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
                serde_json::to_writer(&mut *w.out, ids).expect("strings serialize");
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
            w.out.extend_from_slice(id.to_string().as_bytes());
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
        out.extend_from_slice(type_id.to_string().as_bytes());
        ObjectWriter { out }
    }

    fn key(&mut self, key: &str) {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        serde_json::to_writer(&mut *self.out, value).expect("strings serialize");
    }

    fn headers(&mut self, headers: &Headers) {
        if !headers.is_empty() {
            self.key("headers");
            serde_json::to_writer(&mut *self.out, headers).expect("string maps serialize");
        }
    }
}

/// Every field any message type may carry; unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(rename = "type")]
    type_id: Option<u64>,
    invocation_id: Option<String>,
    target: Option<String>,
    #[serde(borrow)]
    arguments: Option<Vec<&'a JsonRaw>>,
    stream_ids: Option<Vec<String>>,
    #[serde(default, borrow, deserialize_with = "present")]
    item: Option<&'a JsonRaw>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a JsonRaw>,
    error: Option<String>,
    allow_reconnect: Option<bool>,
    sequence_id: Option<u64>,
    headers: Option<Headers>,
}

/// Keeps a field that is present, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de JsonRaw>, D::Error> {
    <&JsonRaw>::deserialize(d).map(Some)
}

/// Decodes one JSON record (without its separator).
pub(super) fn decode(record: &[u8]) -> Result<Decoded, ProtocolError> {
    let record = Bytes::copy_from_slice(record);
    let wire: Wire<'_> = serde_json::from_slice(&record)
        .map_err(|e| ProtocolError::InvalidPayload(e.to_string()))?;
    let raw = |value: &JsonRaw| {
        RawValue::from_encoded(Protocol::Json, record.slice_ref(value.get().as_bytes()))
    };
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
                .ok_or(ProtocolError::MissingField("arguments"))?
                .into_iter()
                .map(raw)
                .collect();
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
            item: raw(wire.item.ok_or(ProtocolError::MissingField("item"))?),
            headers,
        }),
        3 => {
            let result = match (wire.result, wire.error) {
                (Some(_), Some(_)) => return Err(ProtocolError::ResultAndError),
                (Some(value), None) => CompletionResult::Value(raw(value)),
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
