//! Errors, grouped by who is at fault.

use crate::negotiate::NegotiateParseError;
use crate::protocol::ProtocolError;

/// Why a connection, a start or a call failed.
///
/// The variants say who is at fault; new variants may be added, so match with a wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol (bad bytes, bad handshake, messages out of place).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The server answered with an error: a Completion error, a handshake error, a Close error,
    /// a negotiate `error` field.
    #[error("{0}")]
    Server(String),
    /// Negotiation failed or every transport failed (the reference client's `AggregateErrors`,
    /// `FailedToNegotiateWithServerError`, HTTP status errors).
    #[error("{0}")]
    Connect(ConnectFailure),
    /// The transport broke (socket closed, network error, timeout).
    #[error("{0}")]
    Transport(String),
    /// The connection closed before the call finished.
    #[error("{0}")]
    Closed(String),
    /// The caller misused the API (start twice, invoke while disconnected, ...).
    #[error("{0}")]
    Usage(String),
    /// The application's access-token factory failed (answered
    /// [`Transmit::FetchAccessToken`](crate::Transmit::FetchAccessToken) with an error). During a
    /// start the text reads as the reference client's ("Failed to complete negotiation with the
    /// server: ...").
    #[error("{0}")]
    AccessToken(String),
}

impl From<NegotiateParseError> for Error {
    fn from(e: NegotiateParseError) -> Self {
        Error::Connect(ConnectFailure::new(e.to_string()))
    }
}

/// Why a connect failed, as text (the reference client's message) and as data: the negotiate
/// response's HTTP status, and what became of each transport the server offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectFailure {
    /// The whole message (the reference client's text).
    pub message: String,
    /// The negotiate request failed (the reference client's
    /// `FailedToNegotiateWithServerError`).
    pub negotiate: bool,
    /// The HTTP status of a negotiate answered outside 200-299.
    pub status: Option<u16>,
    /// With `status`: what the server's body said (a bounded excerpt), if anything.
    pub status_text: Option<String>,
    /// Each transport tried or skipped, in the server's order (empty when negotiation failed).
    pub transports: Vec<TransportFailure>,
}

impl ConnectFailure {
    /// A failure with a message and no details.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectFailure {
            message: message.into(),
            negotiate: false,
            status: None,
            status_text: None,
            transports: Vec::new(),
        }
    }
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for ConnectFailure {
    fn from(message: String) -> Self {
        ConnectFailure::new(message)
    }
}

/// What became of one transport during a connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportFailure {
    /// The transport name as the server wrote it.
    pub transport: String,
    /// Skipped or failed, and why.
    pub kind: TransportFailureKind,
    /// The reason (the reference client's text, without the `<name> failed: ` prefix).
    pub reason: String,
}

/// How a transport failed (the reference client's error classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportFailureKind {
    /// The client disabled it (`DisabledTransportError`).
    Disabled,
    /// It does not carry the protocol's transfer format.
    Format,
    /// This client does not know the transport (`UnsupportedTransportError`).
    Unsupported,
    /// It was tried and did not start (`FailedToStartTransportError`).
    Failed,
}

impl TransportFailureKind {
    /// `disabled`, `format`, `unsupported` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportFailureKind::Disabled => "disabled",
            TransportFailureKind::Format => "format",
            TransportFailureKind::Unsupported => "unsupported",
            TransportFailureKind::Failed => "failed",
        }
    }
}
