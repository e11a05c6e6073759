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
    Connect(String),
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
        Error::Connect(e.to_string())
    }
}
