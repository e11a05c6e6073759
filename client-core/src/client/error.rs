//! Errors of the client API, grouped by who is at fault.

use crate::protocol::ValueError;

/// The core's error: connection-level failures, grouped by who is at fault.
pub use crate::Error as ConnectionError;

/// Why a call, a start or the connection failed.
///
/// New variants may be added, so match with a wildcard arm.
///
/// Connection-level failures keep the core's grouping ([`ConnectionError`]: the peer broke
/// the protocol, the server answered with an error, negotiation or every transport failed, the
/// transport broke, the connection closed, the API was misused). This type adds the faults that
/// only exist at the typed API: values that do not fit the caller's serde types, and a builder
/// given a bad configuration. A failing access-token factory is
/// [`ConnectionError::AccessToken`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection or the server failed the call (see [`ConnectionError`] for the groups).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
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
    /// The connection's driver task is gone (its runtime shut down), or the runtime cannot run
    /// the connection's tasks from here (for the tokio shell: no tokio runtime is running).
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// The server's error text when the server answered with an error (a Completion error, a
    /// handshake error, a Close error, a negotiate `error` field).
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Error::Connection(ConnectionError::Server(message)) => Some(message),
            _ => None,
        }
    }

    /// The core error, when this is a connection-level failure.
    pub fn as_connection_error(&self) -> Option<&ConnectionError> {
        match self {
            Error::Connection(e) => Some(e),
            _ => None,
        }
    }
}

/// The result type of the client API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type access-token factories return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
