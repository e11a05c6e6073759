//! The handshake: always JSON plus `0x1E`, whatever hub protocol follows
//! (docs/protocol/hub-protocol.md, "Handshake").

use super::{ProtocolError, RECORD_SEPARATOR};
use crate::json_text::{write_string, Json, Reader};
use std::borrow::Cow;

/// The client's first message: `{"protocol":"json","version":1}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The hub protocol name (`"json"`, `"messagepack"`, or anything a peer sends).
    pub protocol: String,
    /// 1, or 2 when stateful reconnect was negotiated.
    pub version: u32,
}

/// The server's answer: `{}` on success, `{"error":"..."}` on failure.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HandshakeResponse {
    /// The failure text, `None` on success.
    pub error: Option<String>,
}

/// The handshake's members, as raw JSON texts (the last one if a key repeats).
fn members(record: &[u8]) -> Result<Vec<(Cow<'_, str>, &str)>, String> {
    let mut reader = Reader::new(record).map_err(|e| e.to_string())?;
    if reader.peek() != Some(b'{') {
        // Any other well-formed JSON is still "not an object"; malformed text says why.
        reader.skip().map_err(|e| e.to_string())?;
        reader.finish().map_err(|e| e.to_string())?;
        return Err("the handshake is not a JSON object".into());
    }
    let mut members = Vec::new();
    reader
        .object(|r, key| {
            members.push((key, r.skip()?));
            Ok(())
        })
        .and_then(|()| reader.finish())
        .map_err(|e| e.to_string())?;
    Ok(members)
}

fn member<'a>(members: &[(Cow<'_, str>, &'a str)], key: &str) -> Option<&'a str> {
    members.iter().rev().find(|(k, _)| k == key).map(|m| m.1)
}

impl HandshakeRequest {
    /// Appends the request and its `0x1E` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"protocol\":");
        write_string(&self.protocol, out);
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.push(b'}');
        out.push(RECORD_SEPARATOR);
    }

    /// Parses a request record (without the separator), with the server's error texts
    /// (`"Missing required property 'protocol'. Message content: ..."`).
    pub fn parse(record: &[u8]) -> Result<Self, ProtocolError> {
        let map = members(record).map_err(ProtocolError::InvalidHandshake)?;
        let missing = |name: &str| {
            ProtocolError::InvalidHandshake(format!(
                "Missing required property '{name}'. Message content: {}",
                String::from_utf8_lossy(record)
            ))
        };
        let value = |key| member(&map, key).map(|text| Json::parse(text.as_bytes()));
        let protocol = match value("protocol") {
            Some(Ok(Json::String(p))) => p.into_owned(),
            Some(_) => {
                return Err(ProtocolError::InvalidHandshake(
                    "Expected 'protocol' to be of type String.".into(),
                ))
            }
            None => return Err(missing("protocol")),
        };
        let version = match value("version") {
            Some(Ok(n @ Json::Number(_))) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    ProtocolError::InvalidHandshake(
                        "Expected 'version' to be of type Integer.".into(),
                    )
                })?,
            Some(_) => {
                return Err(ProtocolError::InvalidHandshake(
                    "Expected 'version' to be of type Integer.".into(),
                ))
            }
            None => return Err(missing("version")),
        };
        Ok(HandshakeRequest { protocol, version })
    }
}

impl HandshakeResponse {
    /// Appends the response (`{}` or `{"error":...}`) and its `0x1E` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.error {
            None => out.extend_from_slice(b"{}"),
            Some(error) => {
                out.extend_from_slice(b"{\"error\":");
                write_string(error, out);
                out.push(b'}');
            }
        }
        out.push(RECORD_SEPARATOR);
    }

    /// Parses a response record (without the separator); an object with a `type` field is
    /// rejected with "Expected a handshake response from the server.".
    pub fn parse(record: &[u8]) -> Result<Self, ProtocolError> {
        let map = members(record).map_err(ProtocolError::InvalidHandshake)?;
        if member(&map, "type").is_some() {
            return Err(ProtocolError::InvalidHandshake(
                "Expected a handshake response from the server.".into(),
            ));
        }
        let error = match member(&map, "error") {
            None | Some("null") => None,
            Some(text) => match Json::parse(text.as_bytes()) {
                Ok(Json::String(e)) => Some(e.into_owned()),
                // Another value: its JSON text.
                _ => Some(text.to_owned()),
            },
        };
        Ok(HandshakeResponse { error })
    }
}
