//! Errors of the tokio client, grouped by who is at fault.

use talkback_core::protocol::ValueError;

/// Why a call, a start or the connection failed.
///
/// Connection-level failures keep the core's grouping ([`talkback_core::Error`]: the peer broke
/// the protocol, the server answered with an error, negotiation or every transport failed, the
/// transport broke, the connection closed, the API was misused). This type adds the faults that
/// only exist at the typed API: values that do not fit the caller's serde types, and a builder
/// given a bad configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The connection or the server failed the call (see [`talkback_core::Error`] for the groups).
    #[error(transparent)]
    Connection(#[from] talkback_core::Error),
    /// The caller's arguments or upload items could not be encoded (caller's fault).
    #[error("could not encode a value: {0}")]
    Encode(ValueError),
    /// A result, stream item or handler argument did not match the requested serde type (the
    /// caller's type and the server's value disagree).
    #[error("could not decode a value as the requested type: {0}")]
    Decode(ValueError),
    /// The builder was given an unusable configuration (caller's fault).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The access-token factory failed (the application's fault).
    #[error("the access token factory failed: {0}")]
    AccessToken(String),
    /// The connection's driver task is gone (its runtime shut down) or no tokio runtime is
    /// running.
    #[error("the connection task is not running: {0}")]
    Runtime(String),
}

impl Error {
    /// The server's error text when the server answered with an error (a Completion error, a
    /// handshake error, a Close error, a negotiate `error` field).
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Error::Connection(talkback_core::Error::Server(message)) => Some(message),
            _ => None,
        }
    }

    /// The core error, when this is a connection-level failure.
    pub fn as_connection_error(&self) -> Option<&talkback_core::Error> {
        match self {
            Error::Connection(e) => Some(e),
            _ => None,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type access-token factories return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
