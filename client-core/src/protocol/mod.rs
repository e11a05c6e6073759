//! Hub protocol wire types and codecs (docs/protocol/hub-protocol.md).
//!
//! [`HubMessage`] is the one in-memory form of the nine hub message types. A [`Protocol`] turns it
//! into framed bytes and back: JSON with `0x1E` record separators, MessagePack with VarInt length
//! prefixes. Arguments, results and stream items stay in their wire encoding as [`RawValue`] until
//! the application asks for a serde type.

mod framing;
mod handshake;
mod json;
mod msgpack;
mod scratch;
mod value;

pub use framing::{BinaryFramer, Framer, TextFramer, DEFAULT_MAX_MESSAGE_SIZE, RECORD_SEPARATOR};
pub use handshake::{HandshakeRequest, HandshakeResponse};
pub use scratch::encode_exact;
pub use value::{decode_arguments, encode_arguments, RawValue, ValueError};

use std::collections::BTreeMap;

/// Message headers: string keys to string values, carried through and otherwise ignored.
pub type Headers = BTreeMap<String, String>;

/// The hub protocol spoken on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `"json"`: UTF-8 JSON records each ended by `0x1E`; text transfer format.
    Json,
    /// `"messagepack"`: MessagePack arrays with VarInt length prefixes; binary transfer format.
    MessagePack,
}

/// The transfer format a transport must carry for a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text (`"Text"`).
    Text,
    /// Arbitrary bytes (`"Binary"`).
    Binary,
}

/// One hub message (docs/protocol/hub-protocol.md, "Message types").
#[derive(Clone, Debug, PartialEq)]
pub enum HubMessage {
    /// Type 1: call a method, blocking when it has an invocation id.
    Invocation(Invocation),
    /// Type 2: one item of a stream.
    StreamItem(StreamItem),
    /// Type 3: the end of an invocation or stream.
    Completion(Completion),
    /// Type 4: call a streaming method.
    StreamInvocation(Invocation),
    /// Type 5: stop a stream the caller started.
    CancelInvocation(CancelInvocation),
    /// Type 6: keep-alive, no payload.
    Ping,
    /// Type 7: the sender is closing the connection.
    Close(Close),
    /// Type 8: the highest trackable sequence id processed (stateful reconnect).
    Ack(u64),
    /// Type 9: the id of the next trackable message after a reconnect (stateful reconnect).
    Sequence(u64),
}

/// An Invocation (type 1) or StreamInvocation (type 4).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Invocation {
    /// The caller's id for this call; `None` means non-blocking (no response allowed).
    pub invocation_id: Option<String>,
    /// The method name.
    pub target: String,
    /// The arguments, still encoded.
    pub arguments: Vec<RawValue>,
    /// Ids of upload streams that follow as StreamItems; `None` when the field is absent.
    pub stream_ids: Option<Vec<String>>,
    /// Headers, carried through.
    pub headers: Headers,
}

/// A StreamItem (type 2).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamItem {
    /// The invocation (or upload stream) id the item belongs to.
    pub invocation_id: String,
    /// The item, still encoded.
    pub item: RawValue,
    /// Headers, carried through.
    pub headers: Headers,
}

/// How a Completion ended its invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum CompletionResult {
    /// No result (JSON: neither `result` nor `error`; MessagePack: kind 2).
    Void,
    /// A result value, which may be an encoded `null` (MessagePack kind 3).
    Value(RawValue),
    /// An error text (MessagePack kind 1).
    Error(String),
}

/// A Completion (type 3).
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The invocation (or upload stream) id being completed.
    pub invocation_id: String,
    /// The outcome.
    pub result: CompletionResult,
    /// Headers, carried through.
    pub headers: Headers,
}

/// A CancelInvocation (type 5).
#[derive(Clone, Debug, PartialEq)]
pub struct CancelInvocation {
    /// The stream invocation to cancel.
    pub invocation_id: String,
    /// Headers, carried through.
    pub headers: Headers,
}

/// A Close (type 7).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Close {
    /// Why the sender closes, if it says.
    pub error: Option<String>,
    /// Whether a client with automatic reconnect should reconnect.
    pub allow_reconnect: bool,
}

impl HubMessage {
    /// The numeric message type (1 to 9).
    pub fn type_id(&self) -> u8 {
        match self {
            HubMessage::Invocation(_) => 1,
            HubMessage::StreamItem(_) => 2,
            HubMessage::Completion(_) => 3,
            HubMessage::StreamInvocation(_) => 4,
            HubMessage::CancelInvocation(_) => 5,
            HubMessage::Ping => 6,
            HubMessage::Close(_) => 7,
            HubMessage::Ack(_) => 8,
            HubMessage::Sequence(_) => 9,
        }
    }

    /// Whether stateful reconnect numbers and buffers this message (types 1 to 5).
    pub fn is_trackable(&self) -> bool {
        self.type_id() <= 5
    }
}

/// What decoding one framed record produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A hub message.
    Message(HubMessage),
    /// A well-formed record of a message type this library does not know; skip it.
    Unknown {
        /// The unknown type number.
        type_id: u64,
    },
}

/// The peer sent bytes that break the hub protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A record or frame is larger than the configured maximum.
    #[error("message of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// The size announced or buffered so far.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A MessagePack length prefix runs past five bytes or announces more than 2 GB.
    #[error("Messages bigger than 2GB are not supported.")]
    LengthPrefixTooLarge,
    /// The payload is not a valid message (wrong shape, wrong types, bad UTF-8, bad JSON).
    #[error("Invalid payload: {0}")]
    InvalidPayload(String),
    /// A required field is missing or empty.
    #[error("Invalid payload: missing or empty '{0}'")]
    MissingField(&'static str),
    /// MessagePack headers are not a map of strings.
    #[error("Invalid headers.")]
    InvalidHeaders,
    /// A Completion carries both a result and an error.
    #[error("Completion has both a result and an error")]
    ResultAndError,
    /// The handshake response was not what a handshake response must be.
    #[error("Invalid handshake response: {0}")]
    InvalidHandshake(String),
    /// A well-formed message arrived where the protocol does not allow it (a StreamItem for an
    /// `invoke`, a Sequence id from the future, ...); the text is the reference client's.
    #[error("{0}")]
    Violation(String),
}

impl Protocol {
    /// The name used in the handshake: `"json"` or `"messagepack"`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::MessagePack => "messagepack",
        }
    }

    /// The protocol for a handshake name, if known.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Protocol::Json),
            "messagepack" => Some(Protocol::MessagePack),
            _ => None,
        }
    }

    /// The transfer format this protocol needs from a transport.
    pub fn transfer_format(self) -> TransferFormat {
        match self {
            Protocol::Json => TransferFormat::Text,
            Protocol::MessagePack => TransferFormat::Binary,
        }
    }

    /// Appends `message`, framed (`0x1E` or a length prefix), to `out`.
    pub fn encode(self, message: &HubMessage, out: &mut Vec<u8>) {
        match self {
            Protocol::Json => json::encode(message, out),
            Protocol::MessagePack => msgpack::encode(message, out),
        }
    }

    /// Appends `message` with its length prefix as ASP.NET Core's *server* writes MessagePack
    /// (`MessagePackHubProtocolWorker`), which differs from the client's writer in two
    /// messages: Invocation and StreamInvocation always carry 6 elements (an empty stream-id
    /// array; an Invocation's empty id is nil), and Close always carries 3 (an empty error is
    /// nil). Readers accept both. The fixture writes this way; clients use [`Protocol::encode`].
    pub fn encode_messagepack_as_server(message: &HubMessage, out: &mut Vec<u8>) {
        msgpack::encode_as(msgpack::Writer::Server, message, out);
    }

    /// Decodes one record whose framing was already removed by a [`Framer`].
    pub fn decode(self, record: &[u8]) -> Result<Decoded, ProtocolError> {
        match self {
            Protocol::Json => json::decode(record),
            Protocol::MessagePack => msgpack::decode(record),
        }
    }

    /// A framer that splits this protocol's byte stream into records.
    pub fn framer(self, max_message_size: usize) -> Framer {
        match self {
            Protocol::Json => Framer::Text(TextFramer::new(max_message_size)),
            Protocol::MessagePack => Framer::Binary(BinaryFramer::new(max_message_size)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn decode_all(protocol: Protocol, bytes: &[u8]) -> Vec<Decoded> {
        let mut framer = protocol.framer(DEFAULT_MAX_MESSAGE_SIZE);
        framer.push(bytes);
        let mut out = Vec::new();
        while let Some(record) = framer.next_record().unwrap() {
            out.push(protocol.decode(&record).unwrap());
        }
        out
    }

    #[test]
    fn the_spec_msgpack_invocation_decodes_and_encodes_to_the_same_bytes() {
        let body = b"\x96\x01\x80\xa3xyz\xa6method\x91\x2a\x90";
        let mut framed = vec![body.len() as u8];
        framed.extend_from_slice(body);
        let decoded = decode_all(Protocol::MessagePack, &framed);
        let Decoded::Message(HubMessage::Invocation(inv)) = &decoded[0] else {
            panic!("{decoded:?}")
        };
        assert_eq!(inv.invocation_id.as_deref(), Some("xyz"));
        assert_eq!(inv.target, "method");
        assert_eq!(inv.arguments[0].decode::<i64>().unwrap(), 42);
        assert_eq!(inv.stream_ids, Some(vec![]));
        let mut out = Vec::new();
        Protocol::MessagePack.encode(&HubMessage::Invocation(inv.clone()), &mut out);
        assert_eq!(out, framed);
    }

    #[test]
    fn json_messages_round_trip_through_text_records() {
        let text = "{\"type\":1,\"invocationId\":\"123\",\"target\":\"Send\",\"arguments\":[42,\"Test Message\"]}\x1e{\"type\":3,\"invocationId\":\"1\",\"result\":null}\x1e{\"type\":6}\x1e";
        let decoded = decode_all(Protocol::Json, text.as_bytes());
        let mut out = Vec::new();
        for d in &decoded {
            let Decoded::Message(m) = d else { panic!() };
            Protocol::Json.encode(m, &mut out);
        }
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn arguments_split_and_join_in_both_protocols() {
        for p in [Protocol::Json, Protocol::MessagePack] {
            let args = encode_arguments(p, &(1, "two", vec![3u8])).unwrap();
            assert_eq!(args.len(), 3);
            let back: (i32, String, Vec<u8>) = decode_arguments(&args).unwrap();
            assert_eq!(back, (1, "two".into(), vec![3]));
            assert!(encode_arguments(p, &()).unwrap().is_empty());
            let () = decode_arguments(&[]).unwrap();
        }
    }

    #[test]
    fn values_transcode_between_protocols() {
        let v = serde_json::json!({"a": [1, -2, 2.5, "x", null, true]});
        let json = RawValue::encode(Protocol::Json, &v).unwrap();
        let packed = json.to_protocol(Protocol::MessagePack).unwrap();
        let back: serde_json::Value = packed
            .to_protocol(Protocol::Json)
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(back, v);
    }
}
