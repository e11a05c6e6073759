//! The sans-IO hub connection: negotiate, transport choice and fallback, handshake, the state
//! machine of docs/protocol/client.md ("Connection states"), keep-alive and server timeout,
//! calls, reconnect and stateful reconnect.
//!
//! A shell drives a [`Connection`] by feeding it inputs and, after every input, draining its
//! outputs until both [`Connection::poll_transmit`] and [`Connection::poll_event`] return
//! `None`, then arming one timer at [`Connection::poll_timeout`]; see [`Connection`] for the
//! contract and an example loop, and `docs/architecture.md` for the whole picture.

mod engine;
mod fast_map;
mod link;
mod room;

// The client layer keys its pending calls by the same number.
#[cfg(feature = "client")]
pub(crate) use engine::invocation_number;
pub(crate) use fast_map::FastMap;
pub(crate) use room::GiveBackRoom;

pub use engine::{
    Connection, ACCESS_TOKEN_FAILED, CLOSED_DURING_HANDSHAKE, INVOCATION_CANCELED, NOT_CONNECTED,
    SERVER_TIMEOUT, SET_URL_STATE, START_NOT_DISCONNECTED, STOPPED_DURING_NEGOTIATION,
};

use crate::protocol::{Protocol, RawValue, TransferFormat};
use crate::reconnect::ReconnectPolicy;
use crate::transport::TransportSet;
use crate::{Duration, Error};
use bytes::Bytes;

/// Settings of one connection; see each field for the reference client's default.
pub struct Config {
    /// The hub URL (`http(s)://host/hubs/name`; `ws(s)` is accepted with `skip_negotiation`).
    pub url: String,
    /// The hub protocol. Default JSON.
    pub protocol: Protocol,
    /// The transports the client may use. Default all.
    pub transports: TransportSet,
    /// Connect straight over WebSockets without negotiating (WebSockets only).
    pub skip_negotiation: bool,
    /// Ask for stateful reconnect (`useStatefulReconnect=true`, handshake version 2).
    pub stateful_reconnect: bool,
    /// Bytes of unacknowledged messages before sends wait. Default 100,000.
    pub stateful_reconnect_buffer_size: usize,
    /// Send a Ping after this long without sending. Default 15 s.
    pub keep_alive_interval: Duration,
    /// Close when nothing arrives for this long. Default 30 s.
    pub server_timeout: Duration,
    /// Timeout of negotiate, POST send and DELETE requests. Default 100 s.
    pub http_timeout: Duration,
    /// How long opening a transport and the handshake may take together before the client
    /// closes it and tries the next transport. Default 15 s (ASP.NET Core's handshake timeout;
    /// the reference JavaScript client has none and can wait forever on a proxy that holds an
    /// SSE request open).
    pub handshake_timeout: Duration,
    /// Timeout of one long poll. Default 100 s.
    pub long_poll_timeout: Duration,
    /// Delay of the coalesced Ack under stateful reconnect. Default 1 s.
    pub ack_delay: Duration,
    /// The reconnect policy; `None` means no automatic reconnect.
    pub reconnect_policy: Option<Box<dyn ReconnectPolicy>>,
    /// The largest message accepted from the server, in bytes. Default 1 MiB.
    pub max_message_size: usize,
    /// Headers sent on every HTTP request (and on the WebSocket upgrade when
    /// `headers_on_websocket`).
    pub headers: Vec<(String, String)>,
    /// The user-agent value (`Microsoft SignalR/x.y (...)` style).
    pub user_agent: String,
    /// The header that carries it: `User-Agent` (native) or `X-SignalR-User-Agent` (browser).
    pub user_agent_header: String,
    /// Whether an access-token factory exists (the core then asks for a token with
    /// [`Transmit::FetchAccessToken`] before every negotiate).
    pub has_access_token_factory: bool,
    /// Put the token in the `access_token` query of WebSocket and SSE URLs (browsers, which
    /// cannot set headers there) instead of an `Authorization` header.
    pub access_token_in_query: bool,
    /// Whether headers (user headers, `Authorization`) can be sent on the WebSocket upgrade and
    /// the SSE request (native: yes; browser: no).
    pub headers_on_websocket: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may hold credentials: only their names are shown.
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("protocol", &self.protocol)
            .field("transports", &self.transports)
            .field("skip_negotiation", &self.skip_negotiation)
            .field("stateful_reconnect", &self.stateful_reconnect)
            .field(
                "stateful_reconnect_buffer_size",
                &self.stateful_reconnect_buffer_size,
            )
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("server_timeout", &self.server_timeout)
            .field("http_timeout", &self.http_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("long_poll_timeout", &self.long_poll_timeout)
            .field("ack_delay", &self.ack_delay)
            .field("reconnect_policy", &self.reconnect_policy.is_some())
            .field("max_message_size", &self.max_message_size)
            .field("headers", &header_names)
            .field("user_agent", &self.user_agent)
            .field("user_agent_header", &self.user_agent_header)
            .field("has_access_token_factory", &self.has_access_token_factory)
            .field("access_token_in_query", &self.access_token_in_query)
            .field("headers_on_websocket", &self.headers_on_websocket)
            .finish()
    }
}

impl Config {
    /// The defaults of the reference client for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            protocol: Protocol::Json,
            transports: TransportSet::ALL,
            skip_negotiation: false,
            stateful_reconnect: false,
            stateful_reconnect_buffer_size: 100_000,
            keep_alive_interval: Duration::from_secs(15),
            server_timeout: Duration::from_secs(30),
            http_timeout: Duration::from_secs(100),
            handshake_timeout: Duration::from_secs(15),
            long_poll_timeout: Duration::from_secs(100),
            ack_delay: Duration::from_secs(1),
            reconnect_policy: None,
            max_message_size: crate::protocol::DEFAULT_MAX_MESSAGE_SIZE,
            headers: Vec::new(),
            user_agent: String::new(),
            user_agent_header: "User-Agent".into(),
            has_access_token_factory: false,
            access_token_in_query: false,
            headers_on_websocket: true,
        }
    }
}

/// The connection states (docs/protocol/client.md, "Connection states").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not connected; `start` is allowed.
    Disconnected,
    /// Negotiating, opening a transport or handshaking.
    Connecting,
    /// Handshake done; calls flow.
    Connected,
    /// `stop` was called; waiting for the transport to close.
    Disconnecting,
    /// Lost the connection; waiting for or making a reconnect attempt.
    Reconnecting,
}

/// Identifies one HTTP request the core asked for, so the shell can report its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// HTTP methods the core uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// Long polls and the SSE stream.
    Get,
    /// Negotiate and sends.
    Post,
    /// Ending a long-polling connection.
    Delete,
}

/// An HTTP request for the shell to perform.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// Report the outcome with this id.
    pub id: RequestId,
    /// The method.
    pub method: HttpMethod,
    /// The absolute URL.
    pub url: String,
    /// Every header to send (user headers, user agent, `Authorization`, `Content-Type`, `Accept`).
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Bytes,
    /// Give up after this long and report [`HttpEvent::Failed`] with `timed_out`.
    pub timeout: Option<Duration>,
    /// Deliver the body as it arrives ([`HttpEvent::Head`], then [`HttpEvent::Chunk`]s, then
    /// [`HttpEvent::End`]) instead of one [`HttpEvent::Response`] (used for SSE).
    pub streaming: bool,
}

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Transmit {
    /// Perform an HTTP request and report it with [`Connection::handle_http`].
    Http(HttpRequest),
    /// Abort a request in flight (a long poll or an SSE stream); report nothing more for it.
    AbortHttp(RequestId),
    /// Run the access-token factory and answer with [`Connection::handle_access_token`].
    FetchAccessToken,
    /// Open a WebSocket to `url` (`ws://` or `wss://`) with these upgrade headers; report with
    /// [`Connection::handle_websocket`].
    OpenWebSocket {
        /// The URL.
        url: String,
        /// The headers for the upgrade request (empty in browsers).
        headers: Vec<(String, String)>,
    },
    /// Send one WebSocket message, as a text frame for [`TransferFormat::Text`].
    WebSocketSend {
        /// The payload (one or more framed hub messages).
        data: Bytes,
        /// Text or binary frame.
        format: TransferFormat,
    },
    /// Close the WebSocket (normal closure).
    CloseWebSocket,
}

/// An HTTP outcome the shell reports.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpEvent {
    /// A whole response (non-streaming requests).
    Response {
        /// The status code.
        status: u16,
        /// The body.
        body: Bytes,
    },
    /// The status of a streaming response; chunks follow.
    Head {
        /// The status code.
        status: u16,
    },
    /// More body of a streaming response.
    Chunk(Bytes),
    /// A streaming response ended (cleanly when `error` is `None`).
    End {
        /// Why the stream broke, if it did.
        error: Option<String>,
    },
    /// The request failed without a response.
    Failed {
        /// The shell's own timer for [`HttpRequest::timeout`] fired. Only that: a network
        /// error, including the operating system's "connection timed out", is `false`, because
        /// the engine re-polls after a long poll's own deadline but must end the transport
        /// after any other failure (the server may have answered that poll already).
        timed_out: bool,
        /// A description for error messages.
        message: String,
    },
}

/// A WebSocket outcome the shell reports.
#[derive(Clone, Debug, PartialEq)]
pub enum WebSocketEvent {
    /// The upgrade succeeded.
    Opened,
    /// The upgrade failed (including HTTP statuses such as 401, 404, 409).
    Failed {
        /// The HTTP status of a refused upgrade, if any.
        status: Option<u16>,
        /// A description for error messages.
        message: String,
    },
    /// One message arrived (text or binary payload bytes).
    Message(Bytes),
    /// The socket closed.
    Closed {
        /// The close code, if a close frame arrived.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
}

/// The answer to a server invocation that expects a result (a client result).
#[derive(Clone, Debug, PartialEq)]
pub enum ClientResult {
    /// The handler's value.
    Value(RawValue),
    /// The handler failed; the text goes to the server.
    Error(String),
    /// No handler gave a result ("Client didn't provide a result.").
    NoResult,
    /// More than one handler gave a result ("Client provided multiple results.").
    MultipleResults,
}

/// Something for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The state changed.
    StateChanged {
        /// The old state.
        from: State,
        /// The new state.
        to: State,
    },
    /// `start` succeeded; `connection_id` is `None` after `skip_negotiation`.
    Started {
        /// The connection id.
        connection_id: Option<String>,
    },
    /// `start` failed; no `Closed` follows.
    StartFailed(Error),
    /// The connection lost its transport and is reconnecting (`onreconnecting`).
    Reconnecting(Error),
    /// A reconnect attempt succeeded (`onreconnected`).
    Reconnected {
        /// The new connection id.
        connection_id: Option<String>,
    },
    /// The connection ended (`onclose`); `None` after `stop` or when retries ran out.
    Closed(Option<Error>),
    /// The server invoked a client method. When `invocation_id` is set the server awaits a
    /// result: answer with [`Connection::complete_client_result`].
    Invocation {
        /// The method name as sent.
        target: String,
        /// The arguments, still encoded.
        arguments: Vec<RawValue>,
        /// Set when the server expects a result.
        invocation_id: Option<String>,
    },
    /// An `invoke` finished: `Ok(None)` for a void completion.
    InvocationCompleted {
        /// The id `invoke` returned.
        id: String,
        /// The result or why it failed.
        result: Result<Option<RawValue>, Error>,
    },
    /// One item of a stream started with [`Connection::stream`].
    StreamItem {
        /// The id `stream` returned.
        id: String,
        /// The item, still encoded.
        item: RawValue,
    },
    /// A stream ended; `Err` after its earlier items were delivered.
    StreamCompleted {
        /// The id `stream` returned.
        id: String,
        /// How it ended.
        result: Result<(), Error>,
    },
    /// A message queued by `send`, `invoke`, `stream` or an upload call was handed to the
    /// transport (for `send` this is when its future resolves); `Err` if it never will be.
    Written {
        /// The operation id the call returned.
        op: u64,
        /// Whether it was written.
        result: Result<(), Error>,
    },
}
