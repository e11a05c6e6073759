//! Negotiate: the URL, the response forms (v0, v1, redirect, error) and the connect URL
//! (docs/protocol/transport.md, "Negotiate request" to "Transport selection and fallback").
//! Both the client and the fixture use these types.

use crate::json_text::Json;
use serde_json::{Map, Value};

use crate::hub_url::{self, UrlError};
use crate::protocol::TransferFormat;
use crate::transport::{TransportKind, TransportSet};

/// The most redirects a client follows before giving up.
pub const MAX_REDIRECTS: usize = 100;

/// The largest negotiate body [`NegotiateResponse::parse`] accepts.
pub const MAX_NEGOTIATE_BODY: usize = 64 * 1024;

/// The longest connection id, token, URL, access token or error text accepted in a response.
pub const MAX_FIELD_LEN: usize = 8 * 1024;

/// The most `availableTransports` entries accepted.
pub const MAX_TRANSPORTS: usize = 32;

/// Error text: no transport of the server is usable by this client.
pub const NO_COMMON_TRANSPORT: &str =
    "None of the transports supported by the client are supported by the server.";
/// Error text (prefix): every usable transport failed.
pub const UNABLE_TO_CONNECT: &str =
    "Unable to connect to the server with any of the available transports.";
/// Error text: more than [`MAX_REDIRECTS`] redirects.
pub const REDIRECT_LIMIT_EXCEEDED: &str = "Negotiate redirection limit exceeded.";
/// Appended to the unexpected-status error when the status is 404.
pub const NOT_FOUND_HINT: &str =
    " Either this is not a SignalR endpoint or there is a proxy blocking the connection.";
/// Error text (prefix) wrapping any negotiate failure.
pub const NEGOTIATION_FAILED_PREFIX: &str = "Failed to complete negotiation with the server: ";
/// Error text: `skip_negotiation` without WebSockets-only.
pub const SKIP_NEGOTIATION_REQUIRES_WEBSOCKETS: &str =
    "Negotiation can only be skipped when using the WebSocket transport directly.";
/// Error text: the server turned on stateful reconnect that the client did not ask for.
pub const UNREQUESTED_STATEFUL_RECONNECT: &str =
    "Client didn't negotiate Stateful Reconnect but the server did.";

/// `Unexpected status code returned from negotiate '<code>'`, then `: <the server's reason>`
/// when the body says something (a bounded excerpt), and the 404 hint for 404.
pub fn unexpected_status_message(status: u16, body: &[u8]) -> String {
    let mut text = format!("Unexpected status code returned from negotiate '{status}'");
    if let Some(reason) = crate::http_status::body_excerpt(body) {
        text.push_str(": ");
        text.push_str(&reason);
    }
    if status == 404 {
        text.push_str(NOT_FOUND_HINT);
    }
    text
}

/// `Failed to complete negotiation with the server: <error>`.
pub fn negotiation_failed_message(error: &str) -> String {
    format!("{NEGOTIATION_FAILED_PREFIX}{error}")
}

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
///
/// The existing query is kept; `negotiateVersion` is not added when already present (any case),
/// nor `useStatefulReconnect`. The base is normalized first ([`crate::hub_url::normalize`]).
pub fn negotiate_url(base: &str, stateful_reconnect: bool) -> Result<String, UrlError> {
    let base = hub_url::normalize(base)?;
    let mut parts = hub_url::split(&base)?;
    let path = if parts.path.ends_with('/') {
        format!("{}negotiate", parts.path)
    } else if parts.path.is_empty() {
        "/negotiate".to_owned()
    } else {
        format!("{}/negotiate", parts.path)
    };
    parts.path = &path;
    let has = |key: &str| {
        parts
            .query
            .is_some_and(|q| hub_url::query_pairs(q).any(|(k, _)| k.eq_ignore_ascii_case(key)))
    };
    let need_version = !has("negotiateVersion");
    let need_stateful = stateful_reconnect && !has("useStatefulReconnect");
    let mut query = parts.query.unwrap_or("").to_owned();
    let mut add = |pair: &str| {
        if !query.is_empty() && !query.ends_with('&') {
            query.push('&');
        }
        query.push_str(pair);
    };
    if need_version {
        add("negotiateVersion=1");
    }
    if need_stateful {
        add("useStatefulReconnect=true");
    }
    parts.query = Some(&query);
    Ok(hub_url::join(&parts))
}

/// Appends `id=<token>` with `?` or `&`, not re-encoding the token (as the reference client).
pub fn connect_url(base: &str, connection_token: &str) -> String {
    append_query_pair(base, "id", connection_token)
}

/// Appends `access_token=<token>` with the token percent-encoded as JavaScript's
/// `encodeURIComponent` does (browser WebSockets and Server-Sent Events cannot send headers).
pub fn with_access_token(url: &str, token: &str) -> String {
    append_query_pair(url, "access_token", &encode_uri_component(token))
}

/// `encodeURIComponent`: keeps `A-Z a-z 0-9 - _ . ! ~ * ' ( )`, percent-encodes other UTF-8 bytes.
pub fn encode_uri_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The WebSocket URL for an HTTP URL: a leading `http` becomes `ws` (`https` -> `wss`); other
/// URLs are returned unchanged.
pub fn websocket_url(url: &str) -> String {
    // `get` rather than slicing: the caller's URL may hold a multi-byte character anywhere.
    if url
        .get(..4)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http"))
    {
        format!("ws{}", &url[4..])
    } else {
        url.to_owned()
    }
}

fn append_query_pair(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// A negotiate body could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiateParseError {
    /// The body is not the JSON object a negotiate response must be.
    #[error("Invalid negotiate response: {0}")]
    Invalid(String),
    /// The server is a classic ASP.NET SignalR server.
    #[error("Detected a connection attempt to an ASP.NET SignalR Server. This client only supports connecting to an ASP.NET Core SignalR Server. See https://aka.ms/signalr-core-differences for details.")]
    AspNetSignalR,
}

fn invalid(text: impl Into<String>) -> NegotiateParseError {
    NegotiateParseError::Invalid(text.into())
}

/// A bounded optional string field; `null` counts as absent.
fn string_field(obj: &Json<'_>, key: &str) -> Result<Option<String>, NegotiateParseError> {
    match obj.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.len() > MAX_FIELD_LEN => Err(invalid(format!(
            "'{key}' is longer than {MAX_FIELD_LEN} bytes"
        ))),
        Some(Json::String(s)) => Ok(Some(s.to_string())),
        Some(_) => Err(invalid(format!("'{key}' is not a string"))),
    }
}

fn parse_transport(obj: &Json<'_>) -> Result<AvailableTransport, NegotiateParseError> {
    if !matches!(obj, Json::Object(_)) {
        return Err(invalid("an availableTransports entry is not an object"));
    }
    let transport = string_field(obj, "transport")?
        .ok_or_else(|| invalid("an availableTransports entry has no 'transport'"))?;
    let mut transfer_formats = Vec::new();
    match obj.get("transferFormats") {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for item in items {
                let name = match item {
                    Json::String(name) => Some(&**name),
                    _ => None,
                };
                match name {
                    Some("Text") if !transfer_formats.contains(&TransferFormat::Text) => {
                        transfer_formats.push(TransferFormat::Text)
                    }
                    Some("Binary") if !transfer_formats.contains(&TransferFormat::Binary) => {
                        transfer_formats.push(TransferFormat::Binary)
                    }
                    Some(_) => {}
                    None => return Err(invalid("'transferFormats' holds a non-string")),
                }
            }
        }
        Some(_) => return Err(invalid("'transferFormats' is not an array")),
    }
    Ok(AvailableTransport {
        transport,
        transfer_formats,
    })
}

impl NegotiateResponse {
    /// Parses a negotiate body; unknown fields are ignored, a `ProtocolVersion` field is an ASP.NET
    /// SignalR server and is rejected.
    ///
    /// Checks in the reference client's order: `error`, then `ProtocolVersion`, then a redirect
    /// `url`, then the connection fields; an empty `error`, `url` or `accessToken` counts as
    /// absent, as in the reference client. Bodies over [`MAX_NEGOTIATE_BODY`] and strings over
    /// [`MAX_FIELD_LEN`] are refused. Never panics.
    pub fn parse(body: &[u8]) -> Result<Self, NegotiateParseError> {
        if body.len() > MAX_NEGOTIATE_BODY {
            return Err(invalid(format!(
                "the body is {} bytes, more than the {MAX_NEGOTIATE_BODY} allowed",
                body.len()
            )));
        }
        let obj = Json::parse(body).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if !matches!(obj, Json::Object(_)) {
            return Err(invalid("the body is not a JSON object"));
        }
        let obj = &obj;

        // As the reference client, empty strings count as absent (JavaScript truthiness).
        if let Some(error) = string_field(obj, "error")?.filter(|e| !e.is_empty()) {
            return Ok(NegotiateResponse::Error(error));
        }
        if obj.get("ProtocolVersion").is_some_and(Json::is_truthy) {
            return Err(NegotiateParseError::AspNetSignalR);
        }
        if let Some(url) = string_field(obj, "url")?.filter(|u| !u.is_empty()) {
            let access_token = string_field(obj, "accessToken")?.filter(|t| !t.is_empty());
            return Ok(NegotiateResponse::Redirect { url, access_token });
        }

        let negotiate_version = match obj.get("negotiateVersion") {
            None | Some(Json::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("'negotiateVersion' is not a small non-negative integer"))?,
        };
        let connection_id = string_field(obj, "connectionId")?
            .ok_or_else(|| invalid("'connectionId' is missing"))?;
        let connection_token = if negotiate_version >= 1 {
            string_field(obj, "connectionToken")?
                .ok_or_else(|| invalid("'connectionToken' is missing for negotiateVersion 1"))?
        } else {
            connection_id.clone()
        };
        let available_transports = match obj.get("availableTransports") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) if items.len() > MAX_TRANSPORTS => {
                return Err(invalid(format!(
                    "more than {MAX_TRANSPORTS} availableTransports entries"
                )))
            }
            Some(Json::Array(items)) => items
                .iter()
                .map(parse_transport)
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(invalid("'availableTransports' is not an array")),
        };
        let use_stateful_reconnect = match obj.get("useStatefulReconnect") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => return Err(invalid("'useStatefulReconnect' is not a boolean")),
        };
        Ok(NegotiateResponse::Connection(NegotiateConnection {
            connection_id,
            connection_token,
            negotiate_version,
            available_transports,
            use_stateful_reconnect,
        }))
    }

    /// Serializes the response as a server sends it (`connectionToken` only for version ≥ 1).
    pub fn to_json(&self) -> String {
        let mut obj = Map::new();
        match self {
            NegotiateResponse::Connection(c) => {
                obj.insert("negotiateVersion".into(), c.negotiate_version.into());
                obj.insert("connectionId".into(), c.connection_id.clone().into());
                if c.negotiate_version >= 1 {
                    obj.insert("connectionToken".into(), c.connection_token.clone().into());
                }
                let transports: Vec<Value> = c
                    .available_transports
                    .iter()
                    .map(|t| {
                        let formats: Vec<Value> = t
                            .transfer_formats
                            .iter()
                            .map(|f| Value::from(format_name(*f)))
                            .collect();
                        let mut entry = Map::new();
                        entry.insert("transport".into(), t.transport.clone().into());
                        entry.insert("transferFormats".into(), formats.into());
                        Value::Object(entry)
                    })
                    .collect();
                obj.insert("availableTransports".into(), transports.into());
                if c.use_stateful_reconnect {
                    obj.insert("useStatefulReconnect".into(), true.into());
                }
            }
            NegotiateResponse::Redirect { url, access_token } => {
                obj.insert("url".into(), url.clone().into());
                if let Some(token) = access_token {
                    obj.insert("accessToken".into(), token.clone().into());
                }
            }
            NegotiateResponse::Error(error) => {
                obj.insert("error".into(), error.clone().into());
            }
        }
        Value::Object(obj).to_string()
    }
}

/// The negotiate name of a transfer format (`"Text"`, `"Binary"`).
pub fn format_name(format: TransferFormat) -> &'static str {
    match format {
        TransferFormat::Text => "Text",
        TransferFormat::Binary => "Binary",
    }
}

/// A server transport the client will not try, and why (reference client text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedTransport {
    /// The transport name as the server wrote it.
    pub transport: String,
    /// The reason, e.g. `'LongPolling' is disabled by the client.`
    pub reason: String,
}

/// The outcome of [`choose_transports`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportChoice {
    /// The transports to try, in server order.
    pub candidates: Vec<TransportKind>,
    /// The server transports left out, in server order.
    pub skipped: Vec<SkippedTransport>,
}

impl TransportChoice {
    /// The error when no candidate is left: [`NO_COMMON_TRANSPORT`] if nothing was skipped,
    /// otherwise the aggregate listing each skip reason. `None` if there are candidates.
    pub fn no_candidate_error(&self) -> Option<String> {
        if !self.candidates.is_empty() {
            return None;
        }
        if self.skipped.is_empty() {
            return Some(NO_COMMON_TRANSPORT.to_owned());
        }
        let failures: Vec<String> = self.skipped.iter().map(|s| s.failure_text()).collect();
        Some(unable_to_connect_message(&failures))
    }
}

impl SkippedTransport {
    /// `<name> failed: <reason>`, the form used in the aggregate error.
    pub fn failure_text(&self) -> String {
        transport_failed_message(&self.transport, &self.reason)
    }
}

/// `<name> failed: <error>`: one failure in the aggregate error.
pub fn transport_failed_message(transport: &str, error: &str) -> String {
    format!("{transport} failed: {error}")
}

/// `Unable to connect to the server with any of the available transports. <f1> <f2> ...`, or
/// [`NO_COMMON_TRANSPORT`] when there are no failures.
pub fn unable_to_connect_message(failures: &[String]) -> String {
    if failures.is_empty() {
        return NO_COMMON_TRANSPORT.to_owned();
    }
    format!("{UNABLE_TO_CONNECT} {}", failures.join(" "))
}

/// Picks the server's transports this client may try, in server order, with the reasons for the
/// others (docs/protocol/transport.md, "Transport selection and fallback"; checklist item 31).
pub fn choose_transports(
    available: &[AvailableTransport],
    client: TransportSet,
    format: TransferFormat,
) -> TransportChoice {
    let mut choice = TransportChoice::default();
    for entry in available {
        let skip = |reason: String| SkippedTransport {
            transport: entry.transport.clone(),
            reason,
        };
        let Some(kind) = TransportKind::from_name(&entry.transport) else {
            choice.skipped.push(skip(format!(
                "Skipping transport '{}' because it is not supported by this client.",
                entry.transport
            )));
            continue;
        };
        if !client.contains(kind) {
            choice.skipped.push(skip(format!(
                "'{}' is disabled by the client.",
                kind.name()
            )));
            continue;
        }
        if !entry.transfer_formats.contains(&format) {
            choice.skipped.push(skip(format!(
                "'{}' does not support {}.",
                kind.name(),
                format_name(format)
            )));
            continue;
        }
        if !choice.candidates.contains(&kind) {
            choice.candidates.push(kind);
        }
    }
    choice
}

/// `Failed to start the transport '<T>': <error>` (logged before trying the next transport).
pub fn failed_to_start_transport_message(transport: &str, error: &str) -> String {
    format!("Failed to start the transport '{transport}': {error}")
}

/// Whether the user's base URL already asks for stateful reconnect (`useStatefulReconnect=true`
/// in its query, key in any case), which also switches the option on.
pub fn url_requests_stateful_reconnect(base: &str) -> bool {
    let Ok(base) = hub_url::normalize(base) else {
        return false;
    };
    hub_url::split(&base).is_ok_and(|parts| {
        parts.query.is_some_and(|q| {
            hub_url::query_pairs(q).any(|(k, v)| {
                k.eq_ignore_ascii_case("useStatefulReconnect") && v.eq_ignore_ascii_case("true")
            })
        })
    })
}
