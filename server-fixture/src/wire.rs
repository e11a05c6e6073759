//! What the fixture writes on the wire: every server-to-client hub message and the handshake
//! response, byte for byte as ASP.NET Core's server writes them.
//!
//! `talkback-core`'s codecs write what the JavaScript *client* writes (a MessagePack Invocation
//! without stream ids has 5 elements, a Close is `[7, error]` ...). A server writes a few
//! messages differently, and some clients only accept the server's form (signalrcore reads
//! element 5 of every Invocation). The reference writers mirrored here:
//!
//! * MessagePack: `MessagePackHubProtocolWorker.cs` in
//!   `src/SignalR/common/Protocols.MessagePack/src/Protocol/` (`WriteInvocationMessage`,
//!   `WriteStreamInvocationMessage`, `WriteStreamingItemMessage`, `WriteCompletionMessage`,
//!   `WriteCancelInvocationMessage`, `WritePingMessage`, `WriteCloseMessage`,
//!   `WriteAckMessage`, `WriteSequenceMessage`, `PackHeaders`, `WriteStreamIds`).
//! * JSON: `JsonHubProtocol.cs` in `src/SignalR/common/Protocols.Json/src/Protocol/`
//!   (`WriteMessageCore` and the `Write*Message` helpers), through `ReusableUtf8JsonWriter`
//!   (`JavaScriptEncoder.UnsafeRelaxedJsonEscaping`).
//! * Handshake: `HandshakeProtocol.WriteResponseMessage` (`{}` or `{"error":...}`, then `0x1E`).
//!
//! Where the two writers differ from the core's:
//!
//! | message | MessagePack | JSON |
//! |---|---|---|
//! | Invocation, StreamInvocation | always 6 elements, `[]` when no stream ids; an empty invocation id is `nil` (Invocation) | `headers` right after `type`; an empty invocation id is left out |
//! | Completion | as the core | an empty error text is left out (the reference tests `IsNullOrEmpty`) |
//! | Close | always `[7, error or nil, allowReconnect]`; an empty error is `nil` | as the core |
//! | StreamItem, CancelInvocation | as the core | `headers` right after `type` |
//! | Ping, Ack, Sequence | as the core | as the core |
//!
//! Argument, item and result values are written as they are held: values the hub encoded in the
//! connection's protocol go out unchanged (a value held in the other protocol is transcoded,
//! `null`/`nil` if it cannot be).

use bytes::Bytes;
use rmp::encode as enc;
use talkback_core::protocol::{
    CompletionResult, Headers, HubMessage, Invocation, Protocol, RawValue, RECORD_SEPARATOR,
};

/// Appends `message` as ASP.NET Core's server writes it in `protocol`, framing included (the
/// JSON record separator, or the MessagePack VarInt length prefix).
pub fn encode_server_message(protocol: Protocol, message: &HubMessage, out: &mut Vec<u8>) {
    match protocol {
        Protocol::Json => json::encode(message, out),
        Protocol::MessagePack => {
            let mut body = Vec::with_capacity(64);
            msgpack::encode(message, &mut body);
            write_length_prefix(body.len(), out);
            out.extend_from_slice(&body);
        }
    }
}

/// The handshake response as ASP.NET Core's `HandshakeProtocol.WriteResponseMessage` writes
/// it: `{}` on success, `{"error":"..."}` otherwise (an empty error text counts as success),
/// then `0x1E`.
pub fn encode_handshake_response(error: Option<&str>, out: &mut Vec<u8>) {
    out.push(b'{');
    if let Some(error) = error.filter(|e| !e.is_empty()) {
        out.extend_from_slice(b"\"error\":");
        json::string(error, out);
    }
    out.push(b'}');
    out.push(RECORD_SEPARATOR);
}

/// Encodes one message into a new buffer.
pub(crate) fn to_bytes(protocol: Protocol, message: &HubMessage) -> Bytes {
    let mut out = Vec::new();
    encode_server_message(protocol, message, &mut out);
    Bytes::from(out)
}

/// The binary framing's VarInt length prefix (7 bits a byte, least significant group first).
fn write_length_prefix(mut len: usize, out: &mut Vec<u8>) {
    loop {
        let low = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

mod json {
    use super::*;

    pub(super) fn encode(message: &HubMessage, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":");
        out.extend_from_slice(message.type_id().to_string().as_bytes());
        match message {
            HubMessage::Invocation(inv) | HubMessage::StreamInvocation(inv) => {
                headers(&inv.headers, out);
                invocation_id(inv.invocation_id.as_deref(), out);
                key("target", out);
                string(&inv.target, out);
                key("arguments", out);
                out.push(b'[');
                for (i, argument) in inv.arguments.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    raw(argument, out);
                }
                out.push(b']');
                if let Some(ids) = &inv.stream_ids {
                    key("streamIds", out);
                    out.push(b'[');
                    for (i, id) in ids.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        string(id, out);
                    }
                    out.push(b']');
                }
            }
            HubMessage::StreamItem(item) => {
                headers(&item.headers, out);
                invocation_id(Some(&item.invocation_id), out);
                key("item", out);
                raw(&item.item, out);
            }
            HubMessage::Completion(c) => {
                headers(&c.headers, out);
                invocation_id(Some(&c.invocation_id), out);
                match &c.result {
                    CompletionResult::Error(error) if !error.is_empty() => {
                        key("error", out);
                        string(error, out);
                    }
                    CompletionResult::Error(_) | CompletionResult::Void => {}
                    CompletionResult::Value(value) => {
                        key("result", out);
                        raw(value, out);
                    }
                }
            }
            HubMessage::CancelInvocation(c) => {
                headers(&c.headers, out);
                invocation_id(Some(&c.invocation_id), out);
            }
            HubMessage::Ping => {}
            HubMessage::Close(close) => {
                if let Some(error) = &close.error {
                    key("error", out);
                    string(error, out);
                }
                if close.allow_reconnect {
                    key("allowReconnect", out);
                    out.extend_from_slice(b"true");
                }
            }
            HubMessage::Ack(id) | HubMessage::Sequence(id) => {
                key("sequenceId", out);
                out.extend_from_slice(id.to_string().as_bytes());
            }
        }
        out.push(b'}');
        out.push(RECORD_SEPARATOR);
    }

    fn key(name: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    }

    /// `WriteInvocationId`: only a non-empty id is written.
    fn invocation_id(id: Option<&str>, out: &mut Vec<u8>) {
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            key("invocationId", out);
            string(id, out);
        }
    }

    /// `WriteHeaders`: only a non-empty map, right after `type`.
    fn headers(headers: &Headers, out: &mut Vec<u8>) {
        if headers.is_empty() {
            return;
        }
        key("headers", out);
        out.push(b'{');
        for (i, (name, value)) in headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(name, out);
            out.push(b':');
            string(value, out);
        }
        out.push(b'}');
    }

    fn raw(value: &RawValue, out: &mut Vec<u8>) {
        match value.protocol() {
            Protocol::Json => out.extend_from_slice(value.as_bytes()),
            Protocol::MessagePack => match value.to_protocol(Protocol::Json) {
                Ok(json) => out.extend_from_slice(json.as_bytes()),
                Err(_) => out.extend_from_slice(b"null"),
            },
        }
    }

    /// A JSON string as `Utf8JsonWriter` writes it with `UnsafeRelaxedJsonEscaping`: `"` and
    /// `\` and the short forms `\b \t \n \f \r` escaped with a backslash; other control
    /// characters (C0, DEL, C1), U+2028, U+2029 and characters outside the Basic Multilingual
    /// Plane (as a UTF-16 surrogate pair) as `\uXXXX` with upper-case hex; everything else,
    /// non-ASCII included, as UTF-8.
    pub(super) fn string(text: &str, out: &mut Vec<u8>) {
        out.push(b'"');
        let mut units = [0u16; 2];
        for ch in text.chars() {
            match ch {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '\r' => out.extend_from_slice(b"\\r"),
                c if (c as u32) < 0x20
                    || (0x7f..=0x9f).contains(&(c as u32))
                    || c == '\u{2028}'
                    || c == '\u{2029}'
                    || (c as u32) > 0xffff =>
                {
                    for unit in c.encode_utf16(&mut units) {
                        out.extend_from_slice(format!("\\u{:04X}", unit).as_bytes());
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        out.push(b'"');
    }
}

mod msgpack {
    use super::*;

    /// Writes to a `Vec`, which cannot fail.
    fn ok<T, E: std::fmt::Debug>(result: Result<T, E>) {
        result.expect("writing to a Vec cannot fail");
    }

    fn len32(len: usize) -> u32 {
        u32::try_from(len).unwrap_or(u32::MAX)
    }

    pub(super) fn encode(message: &HubMessage, out: &mut Vec<u8>) {
        match message {
            HubMessage::Invocation(inv) => invocation(1, inv, true, out),
            HubMessage::StreamInvocation(inv) => invocation(4, inv, false, out),
            HubMessage::StreamItem(item) => {
                ok(enc::write_array_len(out, 4));
                ok(enc::write_uint(out, 2));
                headers(&item.headers, out);
                ok(enc::write_str(out, &item.invocation_id));
                raw(&item.item, out);
            }
            HubMessage::Completion(c) => {
                let void = matches!(c.result, CompletionResult::Void);
                ok(enc::write_array_len(out, if void { 4 } else { 5 }));
                ok(enc::write_uint(out, 3));
                headers(&c.headers, out);
                ok(enc::write_str(out, &c.invocation_id));
                match &c.result {
                    CompletionResult::Error(error) => {
                        ok(enc::write_uint(out, 1));
                        ok(enc::write_str(out, error));
                    }
                    CompletionResult::Void => ok(enc::write_uint(out, 2)),
                    CompletionResult::Value(value) => {
                        ok(enc::write_uint(out, 3));
                        raw(value, out);
                    }
                }
            }
            HubMessage::CancelInvocation(c) => {
                ok(enc::write_array_len(out, 3));
                ok(enc::write_uint(out, 5));
                headers(&c.headers, out);
                ok(enc::write_str(out, &c.invocation_id));
            }
            HubMessage::Ping => {
                ok(enc::write_array_len(out, 1));
                ok(enc::write_uint(out, 6));
            }
            HubMessage::Close(close) => {
                ok(enc::write_array_len(out, 3));
                ok(enc::write_uint(out, 7));
                match close.error.as_deref().filter(|e| !e.is_empty()) {
                    Some(error) => ok(enc::write_str(out, error)),
                    None => ok(enc::write_nil(out)),
                }
                ok(enc::write_bool(out, close.allow_reconnect));
            }
            HubMessage::Ack(id) | HubMessage::Sequence(id) => {
                ok(enc::write_array_len(out, 2));
                ok(enc::write_uint(out, u64::from(message.type_id())));
                ok(enc::write_uint(out, *id));
            }
        }
    }

    /// `WriteInvocationMessage` / `WriteStreamInvocationMessage`: six elements, always.
    fn invocation(type_id: u64, inv: &Invocation, empty_id_is_nil: bool, out: &mut Vec<u8>) {
        ok(enc::write_array_len(out, 6));
        ok(enc::write_uint(out, type_id));
        headers(&inv.headers, out);
        match inv.invocation_id.as_deref() {
            Some(id) if !(empty_id_is_nil && id.is_empty()) => ok(enc::write_str(out, id)),
            _ => ok(enc::write_nil(out)),
        }
        ok(enc::write_str(out, &inv.target));
        ok(enc::write_array_len(out, len32(inv.arguments.len())));
        for argument in &inv.arguments {
            raw(argument, out);
        }
        let ids = inv.stream_ids.as_deref().unwrap_or_default();
        ok(enc::write_array_len(out, len32(ids.len())));
        for id in ids {
            ok(enc::write_str(out, id));
        }
    }

    fn headers(headers: &Headers, out: &mut Vec<u8>) {
        ok(enc::write_map_len(out, len32(headers.len())));
        for (name, value) in headers {
            ok(enc::write_str(out, name));
            ok(enc::write_str(out, value));
        }
    }

    fn raw(value: &RawValue, out: &mut Vec<u8>) {
        match value.protocol() {
            Protocol::MessagePack => out.extend_from_slice(value.as_bytes()),
            Protocol::Json => match value.to_protocol(Protocol::MessagePack) {
                Ok(packed) => out.extend_from_slice(packed.as_bytes()),
                Err(_) => ok(enc::write_nil(out)),
            },
        }
    }
}
