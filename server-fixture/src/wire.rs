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
//! The MessagePack server form comes from the core itself
//! ([`Protocol::encode_messagepack_as_server`]), so one encoder serves both sides; the JSON server
//! writer differs in too many places (header position, .NET's escaping) and lives here.
//!
//! Argument, item and result values are written as they are held: values the hub encoded in the
//! connection's protocol go out unchanged (a value held in the other protocol is transcoded,
//! `null`/`nil` if it cannot be).

use talkback_core::protocol::{
    CompletionResult, Headers, HubMessage, Protocol, RawValue, RECORD_SEPARATOR,
};

/// Appends `message` as ASP.NET Core's server writes it in `protocol`, framing included (the
/// JSON record separator, or the MessagePack VarInt length prefix).
pub fn encode_server_message(protocol: Protocol, message: &HubMessage, out: &mut Vec<u8>) {
    match protocol {
        Protocol::Json => json::encode(message, out),
        Protocol::MessagePack => Protocol::encode_messagepack_as_server(message, out),
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
