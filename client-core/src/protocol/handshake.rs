//! The handshake: always JSON plus `0x1E`, whatever hub protocol follows
//! (docs/protocol/hub-protocol.md, "Handshake").

use super::{ProtocolError, RECORD_SEPARATOR};
use serde_json::{Map, Value};

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

fn object(record: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(record) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the handshake is not a JSON object".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl HandshakeRequest {
    /// Appends the request and its `0x1E` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let body = serde_json::json!({ "protocol": self.protocol, "version": self.version });
        serde_json::to_writer(&mut *out, &body).expect("writing to a Vec cannot fail");
        out.push(RECORD_SEPARATOR);
    }

    /// Parses a request record (without the separator), with the server's error texts
    /// (`"Missing required property 'protocol'. Message content: ..."`).
    pub fn parse(record: &[u8]) -> Result<Self, ProtocolError> {
        let map = object(record).map_err(ProtocolError::InvalidHandshake)?;
        let missing = |name: &str| {
            ProtocolError::InvalidHandshake(format!(
                "Missing required property '{name}'. Message content: {}",
                String::from_utf8_lossy(record)
            ))
        };
        let protocol = match map.get("protocol") {
            Some(Value::String(p)) => p.clone(),
            Some(_) => {
                return Err(ProtocolError::InvalidHandshake(
                    "Expected 'protocol' to be of type String.".into(),
                ))
            }
            None => return Err(missing("protocol")),
        };
        let version = match map.get("version") {
            Some(Value::Number(n)) => {
                n.as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| {
                        ProtocolError::InvalidHandshake(
                            "Expected 'version' to be of type Integer.".into(),
                        )
                    })?
            }
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
                let body = serde_json::json!({ "error": error });
                serde_json::to_writer(&mut *out, &body).expect("writing to a Vec cannot fail");
            }
        }
        out.push(RECORD_SEPARATOR);
    }

    /// Parses a response record (without the separator); an object with a `type` field is
    /// rejected with "Expected a handshake response from the server.".
    pub fn parse(record: &[u8]) -> Result<Self, ProtocolError> {
        let map = object(record).map_err(ProtocolError::InvalidHandshake)?;
        if map.contains_key("type") {
            return Err(ProtocolError::InvalidHandshake(
                "Expected a handshake response from the server.".into(),
            ));
        }
        let error = match map.get("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.clone()),
            Some(other) => Some(other.to_string()),
        };
        Ok(HandshakeResponse { error })
    }
}
