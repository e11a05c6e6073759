//! The connection engine: every input goes through one of the `handle_*` or command methods,
//! which update the state and queue transmits, events and timers.
//!
//! This file holds the state and the public methods; the work is split by phase:
//! [`start`] (negotiate, transports, handshake), [`receive`] (bytes to messages and their
//! dispatch), [`send`] (encoding, the stateful buffer, WebSocket frames and POSTs) and
//! [`lifecycle`] (loss, re-attach, reconnect, close).

use super::link::Link;
use super::{ClientResult, Config, Event, HttpEvent, RequestId, State, Transmit, WebSocketEvent};
use super::{FastMap, GiveBackRoom};
use crate::negotiate::{self, AvailableTransport, NegotiateConnection};
use crate::protocol::{
    CancelInvocation, Completion, CompletionResult, HubMessage, Invocation, RawValue, StreamItem,
};
use crate::stateful::MessageBuffer;
use crate::transport::TransportKind;
use crate::{Error, Instant};
use bytes::Bytes;
use std::collections::VecDeque;

mod lifecycle;
mod receive;
mod send;
mod start;

/// Re-attaches in a row that the server may accept and then close (with a Close frame) before
/// sending anything, before the stateful session counts as gone.
const MAX_REATTACH_ATTEMPTS: u32 = 3;

/// Re-attaches in a row that may open and then drop without a Close frame (a reset, code 1006)
/// before the server sends anything. A reset is usually the network, not the server's answer,
/// so it gets more tries; the bound still stops a server that resets every upgrade.
const MAX_REATTACH_RESETS: u32 = 10;

/// How long `stop` waits for the WebSocket to report that it closed.
const STOP_WAIT: crate::Duration = crate::Duration::from_secs(5);

/// Error text: the server sent nothing within the server timeout.
pub const SERVER_TIMEOUT: &str =
    "Server timeout elapsed without receiving a message from the server.";
/// Error text: pending calls when the connection closes without an error.
pub const INVOCATION_CANCELED: &str =
    "Invocation canceled due to the underlying connection being closed.";
/// Error text: a call while not connected.
pub const NOT_CONNECTED: &str =
    "Cannot send data if the connection is not in the 'Connected' State.";
/// Error text: `start` outside Disconnected.
pub const START_NOT_DISCONNECTED: &str =
    "Cannot start a HubConnection that is not in the 'Disconnected' state.";
/// Error text: `stop` while a start is in progress.
pub const STOPPED_DURING_NEGOTIATION: &str = "The connection was stopped during negotiation.";
/// Error text: the transport closed before the handshake response.
pub const CLOSED_DURING_HANDSHAKE: &str =
    "The underlying connection was closed before the hub handshake could complete.";
/// Error text: the prefix of an access-token factory's failure after a 401.
pub const ACCESS_TOKEN_FAILED: &str = "The access token factory failed: ";
/// Error text: a `set_url` in the wrong state.
pub const SET_URL_STATE: &str =
    "The HubConnection must be in the Disconnected or Reconnecting state to change the url.";

/// What a pending call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Invoke,
    Stream,
}

/// What an HTTP request in flight is for.
#[derive(Debug)]
enum Request {
    Negotiate,
    Sse,
    Poll,
    Post {
        ops: Vec<u64>,
        body: Bytes,
        retried: bool,
    },
    Delete,
}

/// Why the core asked for an access token.
#[derive(Debug)]
enum TokenFor {
    Negotiate,
    /// Retry a POST that got 401.
    RetryPost {
        ops: Vec<u64>,
        body: Bytes,
    },
    /// Retry a long poll that got 401.
    RetryPoll,
}

/// Where a start (or a reconnect attempt) is.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Token,
    Negotiate(RequestId),
    Transport,
    Handshake,
}

/// One start or reconnect attempt: negotiate (with redirects), then transports in server order.
struct Attempt {
    url: String,
    redirects: usize,
    /// The token a redirect pinned (replaces the factory for this attempt).
    pinned_token: Option<String>,
    transports: Option<Vec<AvailableTransport>>,
    next_transport: usize,
    /// The transport picked before a fresh negotiate.
    pending_kind: Option<TransportKind>,
    negotiated: Option<NegotiateConnection>,
    failures: Vec<crate::error::TransportFailure>,
    step: Step,
}

/// Deadlines, one per purpose.
#[derive(Default)]
struct Timers {
    /// Opening a transport plus the handshake.
    handshake: Option<Instant>,
    /// The longest `stop` waits for the WebSocket to report its close.
    stop: Option<Instant>,
    ping: Option<Instant>,
    server: Option<Instant>,
    retry: Option<Instant>,
    ack: Option<Instant>,
}

/// An automatic reconnect in progress.
struct Reconnect {
    started: Instant,
    attempts: u32,
}

/// How a lost connection may recover.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recovery {
    /// The reconnect policy.
    Policy,
    /// Neither (a server Close without `allowReconnect`).
    None,
}

/// The sans-IO SignalR client connection: one hub connection's whole protocol state.
///
/// It never performs IO and never reads a clock: every method takes the current time, and what
/// the connection wants done comes out of its `poll_*` methods. The contract a shell follows is
/// in `docs/architecture.md` ("The engine's run-loop contract") and, in short:
///
/// - **Inputs** (each may queue outputs): the caller's commands [`start`](Self::start),
///   [`stop`](Self::stop), [`invoke`](Self::invoke), [`send`](Self::send),
///   [`send_with_streams`](Self::send_with_streams), [`stream`](Self::stream),
///   [`cancel_stream`](Self::cancel_stream), [`new_upload_stream`](Self::new_upload_stream),
///   [`upload_item`](Self::upload_item), [`upload_complete`](Self::upload_complete),
///   [`complete_client_result`](Self::complete_client_result), [`set_url`](Self::set_url);
///   and what the shell observed: [`handle_http`](Self::handle_http),
///   [`handle_websocket`](Self::handle_websocket), [`handle_access_token`](Self::handle_access_token)
///   and [`handle_timeout`](Self::handle_timeout).
/// - **Outputs**, drained after every input until both return `None`:
///   [`poll_transmit`](Self::poll_transmit) (work for the shell: HTTP requests, aborts, WebSocket
///   open/send/close, fetching an access token) and [`poll_event`](Self::poll_event) (state
///   changes, server invocations, call results); then [`poll_timeout`](Self::poll_timeout) gives
///   the one deadline to arm.
/// - **Backpressure**: while [`is_send_blocked`](Self::is_send_blocked) is true (stateful
///   reconnect's buffer of unacknowledged bytes is full) the shell holds new user sends back.
/// - **Queries**: [`state`](Self::state), [`connection_id`](Self::connection_id),
///   [`config`](Self::config).
///
/// ```no_run
/// use talkback_core::{Config, Connection, Event, HttpEvent, Instant, Transmit, WebSocketEvent};
///
/// // A shell's loop in outline; `io` stands for the shell's sockets, HTTP client and timer.
/// # struct Io;
/// # impl Io {
/// #     fn perform(&mut self, _: Transmit) {}
/// #     fn deliver(&mut self, _: Event) {}
/// #     fn arm_timer(&mut self, _: Option<Instant>) {}
/// #     fn next(&mut self) -> Input { Input::Timer }
/// # }
/// # enum Input { Http(talkback_core::RequestId, HttpEvent), WebSocket(WebSocketEvent), Token(Option<String>), Timer }
/// # let mut io = Io;
/// let mut conn = Connection::new(Config::new("https://example.com/hubs/chat"));
/// conn.start(Instant::now()).expect("a new connection is Disconnected");
/// loop {
///     // Drain until both queues are empty: delivering an event may lead the application to
///     // call a command, which queues more transmits.
///     loop {
///         let transmit = conn.poll_transmit();
///         let event = conn.poll_event();
///         if transmit.is_none() && event.is_none() {
///             break;
///         }
///         transmit.map(|t| io.perform(t)); // FetchAccessToken: run the factory, answer below
///         event.map(|e| io.deliver(e));
///     }
///     io.arm_timer(conn.poll_timeout());
///     let now = Instant::now();
///     match io.next() {
///         Input::Http(id, event) => conn.handle_http(now, id, event),
///         Input::WebSocket(event) => conn.handle_websocket(now, event),
///         Input::Token(token) => conn.handle_access_token(now, Ok(token)),
///         Input::Timer => conn.handle_timeout(now),
///     }
/// }
/// ```
pub struct Connection {
    config: Config,
    state: State,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_request: u64,
    next_invocation: u64,
    next_op: u64,
    connection_id: Option<String>,
    token: Option<String>,
    token_waiters: Vec<TokenFor>,
    /// Boxed, as the rarely used parts below: an idle connection keeps only a pointer's room.
    attempt: Option<Box<Attempt>>,
    link: Option<Link>,
    requests: FastMap<RequestId, Request>,
    /// Calls waiting for their completion, by invocation number (the id is its decimal form).
    calls: FastMap<u64, Call>,
    /// The invocation number of each call's message until it is written.
    op_calls: FastMap<u64, u64>,
    stateful: Option<Box<MessageBuffer>>,
    stateful_requested: bool,
    held_writes: VecDeque<u64>,
    reattach_reason: Option<Error>,
    /// Re-attaches in a row that the server closed (Close frame) before sending anything.
    reattach_failures: u32,
    /// Re-attaches in a row that dropped without a Close frame before the server sent anything.
    reattach_resets: u32,
    timers: Timers,
    reconnect: Option<Reconnect>,
    /// Let go of the room of empty queues and maps once the shell has drained both queues
    /// (set after connecting and when a timer fires: on an idle connection, after its ping).
    trim_when_drained: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("state", &self.state)
            .field("connection_id", &self.connection_id)
            .field("transport", &self.link.as_ref().map(|l| l.kind))
            .field("pending_calls", &self.calls.len())
            .field("requests_in_flight", &self.requests.len())
            .field("stateful", &self.stateful.is_some())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection in [`State::Disconnected`].
    pub fn new(config: Config) -> Self {
        let stateful_requested =
            config.stateful_reconnect || negotiate::url_requests_stateful_reconnect(&config.url);
        Connection {
            config,
            state: State::Disconnected,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_request: 0,
            next_invocation: 0,
            next_op: 0,
            connection_id: None,
            token: None,
            token_waiters: Vec::new(),
            attempt: None,
            link: None,
            requests: FastMap::default(),
            calls: FastMap::default(),
            op_calls: FastMap::default(),
            stateful: None,
            stateful_requested,
            held_writes: VecDeque::new(),
            reattach_reason: None,
            reattach_failures: 0,
            reattach_resets: 0,
            timers: Timers::default(),
            reconnect: None,
            trim_when_drained: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The connection id of the current connection, if connected after a negotiate.
    pub fn connection_id(&self) -> Option<&str> {
        self.connection_id.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Begins connecting; fails unless [`State::Disconnected`].
    pub fn start(&mut self, now: Instant) -> Result<(), Error> {
        if self.state != State::Disconnected {
            return Err(Error::Usage(START_NOT_DISCONNECTED.into()));
        }
        self.stateful_requested = self.config.stateful_reconnect
            || negotiate::url_requests_stateful_reconnect(&self.config.url);
        self.set_state(State::Connecting);
        self.begin_attempt(now);
        Ok(())
    }

    /// Stops the connection (idempotent): sends Close when connected, cancels reconnects.
    pub fn stop(&mut self, now: Instant) {
        match self.state {
            State::Disconnected | State::Disconnecting => {}
            State::Connecting => {
                self.abandon_attempt();
                self.set_state(State::Disconnected);
                self.events.push_back(Event::StartFailed(Error::Closed(
                    STOPPED_DURING_NEGOTIATION.into(),
                )));
            }
            State::Reconnecting => {
                self.abandon_attempt();
                self.timers.retry = None;
                self.reconnect = None;
                self.complete_close(None);
            }
            State::Connected => {
                self.set_state(State::Disconnecting);
                self.timers.ping = None;
                self.timers.ack = None;
                let reattaching = self.stateful.as_ref().is_some_and(|b| b.is_reattaching());
                if !reattaching {
                    let close = HubMessage::Close(Default::default());
                    let _ = self.write(now, &close, None);
                }
                let Some(link) = self.link.as_mut() else {
                    self.finish_stop();
                    return;
                };
                match link.kind {
                    TransportKind::WebSockets => {
                        // Closed once the socket reports it (after the frames queued before the
                        // close went out), as the reference client's `stop` resolves on the
                        // socket's close event; a bounded wait in case it never does.
                        self.transmits.push_back(Transmit::CloseWebSocket);
                        self.timers.stop = Some(now + STOP_WAIT);
                    }
                    kind => {
                        // The queued POSTs, the Close among them, still go out, then long
                        // polling's DELETE. A long poll ends at once, as the reference
                        // client's stop aborts it (the server keeps the connection until the
                        // DELETE); the event stream stays open until the POSTs are done, since
                        // the server ends the connection with it and would refuse them.
                        link.closing = true;
                        if kind == TransportKind::LongPolling {
                            if let Some(id) = link.receive.take() {
                                self.requests.remove(&id);
                                self.transmits.push_back(Transmit::AbortHttp(id));
                            }
                        }
                        self.continue_stop();
                    }
                }
            }
        }
    }

    /// Changes the hub URL; allowed only in Disconnected or Reconnecting.
    pub fn set_url(&mut self, url: String) -> Result<(), Error> {
        match self.state {
            State::Disconnected | State::Reconnecting => {
                self.config.url = url;
                Ok(())
            }
            _ => Err(Error::Usage(SET_URL_STATE.into())),
        }
    }

    /// Queues a non-blocking invocation. Returns the operation id reported in
    /// [`Event::Written`]. (`target` may be a `&str` or, saving a copy, a `String`.)
    pub fn send(
        &mut self,
        now: Instant,
        target: impl Into<String>,
        arguments: Vec<RawValue>,
    ) -> Result<u64, Error> {
        self.send_with_streams(now, target, arguments, Vec::new())
    }

    /// Queues a blocking invocation whose outcome comes as [`Event::InvocationCompleted`].
    /// `stream_ids` are upload streams made with [`Connection::new_upload_stream`].
    /// Returns `(invocation id, operation id)`.
    pub fn invoke(
        &mut self,
        now: Instant,
        target: impl Into<String>,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<(String, u64), Error> {
        self.call(now, Call::Invoke, target.into(), arguments, stream_ids)
    }

    /// Queues a StreamInvocation; items come as [`Event::StreamItem`], the end as
    /// [`Event::StreamCompleted`]. Returns `(invocation id, operation id)`.
    pub fn stream(
        &mut self,
        now: Instant,
        target: impl Into<String>,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<(String, u64), Error> {
        self.call(now, Call::Stream, target.into(), arguments, stream_ids)
    }

    /// Queues a non-blocking invocation with upload streams. Returns the operation id.
    pub fn send_with_streams(
        &mut self,
        now: Instant,
        target: impl Into<String>,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<u64, Error> {
        self.ensure_connected()?;
        let message = HubMessage::Invocation(Invocation {
            invocation_id: None,
            target: target.into(),
            arguments,
            stream_ids: (!stream_ids.is_empty()).then_some(stream_ids),
            headers: Default::default(),
        });
        self.queue(now, &message)
    }

    /// Cancels a stream: sends CancelInvocation and ignores its later items.
    pub fn cancel_stream(&mut self, now: Instant, id: &str) {
        let Some(number) = invocation_number(id) else {
            return;
        };
        if self.calls.get(&number) != Some(&Call::Stream) {
            return;
        }
        self.calls.remove(&number);
        if self.state == State::Connected {
            let message = HubMessage::CancelInvocation(CancelInvocation {
                invocation_id: id.to_owned(),
                headers: Default::default(),
            });
            let _ = self.write(now, &message, None);
        }
    }

    /// A new upload stream id (from the invocation-id counter).
    pub fn new_upload_stream(&mut self) -> String {
        self.new_invocation_id()
    }

    /// Queues one item of an upload stream. Returns the operation id.
    pub fn upload_item(
        &mut self,
        now: Instant,
        stream_id: &str,
        item: RawValue,
    ) -> Result<u64, Error> {
        self.ensure_connected()?;
        let message = HubMessage::StreamItem(StreamItem {
            invocation_id: stream_id.to_owned(),
            item,
            headers: Default::default(),
        });
        self.queue(now, &message)
    }

    /// Ends an upload stream, with an error text if it failed. Returns the operation id.
    pub fn upload_complete(
        &mut self,
        now: Instant,
        stream_id: &str,
        error: Option<String>,
    ) -> Result<u64, Error> {
        self.ensure_connected()?;
        let message = HubMessage::Completion(Completion {
            invocation_id: stream_id.to_owned(),
            result: error.map_or(CompletionResult::Void, CompletionResult::Error),
            headers: Default::default(),
        });
        self.queue(now, &message)
    }

    /// Answers a server invocation that expects a result.
    pub fn complete_client_result(
        &mut self,
        now: Instant,
        invocation_id: &str,
        result: ClientResult,
    ) {
        if self.state != State::Connected {
            return;
        }
        let result = match result {
            ClientResult::Value(value) => CompletionResult::Value(value),
            ClientResult::Error(text) => CompletionResult::Error(text),
            ClientResult::NoResult => {
                CompletionResult::Error("Client didn't provide a result.".into())
            }
            ClientResult::MultipleResults => {
                CompletionResult::Error("Client provided multiple results.".into())
            }
        };
        let message = HubMessage::Completion(Completion {
            invocation_id: invocation_id.to_owned(),
            result,
            headers: Default::default(),
        });
        let _ = self.write(now, &message, None);
    }

    /// The access-token factory's answer to [`Transmit::FetchAccessToken`] (`Ok(None)`: no token).
    pub fn handle_access_token(&mut self, now: Instant, token: Result<Option<String>, String>) {
        self.on_access_token(now, token);
        self.catch_up(now);
    }

    fn on_access_token(&mut self, now: Instant, token: Result<Option<String>, String>) {
        let waiters = std::mem::take(&mut self.token_waiters);
        if let Ok(value) = &token {
            self.token = value.clone();
        }
        for waiter in waiters {
            match (waiter, &token) {
                (TokenFor::Negotiate, Ok(_)) => {
                    if self.attempt.as_ref().is_some_and(|a| a.step == Step::Token) {
                        self.send_negotiate(now);
                    }
                }
                (TokenFor::Negotiate, Err(e)) => {
                    if self.attempt.as_ref().is_some_and(|a| a.step == Step::Token) {
                        let text = negotiate::negotiation_failed_message(e);
                        self.fail_attempt(now, Error::AccessToken(text));
                    }
                }
                (TokenFor::RetryPost { ops, body }, Ok(_)) => {
                    if self.link.is_some() {
                        self.send_post(ops, body, true);
                    }
                }
                (TokenFor::RetryPost { ops, .. }, Err(e)) => {
                    let error = Error::AccessToken(format!("{ACCESS_TOKEN_FAILED}{e}"));
                    self.post_failed(now, ops, error);
                }
                (TokenFor::RetryPoll, Ok(_)) => {
                    self.send_poll();
                    if let Some(link) = self.link.as_mut() {
                        link.poll_after_refresh = true;
                    }
                }
                (TokenFor::RetryPoll, Err(e)) => {
                    let error = Error::AccessToken(format!("{ACCESS_TOKEN_FAILED}{e}"));
                    self.lost(now, Some(error), Recovery::Policy);
                }
            }
        }
    }

    /// Reports the outcome of an HTTP request.
    pub fn handle_http(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
        self.on_http(now, id, event);
        self.catch_up(now);
    }

    fn on_http(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
        let streaming_part = matches!(event, HttpEvent::Head { .. } | HttpEvent::Chunk(_));
        let request = if streaming_part {
            match self.requests.get(&id) {
                Some(Request::Sse) => Request::Sse,
                _ => return,
            }
        } else {
            match self.requests.remove(&id) {
                Some(request) => request,
                None => return,
            }
        };
        match request {
            Request::Negotiate => self.on_negotiate(now, id, event),
            Request::Sse => self.on_sse(now, id, event),
            Request::Poll => self.on_poll(now, id, event),
            Request::Post { ops, body, retried } => {
                self.on_post(now, id, event, ops, body, retried)
            }
            Request::Delete => {
                if self.state == State::Disconnecting {
                    self.finish_stop();
                }
            }
        }
    }

    /// Reports what happened on the WebSocket.
    pub fn handle_websocket(&mut self, now: Instant, event: WebSocketEvent) {
        self.on_websocket(now, event);
        self.catch_up(now);
    }

    fn on_websocket(&mut self, now: Instant, event: WebSocketEvent) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.kind != TransportKind::WebSockets {
            return;
        }
        match event {
            WebSocketEvent::Opened => {
                if link.opened {
                    return;
                }
                link.opened = true;
                if self.is_reattaching() {
                    self.resend(now);
                } else {
                    self.transport_opened(now);
                }
            }
            WebSocketEvent::Failed { status, message } => {
                if link.opened {
                    return;
                }
                self.link = None;
                if self.is_reattaching() {
                    let reason = self.reattach_reason.take();
                    self.lost(now, reason, Recovery::Policy);
                } else {
                    let text = match status {
                        Some(status) => format!("{message} (HTTP status {status})"),
                        None => message,
                    };
                    self.transport_failed(now, text);
                }
            }
            WebSocketEvent::Message(data) => {
                if link.opened {
                    // The server spoke on a re-attached socket: the session is alive.
                    if std::mem::take(&mut link.reattach_unconfirmed) {
                        self.reattach_failures = 0;
                        self.reattach_resets = 0;
                    }
                    self.on_data(now, &data);
                }
            }
            WebSocketEvent::Closed { code, reason } => {
                let was_open = link.opened;
                let reattach_failed = link.reattach_unconfirmed;
                if reattach_failed {
                    match code {
                        None | Some(1006) => self.reattach_resets += 1,
                        Some(_) => self.reattach_failures += 1,
                    }
                }
                let target = link.ws_target.clone();
                self.link = None;
                let error = match code {
                    Some(1000) => None,
                    code => Some(Error::Transport(format!(
                        "WebSocket closed with status code: {} ({}).",
                        code.unwrap_or(1006),
                        if reason.is_empty() {
                            "no reason given"
                        } else {
                            &reason
                        }
                    ))),
                };
                if self.attempt.is_some() {
                    if was_open {
                        let error = error
                            .unwrap_or_else(|| Error::Transport(CLOSED_DURING_HANDSHAKE.into()));
                        self.fail_attempt(now, error);
                    } else {
                        self.transport_failed(now, "WebSocket failed to connect.".into());
                    }
                } else if self.is_reattaching() {
                    let reason = self.reattach_reason.take();
                    self.lost(now, reason, Recovery::Policy);
                } else if reattach_failed
                    && (self.reattach_failures >= MAX_REATTACH_ATTEMPTS
                        || self.reattach_resets >= MAX_REATTACH_RESETS)
                {
                    // Opened, then closed before the server sent anything, again and again (a
                    // server that answers 101 and closes with 4404 "Connection not found."):
                    // the session is gone.
                    self.reattach_failures = 0;
                    self.reattach_resets = 0;
                    self.lost(now, error, Recovery::Policy);
                } else if !self.try_reattach(error.clone(), target) {
                    self.lost(now, error, Recovery::Policy);
                }
            }
        }
    }

    /// Reports that the deadline of [`Connection::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.trim_when_drained = true;
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.timers.server) {
            self.server_timed_out(now);
        }
        if due(self.timers.stop) {
            self.timers.stop = None;
            if self.state == State::Disconnecting {
                // The socket never reported its close: forget it without another close frame.
                self.link = None;
                self.finish_stop();
            }
        }
        if due(self.timers.handshake) {
            self.timers.handshake = None;
            if self.attempt.is_some() {
                self.handshake_timed_out(now);
            }
        }
        if due(self.timers.retry) {
            self.timers.retry = None;
            if self.state == State::Reconnecting {
                self.begin_attempt(now);
            }
        }
        if due(self.timers.ack) {
            self.send_ack(now);
        }
        if due(self.timers.ping) {
            self.send_ping(now);
        }
    }

    fn server_timed_out(&mut self, now: Instant) {
        self.timers.server = None;
        let error = Error::Transport(SERVER_TIMEOUT.into());
        match self.state {
            State::Connected => self.lost(now, Some(error), Recovery::Policy),
            State::Connecting | State::Reconnecting if self.attempt.is_some() => {
                self.fail_attempt(now, error)
            }
            _ => {}
        }
    }

    fn send_ack(&mut self, now: Instant) {
        self.timers.ack = None;
        if self.state == State::Connected && !self.is_reattaching() {
            if let Some(id) = self.stateful.as_ref().map(|b| b.ack_id()) {
                let _ = self.write(now, &HubMessage::Ack(id), None);
            }
        }
    }

    fn send_ping(&mut self, now: Instant) {
        self.timers.ping = None;
        if self.state == State::Connected && !self.is_reattaching() {
            let _ = self.write(now, &HubMessage::Ping, None);
        }
    }

    /// Network input is also a tick of the clock for the keep-alive; this runs after every
    /// [`handle_websocket`](Self::handle_websocket), [`handle_http`](Self::handle_http) and
    /// [`handle_access_token`](Self::handle_access_token).
    ///
    /// Browsers throttle the timers of hidden tabs: Chrome runs a background tab's chained
    /// timers once a minute after five minutes (dotnet/aspnetcore #31079), so a keep-alive Ping
    /// that waits for [`handle_timeout`](Self::handle_timeout) can leave 60 s of silence, and
    /// the server (`ClientTimeoutInterval`, 30 s by default) closes the connection. Network
    /// events are not throttled, and the server pings every 15 s. So, after handling the input:
    ///
    /// - a Ping goes out if ours is due within a quarter of the keep-alive interval (the
    ///   official JavaScript client arms its ping timer from its receive callback for the same
    ///   reason). Sending it a little early, not only once overdue, bounds the silence while
    ///   the timer is held back to the interval plus the server's ping period minus that
    ///   quarter (27.25 s with the defaults and a server pinging every 16 s at most), below
    ///   the server's 30 s even when the server's pings arrive a little before ours fall due;
    /// - an overdue stateful-reconnect Ack goes out (the server holds its sent messages until
    ///   acknowledged);
    /// - an overdue server timeout is handled. The input is handled first, so bytes that
    ///   arrive after the deadline but before the late timer count as the server being alive.
    ///
    /// Only deadlines that passed before `now` are caught up (the ping's early window aside):
    /// one set by this very input, a zero reconnect delay say, still waits for the timer, so
    /// the order of events is the same as with timers that are on time.
    fn catch_up(&mut self, now: Instant) {
        let overdue = |t: Option<Instant>| t.is_some_and(|t| t < now);
        if overdue(self.timers.server) {
            self.server_timed_out(now);
        }
        if overdue(self.timers.ack) {
            self.send_ack(now);
        }
        let early = now + self.config.keep_alive_interval / 4;
        if self.timers.ping.is_some_and(|ping| ping <= early)
            && self.state == State::Connected
            && !self.is_reattaching()
        {
            self.send_ping(now);
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front();
        if transmit.is_none() && self.trim_when_drained {
            self.trim();
        }
        transmit
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() && self.trim_when_drained {
            self.trim();
        }
        event
    }

    /// Gives back the room of the queues and maps that are empty, once both queues are: an
    /// idle connection keeps none of what a burst of calls (or the start) made them grow to.
    /// Runs only after connecting and after a timer, so a busy connection does not allocate its
    /// queues again and again.
    fn trim(&mut self) {
        if !self.transmits.is_empty() || !self.events.is_empty() {
            return;
        }
        self.trim_when_drained = false;
        self.transmits = VecDeque::new();
        self.events = VecDeque::new();
        self.held_writes.give_back_if_empty();
        self.calls.give_back_if_empty();
        self.op_calls.give_back_if_empty();
        self.requests.give_back_if_empty();
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.stop,
            self.timers.handshake,
            self.timers.ping,
            self.timers.server,
            self.timers.retry,
            self.timers.ack,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether stateful-reconnect backpressure holds new sends (unacknowledged bytes ≥ buffer).
    pub fn is_send_blocked(&self) -> bool {
        self.stateful.as_ref().is_some_and(|b| b.is_full())
    }

    // ------------------------------------------------------------------ state and bookkeeping

    fn set_state(&mut self, to: State) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.events.push_back(Event::StateChanged { from, to });
        }
    }

    fn new_invocation_id(&mut self) -> String {
        self.new_invocation().to_string()
    }

    /// A new invocation number; its id is its decimal form.
    fn new_invocation(&mut self) -> u64 {
        let number = self.next_invocation;
        self.next_invocation += 1;
        number
    }

    fn new_op(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op
    }

    fn new_request(&mut self, request: Request) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.requests.insert(id, request);
        id
    }

    /// Writes a user's message under a new operation id (reported in [`Event::Written`]).
    fn queue(&mut self, now: Instant, message: &HubMessage) -> Result<u64, Error> {
        let op = self.new_op();
        self.write(now, message, Some(op))?;
        Ok(op)
    }

    fn ensure_connected(&self) -> Result<(), Error> {
        if self.state == State::Connected {
            Ok(())
        } else {
            Err(Error::Usage(NOT_CONNECTED.into()))
        }
    }

    fn is_reattaching(&self) -> bool {
        self.stateful.as_ref().is_some_and(|b| b.is_reattaching())
    }

    fn call(
        &mut self,
        now: Instant,
        kind: Call,
        target: String,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<(String, u64), Error> {
        self.ensure_connected()?;
        let number = self.new_invocation();
        let invocation = Invocation {
            invocation_id: Some(number.to_string()),
            target,
            arguments,
            stream_ids: (!stream_ids.is_empty()).then_some(stream_ids),
            headers: Default::default(),
        };
        let message = match kind {
            Call::Invoke => HubMessage::Invocation(invocation),
            Call::Stream => HubMessage::StreamInvocation(invocation),
        };
        let op = self.new_op();
        self.calls.insert(number, kind);
        self.op_calls.insert(op, number);
        if let Err(e) = self.write(now, &message, Some(op)) {
            self.calls.remove(&number);
            self.op_calls.remove(&op);
            return Err(e);
        }
        // The id goes back to the caller: the message is done with it.
        let id = match message {
            HubMessage::Invocation(invocation) | HubMessage::StreamInvocation(invocation) => {
                invocation.invocation_id
            }
            _ => None,
        };
        Ok((id.unwrap_or_else(|| number.to_string()), op))
    }

    /// Reports an operation as written (or not); a failed write also fails its call.
    fn written(&mut self, op: u64, result: Result<(), Error>) {
        if let Some(number) = self.op_calls.remove(&op) {
            if let Err(error) = &result {
                let id = number.to_string();
                match self.calls.remove(&number) {
                    Some(Call::Invoke) => self.events.push_back(Event::InvocationCompleted {
                        id,
                        result: Err(error.clone()),
                    }),
                    Some(Call::Stream) => self.events.push_back(Event::StreamCompleted {
                        id,
                        result: Err(error.clone()),
                    }),
                    None => {}
                }
            }
        }
        self.events.push_back(Event::Written { op, result });
    }

    /// Headers for an HTTP request: user headers, the user agent and `Authorization`.
    fn http_headers(&self) -> Vec<(String, String)> {
        let mut headers = self.config.headers.clone();
        if !self.config.user_agent.is_empty() {
            headers.push((
                self.config.user_agent_header.clone(),
                self.config.user_agent.clone(),
            ));
        }
        let pinned = self.attempt.as_ref().and_then(|a| a.pinned_token.clone());
        let token = pinned.clone().or_else(|| self.token.clone());
        if self.config.has_access_token_factory || pinned.is_some() {
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
        }
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        headers
    }

    fn current_token(&self) -> Option<String> {
        self.attempt
            .as_ref()
            .and_then(|a| a.pinned_token.clone())
            .or_else(|| self.token.clone())
            .filter(|t| !t.is_empty())
    }
}

/// The invocation number of an invocation id this client made: its canonical decimal form
/// ("0", "17"; not "017" or "+17"), so that an id the server sent matches only the call it names.
pub(crate) fn invocation_number(id: &str) -> Option<u64> {
    let bytes = id.as_bytes();
    let canonical = match bytes {
        [] => false,
        [b'0'] => true,
        [first, ..] => *first != b'0' && bytes.iter().all(u8::is_ascii_digit),
    };
    if canonical {
        id.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
