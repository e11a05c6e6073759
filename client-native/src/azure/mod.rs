//! Azure SignalR Service for services and devices that hold a connection string (feature
//! `azure`).
//!
//! - [`ServiceClient::client_info`] makes what an app server's (or an Azure Functions app's)
//!   `negotiate` answers: the service's client URL and an access token for it
//!   (`{"url": .., "accessToken": ..}`), which [`crate::HubConnectionBuilder`] follows like any
//!   SignalR redirect;
//! - the data-plane REST API, v1 and 2022-06-01, as typed calls on [`ServiceClient`]: send to
//!   everyone (with repeated `excluded`), a user, a group or a connection; group membership
//!   (with `ttl`); existence checks; closing connections; the health check. Each request carries a
//!   fresh bearer token whose `aud` is the request URL, and 429 and 5xx answers are retried,
//!   honouring `Retry-After`, a bounded number of times ([`RetryPolicy`]).
//!
//! The connection string, token and URL rules live in [`talkback_core::azure`], re-exported here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), talkback::azure::AzureError> {
//! use talkback::azure::{Message, ServiceClient};
//! let service = ServiceClient::from_connection_string(
//!     "Endpoint=http://localhost;Port=8888;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;",
//! )?;
//! let info = service.client_info("chat", Some("alice"))?; // hand this to a client
//! service.send_to_all("chat", &Message::new("newMessage", vec!["hello".into()]), &[]).await?;
//! service.add_user_to_group("chat", "admins", "alice", None).await?;
//! # Ok(()) }
//! ```

mod rest;

pub use rest::{Message, RetryPolicy, ServiceClient, MAX_BODY_LEN};
pub use talkback_core::azure::*;

/// What an app server's `negotiate` answers for Azure SignalR: the client URL of the service
/// and an access token for it. Serializes as `{"url": .., "accessToken": ..}`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientInfo {
    /// `{client endpoint}/client/?hub=<hub>`.
    pub url: String,
    /// A JWT whose `aud` is the client URL (port-less, as the SDK writes it).
    #[serde(rename = "accessToken")]
    pub access_token: String,
}

impl std::fmt::Debug for ClientInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInfo")
            .field("url", &self.url)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

/// Why an Azure call failed, grouped by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AzureError {
    // --- the caller's ---
    /// The connection string does not parse.
    #[error("bad connection string: {0}")]
    ConnectionString(#[from] ConnectionStringError),
    /// The connection string has no `AccessKey` (Entra ID authentication is not supported).
    #[error("the connection string has no AccessKey; Entra ID authentication (AuthType={0}) is not supported")]
    NoAccessKey(String),
    /// A hub, group, user or connection id the service would refuse.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `hub`, `group`, `user`, `connection id`, `target` or `application`.
        what: &'static str,
        /// The name, cut to a few dozen characters.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The message body is over the service's 1 MB limit.
    #[error("the message body is {len} bytes; the service accepts at most {max}")]
    BodyTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The call does not exist in the chosen API version.
    #[error("{call} is not part of the {api:?} REST API")]
    Unsupported {
        /// The call.
        call: &'static str,
        /// The API version.
        api: RestApiVersion,
    },
    /// A token could not be made (claims too big, clock before 1970).
    #[error("cannot make an access token: {0}")]
    Token(#[from] TokenError),

    // --- the service's ---
    /// The service answered with an error status (after any retries).
    #[error("{method} {url} answered {status}{}{}: {body}", code_suffix(.error_code), attempts_suffix(*.attempts))]
    Status {
        /// The HTTP method.
        method: String,
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The `x-ms-error-code` header, if any.
        error_code: Option<String>,
        /// The start of the body (at most [`BODY_EXCERPT`] characters).
        body: String,
        /// How many requests were made.
        attempts: u32,
    },

    // --- the network's ---
    /// The request could not be made or the answer not read (after any retries).
    #[error("{method} {url} failed: {message}")]
    Http {
        /// The HTTP method.
        method: String,
        /// The request URL.
        url: String,
        /// What failed.
        message: String,
    },
}

/// How much of an error body [`AzureError::Status`] keeps, in characters.
pub const BODY_EXCERPT: usize = 512;

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

fn attempts_suffix(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

impl AzureError {
    /// The HTTP status, for [`AzureError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the caller is at fault (bad configuration or input).
    pub fn is_caller_error(&self) -> bool {
        !matches!(self, Self::Status { .. } | Self::Http { .. })
    }
}
