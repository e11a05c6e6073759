//! The handshake: always JSON plus `0x1E`, whatever hub protocol follows (`protocol.md` 2.1).

use super::ProtocolError;

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

impl HandshakeRequest {
    /// Appends the request and its `0x1E` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("codec")
    }
    /// Parses a request record (without the separator), with the server's error texts
    /// (`"Missing required property 'protocol'. Message content: ..."`).
    pub fn parse(record: &[u8]) -> Result<Self, ProtocolError> {
        let _ = record;
        todo!("codec")
    }
}

impl HandshakeResponse {
    /// Appends the response (`{}` or `{"error":...}`) and its `0x1E` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("codec")
    }
    /// Parses a response record (without the separator); an object with a `type` field is
    /// rejected with "Expected a handshake response from the server.".
    pub fn parse(record: &[u8]) -> Result<Self, ProtocolError> {
        let _ = record;
        todo!("codec")
    }
}
