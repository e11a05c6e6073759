//! Negotiate: the URL, the response forms (v0, v1, redirect, error) and the connect URL
//! (`protocol.md` 1.1 to 1.4). Both the client and the fixture use these types.

use crate::protocol::TransferFormat;
use crate::transport::TransportKind;

/// The most redirects a client follows before giving up.
pub const MAX_REDIRECTS: usize = 100;

/// One entry of `availableTransports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailableTransport {
    /// The transport name as the server wrote it (`"WebSockets"`, ...); unknown names are kept
    /// so that the client can report skipping them.
    pub transport: String,
    /// The transfer formats the server offers on it.
    pub transfer_formats: Vec<TransferFormat>,
}

/// A negotiate response that names a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegotiateConnection {
    /// The public connection id (`None` only after `skipNegotiation`).
    pub connection_id: String,
    /// The secret used as `id=` (v1); v0 responses use the connection id here.
    pub connection_token: String,
    /// The negotiate version the server answered with (0 when absent).
    pub negotiate_version: u32,
    /// The transports in server order.
    pub available_transports: Vec<AvailableTransport>,
    /// Whether the server agreed to stateful reconnect.
    pub use_stateful_reconnect: bool,
}

/// What a negotiate response tells the client to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NegotiateResponse {
    /// Connect with these details.
    Connection(NegotiateConnection),
    /// Negotiate again at `url`, with `access_token` if given (Azure SignalR's redirect).
    Redirect {
        /// The new base URL.
        url: String,
        /// The token to use from now on.
        access_token: Option<String>,
    },
    /// The server refused: `{"error": "..."}`.
    Error(String),
}

/// Builds `POST {base}/negotiate?{query}&negotiateVersion=1[&useStatefulReconnect=true]`.
pub fn negotiate_url(base: &str, stateful_reconnect: bool) -> Result<String, url::ParseError> {
    let _ = (base, stateful_reconnect);
    todo!("negotiate")
}

/// Appends `id=<token>` with `?` or `&`, not re-encoding the token (as the reference client).
pub fn connect_url(base: &str, connection_token: &str) -> String {
    let _ = (base, connection_token);
    todo!("negotiate")
}

impl NegotiateResponse {
    /// Parses a negotiate body; unknown fields are ignored, a `ProtocolVersion` field is an ASP.NET
    /// SignalR server and is rejected.
    pub fn parse(body: &[u8]) -> Result<Self, NegotiateParseError> {
        let _ = body;
        todo!("negotiate")
    }

    /// Serializes the response as a server sends it (`connectionToken` only for version ≥ 1).
    pub fn to_json(&self) -> String {
        todo!("negotiate")
    }
}

/// A negotiate body could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NegotiateParseError {
    /// The body is not the JSON object a negotiate response must be.
    #[error("Invalid negotiate response: {0}")]
    Invalid(String),
    /// The server is a classic ASP.NET SignalR server.
    #[error("Detected a connection attempt to an ASP.NET SignalR Server. This client only supports connecting to an ASP.NET Core SignalR Server. See https://aka.ms/signalr-core-differences for details.")]
    AspNetSignalR,
}

#[doc(hidden)]
pub fn _uses(_: TransportKind) {}
