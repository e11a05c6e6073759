//! The connection engine: every input goes through one of the `handle_*` or command methods,
//! which update the state and queue transmits, events and timers.

use super::link::Link;
use super::{
    ClientResult, Config, Event, HttpEvent, HttpMethod, HttpRequest, RequestId, State, Transmit,
    WebSocketEvent,
};
use crate::negotiate::{
    self, AvailableTransport, NegotiateConnection, NegotiateResponse, MAX_REDIRECTS,
};
use crate::protocol::{
    CancelInvocation, Completion, CompletionResult, Decoded, HandshakeRequest, HandshakeResponse,
    HubMessage, Invocation, ProtocolError, RawValue, StreamItem, TransferFormat,
};
use crate::reconnect::RetryContext;
use crate::stateful::{Inbound, MessageBuffer};
use crate::transport::TransportKind;
use crate::{Duration, Error, Instant};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

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
    failures: Vec<String>,
    step: Step,
}

/// Deadlines, one per purpose.
#[derive(Default)]
struct Timers {
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

/// The sans-IO SignalR client connection.
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
    attempt: Option<Attempt>,
    link: Option<Link>,
    requests: HashMap<RequestId, Request>,
    calls: HashMap<String, Call>,
    op_calls: HashMap<u64, String>,
    stateful: Option<MessageBuffer>,
    stateful_requested: bool,
    held_writes: VecDeque<u64>,
    reattach_reason: Option<Error>,
    timers: Timers,
    reconnect: Option<Reconnect>,
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
            requests: HashMap::new(),
            calls: HashMap::new(),
            op_calls: HashMap::new(),
            stateful: None,
            stateful_requested,
            held_writes: VecDeque::new(),
            reattach_reason: None,
            timers: Timers::default(),
            reconnect: None,
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
        let _ = now;
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
                    TransportKind::WebSockets => self.finish_stop(),
                    _ => {
                        link.closing = true;
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
    /// [`Event::Written`].
    pub fn send(
        &mut self,
        now: Instant,
        target: &str,
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
        target: &str,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<(String, u64), Error> {
        self.call(now, Call::Invoke, target, arguments, stream_ids)
    }

    /// Queues a StreamInvocation; items come as [`Event::StreamItem`], the end as
    /// [`Event::StreamCompleted`]. Returns `(invocation id, operation id)`.
    pub fn stream(
        &mut self,
        now: Instant,
        target: &str,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<(String, u64), Error> {
        self.call(now, Call::Stream, target, arguments, stream_ids)
    }

    /// Queues a non-blocking invocation with upload streams. Returns the operation id.
    pub fn send_with_streams(
        &mut self,
        now: Instant,
        target: &str,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<u64, Error> {
        self.ensure_connected()?;
        let message = HubMessage::Invocation(Invocation {
            invocation_id: None,
            target: target.to_owned(),
            arguments,
            stream_ids: (!stream_ids.is_empty()).then_some(stream_ids),
            headers: Default::default(),
        });
        self.queue(now, &message)
    }

    /// Cancels a stream: sends CancelInvocation and ignores its later items.
    pub fn cancel_stream(&mut self, now: Instant, id: &str) {
        if self.calls.get(id) != Some(&Call::Stream) {
            return;
        }
        self.calls.remove(id);
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
    pub fn provide_access_token(&mut self, now: Instant, token: Result<Option<String>, String>) {
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
                        self.fail_attempt(now, Error::Connect(text));
                    }
                }
                (TokenFor::RetryPost { ops, body }, Ok(_)) => {
                    if self.link.is_some() {
                        self.send_post(ops, body, true);
                    }
                }
                (TokenFor::RetryPost { ops, .. }, Err(e)) => {
                    let error = Error::Transport(format!("The access token factory failed: {e}"));
                    self.post_failed(now, ops, error);
                }
                (TokenFor::RetryPoll, Ok(_)) => {
                    self.send_poll();
                    if let Some(link) = self.link.as_mut() {
                        link.poll_after_refresh = true;
                    }
                }
                (TokenFor::RetryPoll, Err(e)) => {
                    let error = Error::Transport(format!("The access token factory failed: {e}"));
                    self.lost(now, Some(error), Recovery::Policy);
                }
            }
        }
    }

    /// Reports the outcome of an HTTP request.
    pub fn handle_http(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
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
                    self.on_data(now, &data);
                }
            }
            WebSocketEvent::Closed { code, reason } => {
                let was_open = link.opened;
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
                } else if !self.try_reattach(error.clone(), target) {
                    self.lost(now, error, Recovery::Policy);
                }
            }
        }
    }

    /// Reports that the deadline of [`Connection::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.timers.server) {
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
        if due(self.timers.retry) {
            self.timers.retry = None;
            if self.state == State::Reconnecting {
                self.begin_attempt(now);
            }
        }
        if due(self.timers.ack) {
            self.timers.ack = None;
            if self.state == State::Connected && !self.is_reattaching() {
                if let Some(id) = self.stateful.as_ref().map(|b| b.ack_id()) {
                    let _ = self.write(now, &HubMessage::Ack(id), None);
                }
            }
        }
        if due(self.timers.ping) {
            self.timers.ping = None;
            if self.state == State::Connected && !self.is_reattaching() {
                let _ = self.write(now, &HubMessage::Ping, None);
            }
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
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
        let id = self.next_invocation.to_string();
        self.next_invocation += 1;
        id
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
        target: &str,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<(String, u64), Error> {
        self.ensure_connected()?;
        let id = self.new_invocation_id();
        let invocation = Invocation {
            invocation_id: Some(id.clone()),
            target: target.to_owned(),
            arguments,
            stream_ids: (!stream_ids.is_empty()).then_some(stream_ids),
            headers: Default::default(),
        };
        let message = match kind {
            Call::Invoke => HubMessage::Invocation(invocation),
            Call::Stream => HubMessage::StreamInvocation(invocation),
        };
        let op = self.new_op();
        self.calls.insert(id.clone(), kind);
        self.op_calls.insert(op, id.clone());
        if let Err(e) = self.write(now, &message, Some(op)) {
            self.calls.remove(&id);
            self.op_calls.remove(&op);
            return Err(e);
        }
        Ok((id, op))
    }

    /// Reports an operation as written (or not); a failed write also fails its call.
    fn written(&mut self, op: u64, result: Result<(), Error>) {
        if let Some(id) = self.op_calls.remove(&op) {
            if let Err(error) = &result {
                match self.calls.remove(&id) {
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

    // ------------------------------------------------------------------ starting

    fn begin_attempt(&mut self, now: Instant) {
        self.attempt = Some(Attempt {
            url: self.config.url.clone(),
            redirects: 0,
            pinned_token: None,
            transports: None,
            next_transport: 0,
            pending_kind: None,
            negotiated: None,
            failures: Vec::new(),
            step: Step::Transport,
        });
        if self.config.skip_negotiation {
            if self.config.transports != crate::TransportSet::only(TransportKind::WebSockets) {
                let text = negotiate::SKIP_NEGOTIATION_REQUIRES_WEBSOCKETS.into();
                self.fail_attempt(now, Error::Usage(text));
                return;
            }
            let url = negotiate::websocket_url(&self.config.url);
            self.open_transport(TransportKind::WebSockets, url);
        } else {
            self.negotiate(now);
        }
    }

    fn negotiate(&mut self, now: Instant) {
        let pinned = self
            .attempt
            .as_ref()
            .is_some_and(|a| a.pinned_token.is_some());
        if self.config.has_access_token_factory && !pinned {
            if let Some(attempt) = self.attempt.as_mut() {
                attempt.step = Step::Token;
            }
            self.fetch_token(TokenFor::Negotiate);
        } else {
            self.send_negotiate(now);
        }
    }

    fn fetch_token(&mut self, purpose: TokenFor) {
        if self.token_waiters.is_empty() {
            self.transmits.push_back(Transmit::FetchAccessToken);
        }
        self.token_waiters.push(purpose);
    }

    fn send_negotiate(&mut self, now: Instant) {
        let Some(attempt) = self.attempt.as_ref() else {
            return;
        };
        let url = match negotiate::negotiate_url(&attempt.url, self.stateful_requested) {
            Ok(url) => url,
            Err(e) => {
                let text = format!("Cannot resolve '{}': {e}.", attempt.url);
                self.fail_attempt(now, Error::Usage(text));
                return;
            }
        };
        let headers = self.http_headers();
        let id = self.new_request(Request::Negotiate);
        if let Some(attempt) = self.attempt.as_mut() {
            attempt.step = Step::Negotiate(id);
        }
        self.transmits.push_back(Transmit::Http(HttpRequest {
            id,
            method: HttpMethod::Post,
            url,
            headers,
            body: Bytes::new(),
            timeout: Some(self.config.http_timeout),
            streaming: false,
        }));
    }

    fn on_negotiate(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
        if self.attempt.as_ref().map(|a| &a.step) != Some(&Step::Negotiate(id)) {
            return;
        }
        let failed = |text: String| Error::Connect(negotiate::negotiation_failed_message(&text));
        let body = match event {
            HttpEvent::Response { status: 200, body } => body,
            HttpEvent::Response { status, .. } => {
                let text = negotiate::unexpected_status_message(status);
                return self.fail_attempt(now, failed(text));
            }
            HttpEvent::Failed { message, .. } => return self.fail_attempt(now, failed(message)),
            _ => return,
        };
        let response = match NegotiateResponse::parse(&body) {
            Ok(response) => response,
            Err(e) => return self.fail_attempt(now, Error::from(e)),
        };
        match response {
            NegotiateResponse::Error(text) => self.fail_attempt(now, Error::Server(text)),
            NegotiateResponse::Redirect { url, access_token } => {
                let Some(attempt) = self.attempt.as_mut() else {
                    return;
                };
                attempt.redirects += 1;
                if attempt.redirects >= MAX_REDIRECTS {
                    let text = negotiate::REDIRECT_LIMIT_EXCEEDED.into();
                    return self.fail_attempt(now, Error::Connect(text));
                }
                attempt.url = url;
                if access_token.is_some() {
                    attempt.pinned_token = access_token;
                }
                self.negotiate(now);
            }
            NegotiateResponse::Connection(connection) => {
                if connection.use_stateful_reconnect && !self.stateful_requested {
                    let text = negotiate::UNREQUESTED_STATEFUL_RECONNECT.into();
                    return self.fail_attempt(now, Error::Connect(text));
                }
                let Some(attempt) = self.attempt.as_mut() else {
                    return;
                };
                if attempt.transports.is_none() {
                    attempt.transports = Some(connection.available_transports.clone());
                }
                attempt.negotiated = Some(connection);
                match attempt.pending_kind.take() {
                    Some(kind) => self.open_negotiated(kind),
                    None => self.try_next_transport(now),
                }
            }
        }
    }

    /// Walks the server's transports in order from where the last try stopped.
    fn try_next_transport(&mut self, now: Instant) {
        let format = self.config.protocol.transfer_format();
        loop {
            let Some(attempt) = self.attempt.as_mut() else {
                return;
            };
            let transports = attempt.transports.as_deref().unwrap_or_default();
            let Some(entry) = transports.get(attempt.next_transport) else {
                let text = negotiate::unable_to_connect_message(&attempt.failures);
                return self.fail_attempt(now, Error::Connect(text));
            };
            attempt.next_transport += 1;
            let choice = negotiate::choose_transports(
                std::slice::from_ref(entry),
                self.config.transports,
                format,
            );
            let Some(&kind) = choice.candidates.first() else {
                attempt
                    .failures
                    .extend(choice.skipped.iter().map(|s| s.failure_text()));
                continue;
            };
            if attempt.negotiated.is_some() {
                return self.open_negotiated(kind);
            }
            // The previous connection token was used up by a failed transport.
            attempt.pending_kind = Some(kind);
            return self.negotiate(now);
        }
    }

    fn open_negotiated(&mut self, kind: TransportKind) {
        let Some(attempt) = self.attempt.as_ref() else {
            return;
        };
        let Some(negotiated) = attempt.negotiated.as_ref() else {
            return;
        };
        let url = negotiate::connect_url(&attempt.url, &negotiated.connection_token);
        self.open_transport(kind, url);
    }

    fn open_transport(&mut self, kind: TransportKind, url: String) {
        if let Some(attempt) = self.attempt.as_mut() {
            attempt.step = Step::Transport;
        }
        let mut link = Link::new(
            kind,
            url.clone(),
            self.config.protocol,
            self.config.max_message_size,
        );
        let token = self.current_token();
        let token_in_query = self.config.access_token_in_query;
        let in_query = |url: String| match (&token, token_in_query) {
            (Some(token), true) => negotiate::with_access_token(&url, token),
            _ => url,
        };
        let side_headers = if self.config.headers_on_websocket {
            self.http_headers()
        } else {
            Vec::new()
        };
        match kind {
            TransportKind::WebSockets => {
                let ws_url = in_query(negotiate::websocket_url(&url));
                link.ws_target = Some((ws_url.clone(), side_headers.clone()));
                self.link = Some(link);
                self.transmits.push_back(Transmit::OpenWebSocket {
                    url: ws_url,
                    headers: side_headers,
                });
            }
            TransportKind::ServerSentEvents => {
                let mut headers = side_headers;
                headers.push(("Accept".into(), "text/event-stream".into()));
                let id = self.new_request(Request::Sse);
                link.receive = Some(id);
                self.link = Some(link);
                self.transmits.push_back(Transmit::Http(HttpRequest {
                    id,
                    method: HttpMethod::Get,
                    url: in_query(url),
                    headers,
                    body: Bytes::new(),
                    timeout: None,
                    streaming: true,
                }));
            }
            TransportKind::LongPolling => {
                self.link = Some(link);
                self.send_poll();
            }
        }
    }

    /// The transport is open: send the handshake.
    fn transport_opened(&mut self, now: Instant) {
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        attempt.step = Step::Handshake;
        let stateful = attempt
            .negotiated
            .as_ref()
            .is_some_and(|n| n.use_stateful_reconnect);
        let kind = self.link.as_ref().map(|l| l.kind);
        let version = if stateful && kind == Some(TransportKind::WebSockets) {
            2
        } else {
            1
        };
        let mut bytes = Vec::new();
        HandshakeRequest {
            protocol: self.config.protocol.name().into(),
            version,
        }
        .encode(&mut bytes);
        self.write_raw(Bytes::from(bytes), TransferFormat::Text, None);
        self.timers.server = Some(now + self.config.server_timeout);
    }

    /// The transport did not open: try the next one (after a fresh negotiate).
    fn transport_failed(&mut self, now: Instant, message: String) {
        self.drop_link();
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        if self.config.skip_negotiation {
            return self.fail_attempt(now, Error::Connect(message));
        }
        let kind = attempt.step == Step::Transport;
        let name = attempt
            .transports
            .as_deref()
            .and_then(|t| t.get(attempt.next_transport.wrapping_sub(1)))
            .map(|t| t.transport.clone())
            .unwrap_or_default();
        if !kind {
            return self.fail_attempt(now, Error::Transport(message));
        }
        tracing::debug!(
            "{}",
            negotiate::failed_to_start_transport_message(&name, &message)
        );
        attempt
            .failures
            .push(negotiate::transport_failed_message(&name, &message));
        attempt.negotiated = None;
        self.try_next_transport(now);
    }

    fn on_handshake_response(&mut self, now: Instant, record: &[u8]) -> bool {
        match HandshakeResponse::parse(record) {
            Err(e) => {
                self.fail_attempt(now, Error::Protocol(e));
                false
            }
            Ok(HandshakeResponse { error: Some(error) }) => {
                let text = format!("Server returned handshake error: {error}");
                self.fail_attempt(now, Error::Server(text));
                false
            }
            Ok(HandshakeResponse { error: None }) => {
                self.connected(now);
                true
            }
        }
    }

    /// The handshake succeeded.
    fn connected(&mut self, now: Instant) {
        let Some(attempt) = self.attempt.take() else {
            return;
        };
        let negotiated = attempt.negotiated;
        self.connection_id = negotiated.as_ref().map(|n| n.connection_id.clone());
        let kind = self.link.as_ref().map(|l| l.kind);
        let stateful = negotiated
            .as_ref()
            .is_some_and(|n| n.use_stateful_reconnect)
            && kind == Some(TransportKind::WebSockets);
        self.stateful =
            stateful.then(|| MessageBuffer::new(self.config.stateful_reconnect_buffer_size));
        let inherent = self.link.as_ref().is_some_and(|l| l.inherent_keep_alive());
        self.timers.server = (!inherent).then(|| now + self.config.server_timeout);
        self.set_state(State::Connected);
        let connection_id = self.connection_id.clone();
        if self.reconnect.take().is_some() {
            self.events.push_back(Event::Reconnected { connection_id });
        } else {
            self.events.push_back(Event::Started { connection_id });
        }
        if !inherent {
            let _ = self.write(now, &HubMessage::Ping, None);
        }
    }

    /// A start or reconnect attempt failed.
    fn fail_attempt(&mut self, now: Instant, error: Error) {
        self.abandon_attempt();
        match self.state {
            State::Connecting => {
                self.timers.server = None;
                self.set_state(State::Disconnected);
                self.events.push_back(Event::StartFailed(error));
            }
            State::Reconnecting => self.schedule_retry(now, error),
            _ => {}
        }
    }

    /// Forgets the attempt in progress and whatever it had open.
    fn abandon_attempt(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            if let Step::Negotiate(id) = attempt.step {
                if self.requests.remove(&id).is_some() {
                    self.transmits.push_back(Transmit::AbortHttp(id));
                }
            }
        }
        self.token_waiters
            .retain(|w| !matches!(w, TokenFor::Negotiate));
        self.close_link();
    }

    // ------------------------------------------------------------------ reconnecting and closing

    /// The connection (Connected) lost its transport or must close with `error`.
    fn lost(&mut self, now: Instant, error: Option<Error>, recovery: Recovery) {
        if self.attempt.is_some() {
            let error = error.unwrap_or_else(|| Error::Transport(CLOSED_DURING_HANDSHAKE.into()));
            return self.fail_attempt(now, error);
        }
        if self.state != State::Connected {
            if self.state == State::Disconnecting {
                self.finish_stop();
            }
            return;
        }
        self.close_link();
        self.end_connection(error.clone());
        let policy_allowed = recovery != Recovery::None;
        let retry_reason = error
            .clone()
            .unwrap_or_else(|| Error::Transport("The connection was closed.".into()));
        let first_delay = match (&mut self.config.reconnect_policy, policy_allowed) {
            (Some(policy), true) => policy.next_retry_delay(&RetryContext {
                previous_retry_count: 0,
                elapsed: Duration::ZERO,
                retry_reason: retry_reason.to_string(),
            }),
            _ => None,
        };
        match first_delay {
            None => self.complete_close(error),
            Some(delay) => {
                self.reconnect = Some(Reconnect {
                    started: now,
                    attempts: 1,
                });
                self.set_state(State::Reconnecting);
                self.events.push_back(Event::Reconnecting(retry_reason));
                self.timers.retry = Some(now + delay);
            }
        }
    }

    /// A stateful WebSocket dropped: re-open the same URL without any state change, then send
    /// Sequence and replay (`protocol.md` 1.11). Returns false when stateful reconnect is off.
    fn try_reattach(
        &mut self,
        error: Option<Error>,
        target: Option<(String, Vec<(String, String)>)>,
    ) -> bool {
        let (Some(buffer), Some((url, headers))) = (self.stateful.as_mut(), target) else {
            return false;
        };
        if self.state != State::Connected || buffer.is_reattaching() {
            return false;
        }
        buffer.disconnected();
        self.reattach_reason = error;
        self.timers.ping = None;
        self.timers.ack = None;
        let mut link = Link::new(
            TransportKind::WebSockets,
            url.clone(),
            self.config.protocol,
            self.config.max_message_size,
        );
        link.handshake_done = true;
        link.ws_target = Some((url.clone(), headers.clone()));
        self.link = Some(link);
        self.transmits
            .push_back(Transmit::OpenWebSocket { url, headers });
        true
    }

    /// Asks the policy for the next delay after a failed reconnect attempt.
    fn schedule_retry(&mut self, now: Instant, error: Error) {
        let Some(reconnect) = self.reconnect.as_mut() else {
            return self.complete_close(None);
        };
        let context = RetryContext {
            previous_retry_count: reconnect.attempts,
            elapsed: now.saturating_duration_since(reconnect.started),
            retry_reason: error.to_string(),
        };
        reconnect.attempts += 1;
        let delay = self
            .config
            .reconnect_policy
            .as_mut()
            .and_then(|p| p.next_retry_delay(&context));
        match delay {
            Some(delay) => self.timers.retry = Some(now + delay),
            None => {
                self.reconnect = None;
                self.complete_close(None);
            }
        }
    }

    /// Fails what was pending on the connection that just ended.
    fn end_connection(&mut self, error: Option<Error>) {
        let error = error.unwrap_or_else(|| Error::Closed(INVOCATION_CANCELED.into()));
        let mut calls: Vec<(String, Call)> = self.calls.drain().collect();
        calls.sort_by_key(|(id, _)| id.parse::<u64>().unwrap_or(u64::MAX));
        for (id, call) in calls {
            self.events.push_back(match call {
                Call::Invoke => Event::InvocationCompleted {
                    id,
                    result: Err(error.clone()),
                },
                Call::Stream => Event::StreamCompleted {
                    id,
                    result: Err(error.clone()),
                },
            });
        }
        for op in std::mem::take(&mut self.held_writes) {
            self.events.push_back(Event::Written {
                op,
                result: Err(error.clone()),
            });
        }
        self.op_calls.clear();
        self.stateful = None;
        self.reattach_reason = None;
        self.timers.ping = None;
        self.timers.server = None;
        self.timers.ack = None;
    }

    fn complete_close(&mut self, error: Option<Error>) {
        self.connection_id = None;
        self.set_state(State::Disconnected);
        self.events.push_back(Event::Closed(error));
    }

    /// SSE and long polling: wait for queued POSTs (the Close among them), then close.
    fn continue_stop(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return self.finish_stop();
        };
        if link.post_in_flight.is_some() || !link.post_queue.is_empty() {
            return;
        }
        if let Some(id) = link.receive.take() {
            self.requests.remove(&id);
            self.transmits.push_back(Transmit::AbortHttp(id));
        }
        if link.kind == TransportKind::LongPolling {
            let url = link.url.clone();
            let headers = self.http_headers();
            self.link = None;
            let id = self.new_request(Request::Delete);
            self.transmits.push_back(Transmit::Http(HttpRequest {
                id,
                method: HttpMethod::Delete,
                url,
                headers,
                body: Bytes::new(),
                timeout: Some(self.config.http_timeout),
                streaming: false,
            }));
        } else {
            self.finish_stop();
        }
    }

    fn finish_stop(&mut self) {
        if self.state != State::Disconnecting {
            return;
        }
        self.close_link();
        self.end_connection(None);
        self.complete_close(None);
    }

    /// Closes the transport (no Close message) and forgets its requests.
    fn close_link(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        match link.kind {
            TransportKind::WebSockets => self.transmits.push_back(Transmit::CloseWebSocket),
            _ => {
                // A POST in flight is left to finish: its sends may well reach the server,
                // and their outcome is reported when it answers.
                if let Some(id) = link.receive {
                    self.requests.remove(&id);
                    self.transmits.push_back(Transmit::AbortHttp(id));
                }
            }
        }
        for op in link.post_ops {
            self.written(op, Err(Error::Closed(INVOCATION_CANCELED.into())));
        }
    }

    /// Forgets the transport without closing it (it failed by itself).
    fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            for id in [link.receive, link.post_in_flight].into_iter().flatten() {
                self.requests.remove(&id);
                self.transmits.push_back(Transmit::AbortHttp(id));
            }
        }
    }

    // ------------------------------------------------------------------ receiving

    /// Bytes from the transport: the handshake response first, then hub messages.
    fn on_data(&mut self, now: Instant, data: &[u8]) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if self.state == State::Disconnecting {
            return;
        }
        if !link.inherent_keep_alive() || !link.handshake_done {
            self.timers.server = Some(now + self.config.server_timeout);
        }
        let mut data = data;
        let rest;
        if !link.handshake_done {
            link.handshake.push(data);
            let record = match link.handshake.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(e) => return self.fail_attempt(now, Error::Protocol(e)),
            };
            rest = link.handshake.take_remaining();
            link.handshake_done = true;
            if !self.on_handshake_response(now, &record) {
                return;
            }
            data = &rest;
        }
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.framer.push(data);
        loop {
            if self.state != State::Connected {
                return;
            }
            let Some(link) = self.link.as_mut() else {
                return;
            };
            let record = match link.framer.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(e) => return self.lost(now, Some(Error::Protocol(e)), Recovery::Policy),
            };
            match self.config.protocol.decode(&record) {
                Ok(Decoded::Message(message)) => self.dispatch(now, message),
                Ok(Decoded::Unknown { type_id }) => {
                    tracing::debug!(type_id, "skipping a message of unknown type")
                }
                Err(e) => return self.lost(now, Some(Error::Protocol(e)), Recovery::Policy),
            }
        }
    }

    fn dispatch(&mut self, now: Instant, message: HubMessage) {
        if let Some(buffer) = self.stateful.as_mut() {
            let is_sequence = matches!(message, HubMessage::Sequence(_));
            let (inbound, ack) = buffer.receive(message.is_trackable(), is_sequence);
            if ack && self.timers.ack.is_none() {
                self.timers.ack = Some(now + self.config.ack_delay);
            }
            if inbound == Inbound::Drop {
                return;
            }
        }
        match message {
            HubMessage::Invocation(invocation) => self.events.push_back(Event::Invocation {
                target: invocation.target,
                arguments: invocation.arguments,
                invocation_id: invocation.invocation_id,
            }),
            HubMessage::StreamItem(item) => match self.calls.get(&item.invocation_id) {
                Some(Call::Stream) => self.events.push_back(Event::StreamItem {
                    id: item.invocation_id,
                    item: item.item,
                }),
                Some(Call::Invoke) => {
                    self.calls.remove(&item.invocation_id);
                    let text = "Unexpected message type: 2".to_owned();
                    self.events.push_back(Event::InvocationCompleted {
                        id: item.invocation_id,
                        result: Err(Error::Protocol(ProtocolError::Violation(text))),
                    });
                }
                None => tracing::debug!(id = %item.invocation_id, "StreamItem for no call"),
            },
            HubMessage::Completion(completion) => {
                let id = completion.invocation_id;
                match self.calls.remove(&id) {
                    Some(Call::Invoke) => {
                        let result = match completion.result {
                            CompletionResult::Void => Ok(None),
                            CompletionResult::Value(value) => Ok(Some(value)),
                            CompletionResult::Error(text) => Err(Error::Server(text)),
                        };
                        self.events
                            .push_back(Event::InvocationCompleted { id, result });
                    }
                    Some(Call::Stream) => {
                        let result = match completion.result {
                            CompletionResult::Error(text) => Err(Error::Server(text)),
                            _ => Ok(()),
                        };
                        self.events.push_back(Event::StreamCompleted { id, result });
                    }
                    None => tracing::debug!(%id, "Completion for no call"),
                }
            }
            HubMessage::StreamInvocation(_) | HubMessage::CancelInvocation(_) => {
                tracing::debug!("ignoring a message type the server should not send")
            }
            HubMessage::Ping => {}
            HubMessage::Close(close) => {
                let error = close
                    .error
                    .map(|e| Error::Server(format!("Server returned an error on close: {e}")));
                let recovery = if close.allow_reconnect {
                    Recovery::Policy
                } else {
                    Recovery::None
                };
                self.lost(now, error, recovery);
            }
            HubMessage::Ack(id) => {
                if let Some(buffer) = self.stateful.as_mut() {
                    buffer.ack(id);
                    if !buffer.is_full() {
                        for op in std::mem::take(&mut self.held_writes) {
                            self.written(op, Ok(()));
                        }
                    }
                }
            }
            HubMessage::Sequence(id) => {
                if let Some(buffer) = self.stateful.as_mut() {
                    if let Err(text) = buffer.sequence(id) {
                        let error = Error::Protocol(ProtocolError::Violation(text.into()));
                        self.lost(now, Some(error), Recovery::Policy);
                    }
                }
            }
        }
    }

    fn on_sse(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.receive != Some(id) {
            return;
        }
        let opened = link.opened;
        match event {
            HttpEvent::Head { status: 200 } => {
                if !opened {
                    link.opened = true;
                    self.transport_opened(now);
                }
            }
            HttpEvent::Head { status } | HttpEvent::Response { status, .. } => {
                self.requests.remove(&id);
                link.receive = None;
                let text = format!("EventSource failed to connect: Status code '{status}'");
                if opened {
                    self.lost(now, Some(Error::Transport(text)), Recovery::Policy);
                } else {
                    self.transport_failed(now, text);
                }
            }
            HttpEvent::Chunk(bytes) => {
                link.sse.push(&bytes);
                loop {
                    let Some(link) = self.link.as_mut() else {
                        return;
                    };
                    match link.sse.next_event() {
                        Ok(Some(event)) => self.on_data(now, &event.data),
                        Ok(None) => return,
                        Err(e) => {
                            let error = Error::Transport(e.to_string());
                            return self.lost(now, Some(error), Recovery::Policy);
                        }
                    }
                }
            }
            HttpEvent::End { error } => self.sse_ended(now, opened, error),
            HttpEvent::Failed { message, .. } => self.sse_ended(now, opened, Some(message)),
        }
    }

    fn sse_ended(&mut self, now: Instant, opened: bool, error: Option<String>) {
        if let Some(link) = self.link.as_mut() {
            link.receive = None;
        }
        if !opened {
            let text = error.unwrap_or_else(|| "EventSource failed to connect.".into());
            return self.transport_failed(now, text);
        }
        if self.attempt.is_some() {
            let error = Error::Transport(error.unwrap_or_else(|| CLOSED_DURING_HANDSHAKE.into()));
            return self.fail_attempt(now, error);
        }
        // An EventSource error after open is a close (item 40).
        self.lost(now, error.map(Error::Transport), Recovery::Policy);
    }

    fn send_poll(&mut self) {
        let headers = self.http_headers();
        let timeout = self.config.long_poll_timeout;
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.closing {
            return;
        }
        let url = link.next_poll_url();
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.requests.insert(id, Request::Poll);
        link.receive = Some(id);
        self.transmits.push_back(Transmit::Http(HttpRequest {
            id,
            method: HttpMethod::Get,
            url,
            headers,
            body: Bytes::new(),
            timeout: Some(timeout),
            streaming: false,
        }));
    }

    fn on_poll(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.receive != Some(id) {
            return;
        }
        link.receive = None;
        let opened = link.opened;
        let after_refresh = std::mem::take(&mut link.poll_after_refresh);
        match event {
            HttpEvent::Response { status: 200, body } => {
                if !opened {
                    link.opened = true;
                    self.transport_opened(now);
                } else if !body.is_empty() {
                    self.on_data(now, &body);
                }
                if self.link.is_some() && self.state != State::Disconnected {
                    self.send_poll();
                }
            }
            HttpEvent::Response { status: 204, .. } if opened => {
                // The server closed the connection (or a newer poll superseded this one).
                self.lost(now, None, Recovery::Policy);
            }
            HttpEvent::Response { status: 401, .. }
                if opened && self.config.has_access_token_factory && !after_refresh =>
            {
                self.fetch_token(TokenFor::RetryPoll);
            }
            HttpEvent::Response { status, .. } => {
                let text = format!("Long poll failed: Status code '{status}'");
                if opened {
                    self.lost(now, Some(Error::Transport(text)), Recovery::Policy);
                } else {
                    self.transport_failed(now, text);
                }
            }
            HttpEvent::Failed {
                timed_out: true, ..
            } if opened => self.send_poll(),
            HttpEvent::Failed { message, .. } => {
                if opened {
                    self.lost(now, Some(Error::Transport(message)), Recovery::Policy);
                } else {
                    self.transport_failed(now, message);
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ sending

    /// Encodes and writes one hub message; `op` is reported in [`Event::Written`].
    fn write(&mut self, now: Instant, message: &HubMessage, op: Option<u64>) -> Result<(), Error> {
        if self.link.as_ref().is_none_or(|l| !l.handshake_done) {
            if let Some(op) = op {
                self.written(op, Err(Error::Usage(NOT_CONNECTED.into())));
            }
            return Err(Error::Usage(NOT_CONNECTED.into()));
        }
        let mut bytes = Vec::new();
        self.config.protocol.encode(message, &mut bytes);
        let bytes = Bytes::from(bytes);
        let inherent = self.link.as_ref().is_some_and(|l| l.inherent_keep_alive());
        if !inherent && self.state == State::Connected {
            self.timers.ping = Some(now + self.config.keep_alive_interval);
        }
        let format = self.config.protocol.transfer_format();
        if let (Some(buffer), true) = (self.stateful.as_mut(), message.is_trackable()) {
            buffer.push_sent(bytes.clone());
            let full = buffer.is_full();
            let reattaching = buffer.is_reattaching();
            if !reattaching {
                self.write_raw(bytes, format, None);
            }
            if let Some(op) = op {
                if full {
                    self.held_writes.push_back(op);
                } else {
                    self.written(op, Ok(()));
                }
            }
            return Ok(());
        }
        if self.is_reattaching() {
            // Pings, Acks and Closes are not buffered; they are meaningless on a dead socket.
            if let Some(op) = op {
                self.written(op, Ok(()));
            }
            return Ok(());
        }
        self.write_raw(bytes, format, op);
        Ok(())
    }

    /// Hands bytes to the transport: a WebSocket message, or the POST queue.
    fn write_raw(&mut self, bytes: Bytes, format: TransferFormat, op: Option<u64>) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        match link.kind {
            TransportKind::WebSockets => {
                self.transmits.push_back(Transmit::WebSocketSend {
                    data: bytes,
                    format,
                });
                if let Some(op) = op {
                    self.written(op, Ok(()));
                }
            }
            _ => {
                link.post_queue.extend_from_slice(&bytes);
                link.post_ops.extend(op);
                self.pump_posts();
            }
        }
    }

    /// Starts the next POST when none is in flight, with every queued byte (item 49).
    fn pump_posts(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.post_in_flight.is_some() || link.post_queue.is_empty() {
            return;
        }
        let body = Bytes::from(std::mem::take(&mut link.post_queue));
        let ops = std::mem::take(&mut link.post_ops);
        self.send_post(ops, body, false);
    }

    fn send_post(&mut self, ops: Vec<u64>, body: Bytes, retried: bool) {
        let mut headers = self.http_headers();
        let content_type = match self.config.protocol.transfer_format() {
            TransferFormat::Text => "text/plain;charset=UTF-8",
            TransferFormat::Binary => "application/octet-stream",
        };
        headers.push(("Content-Type".into(), content_type.into()));
        let timeout = self.config.http_timeout;
        let Some(link) = self.link.as_mut() else {
            for op in ops {
                self.written(op, Err(Error::Closed(INVOCATION_CANCELED.into())));
            }
            return;
        };
        let url = link.url.clone();
        self.next_request += 1;
        let id = RequestId(self.next_request);
        link.post_in_flight = Some(id);
        self.requests.insert(
            id,
            Request::Post {
                ops,
                body: body.clone(),
                retried,
            },
        );
        self.transmits.push_back(Transmit::Http(HttpRequest {
            id,
            method: HttpMethod::Post,
            url,
            headers,
            body,
            timeout: Some(timeout),
            streaming: false,
        }));
    }

    fn on_post(
        &mut self,
        now: Instant,
        id: RequestId,
        event: HttpEvent,
        ops: Vec<u64>,
        body: Bytes,
        retried: bool,
    ) {
        let current = self
            .link
            .as_ref()
            .is_some_and(|l| l.post_in_flight == Some(id));
        if !current {
            // A POST of a transport that has closed since: only its sends' outcome matters.
            let result = match event {
                HttpEvent::Response { status: 200, .. } => Ok(()),
                HttpEvent::Response { status, .. } => Err(Error::Transport(format!(
                    "Send failed: Status code '{status}'"
                ))),
                HttpEvent::Failed { message, .. } => Err(Error::Transport(message)),
                _ => return,
            };
            for op in ops {
                self.written(op, result.clone());
            }
            return;
        }
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.post_in_flight = None;
        match event {
            HttpEvent::Response { status: 200, .. } => {
                for op in ops {
                    self.written(op, Ok(()));
                }
            }
            HttpEvent::Response { status: 409, .. } => {
                // Another send was in flight; this one is lost but the connection stays.
                let error = Error::Transport("Send failed: Status code '409'".into());
                for op in ops {
                    self.written(op, Err(error.clone()));
                }
            }
            HttpEvent::Response { status: 401, .. }
                if !retried && self.config.has_access_token_factory =>
            {
                link.post_in_flight = Some(id);
                self.fetch_token(TokenFor::RetryPost { ops, body });
                return;
            }
            HttpEvent::Response { status, .. } => {
                let error = Error::Transport(format!("Send failed: Status code '{status}'"));
                return self.post_failed(now, ops, error);
            }
            HttpEvent::Failed { message, .. } => {
                return self.post_failed(now, ops, Error::Transport(message));
            }
            _ => return,
        }
        self.pump_posts();
        if self.link.as_ref().is_some_and(|l| l.closing) {
            self.continue_stop();
        }
    }

    fn post_failed(&mut self, now: Instant, ops: Vec<u64>, error: Error) {
        if let Some(link) = self.link.as_mut() {
            link.post_in_flight = None;
        }
        for op in ops {
            self.written(op, Err(error.clone()));
        }
        if self.state == State::Disconnecting {
            // The transport is failing anyway: drop what is queued and finish stopping.
            let queued = self.link.as_mut().map(|link| {
                link.post_queue.clear();
                std::mem::take(&mut link.post_ops)
            });
            for op in queued.unwrap_or_default() {
                self.written(op, Err(error.clone()));
            }
            return self.continue_stop();
        }
        if self.attempt.is_some() {
            return self.fail_attempt(now, error);
        }
        self.lost(now, Some(error), Recovery::Policy);
    }

    /// After a stateful re-attach: Sequence, then the unacknowledged messages in order.
    fn resend(&mut self, now: Instant) {
        let Some(buffer) = self.stateful.as_mut() else {
            return;
        };
        let (next, replay) = buffer.resend();
        self.reattach_reason = None;
        let format = self.config.protocol.transfer_format();
        let mut bytes = Vec::new();
        self.config
            .protocol
            .encode(&HubMessage::Sequence(next), &mut bytes);
        self.write_raw(Bytes::from(bytes), format, None);
        for message in replay {
            self.write_raw(message, format, None);
        }
        self.timers.ping = Some(now + self.config.keep_alive_interval);
        self.timers.server = Some(now + self.config.server_timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    fn drain(conn: &mut Connection) -> (Vec<Transmit>, Vec<Event>) {
        let mut t = Vec::new();
        while let Some(x) = conn.poll_transmit() {
            t.push(x);
        }
        let mut e = Vec::new();
        while let Some(x) = conn.poll_event() {
            e.push(x);
        }
        (t, e)
    }

    const NEGOTIATE: &[u8] = br#"{"connectionId":"c1","connectionToken":"t1","negotiateVersion":1,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#;

    #[test]
    fn starts_over_websockets_and_completes_an_invocation() {
        let t0 = Instant::now();
        let mut conn = Connection::new(Config::new("http://h/hubs/test"));
        conn.start(t0).unwrap();
        let (t, _) = drain(&mut conn);
        let Transmit::Http(req) = &t[0] else {
            panic!("{t:?}")
        };
        assert_eq!(req.url, "http://h/hubs/test/negotiate?negotiateVersion=1");
        conn.handle_http(
            t0,
            req.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::from_static(NEGOTIATE),
            },
        );
        let (t, _) = drain(&mut conn);
        assert_eq!(
            t,
            vec![Transmit::OpenWebSocket {
                url: "ws://h/hubs/test?id=t1".into(),
                headers: vec![]
            }]
        );
        conn.handle_websocket(t0, WebSocketEvent::Opened);
        let (t, _) = drain(&mut conn);
        assert!(
            matches!(&t[0], Transmit::WebSocketSend { data, .. } if &data[..] == b"{\"protocol\":\"json\",\"version\":1}\x1e")
        );
        conn.handle_websocket(t0, WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
        let (t, e) = drain(&mut conn);
        assert_eq!(conn.state(), State::Connected);
        assert!(
            e.contains(&Event::Started {
                connection_id: Some("c1".into())
            }),
            "{e:?}"
        );
        assert!(
            matches!(&t[0], Transmit::WebSocketSend { data, .. } if &data[..] == b"{\"type\":6}\x1e")
        );
        let arg = RawValue::encode(Protocol::Json, &1).unwrap();
        let (id, _) = conn.invoke(t0, "Echo", vec![arg], vec![]).unwrap();
        assert_eq!(id, "0");
        conn.handle_websocket(
            t0,
            WebSocketEvent::Message(Bytes::from_static(
                b"{\"type\":3,\"invocationId\":\"0\",\"result\":1}\x1e",
            )),
        );
        let (_, e) = drain(&mut conn);
        assert!(
            matches!(
                &e[..],
                [
                    Event::Written { .. },
                    Event::InvocationCompleted {
                        result: Ok(Some(_)),
                        ..
                    }
                ]
            ),
            "{e:?}"
        );
        conn.stop(t0);
        let (t, e) = drain(&mut conn);
        assert_eq!(conn.state(), State::Disconnected);
        assert!(t.contains(&Transmit::CloseWebSocket));
        assert_eq!(e.last(), Some(&Event::Closed(None)));
    }

    fn connect_ws(config: Config, negotiate: &[u8], t0: Instant) -> Connection {
        let mut conn = Connection::new(config);
        conn.start(t0).unwrap();
        let (t, _) = drain(&mut conn);
        let Transmit::Http(req) = &t[0] else {
            panic!("{t:?}")
        };
        let body = Bytes::copy_from_slice(negotiate);
        conn.handle_http(t0, req.id, HttpEvent::Response { status: 200, body });
        conn.handle_websocket(t0, WebSocketEvent::Opened);
        conn.handle_websocket(t0, WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
        drain(&mut conn);
        assert_eq!(conn.state(), State::Connected);
        conn
    }

    #[test]
    fn a_stateful_websocket_reattaches_and_replays_without_state_events() {
        let t0 = Instant::now();
        let mut config = Config::new("http://h/hubs/test");
        config.stateful_reconnect = true;
        let negotiate = br#"{"connectionId":"c1","connectionToken":"t1","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#;
        let mut conn = connect_ws(config, negotiate, t0);
        conn.send(t0, "A", vec![]).unwrap();
        drain(&mut conn);
        conn.handle_websocket(
            t0,
            WebSocketEvent::Closed {
                code: Some(1006),
                reason: String::new(),
            },
        );
        let (t, e) = drain(&mut conn);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            t,
            vec![Transmit::OpenWebSocket {
                url: "ws://h/hubs/test?id=t1".into(),
                headers: vec![]
            }]
        );
        conn.send(t0, "B", vec![]).unwrap();
        conn.handle_websocket(t0, WebSocketEvent::Opened);
        let (t, _) = drain(&mut conn);
        let sent: Vec<&[u8]> = t
            .iter()
            .map(|t| match t {
                Transmit::WebSocketSend { data, .. } => &data[..],
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            sent,
            vec![
                &b"{\"type\":9,\"sequenceId\":1}\x1e"[..],
                &b"{\"type\":1,\"target\":\"A\",\"arguments\":[]}\x1e"[..],
                &b"{\"type\":1,\"target\":\"B\",\"arguments\":[]}\x1e"[..],
            ]
        );
        assert_eq!(conn.state(), State::Connected);
    }

    #[test]
    fn long_polling_opens_with_the_first_poll_and_posts_the_handshake() {
        let t0 = Instant::now();
        let mut config = Config::new("http://h/hubs/test");
        config.transports = crate::TransportSet::only(TransportKind::LongPolling);
        let mut conn = Connection::new(config);
        conn.start(t0).unwrap();
        let (t, _) = drain(&mut conn);
        let Transmit::Http(req) = &t[0] else { panic!() };
        let body = Bytes::from_static(br#"{"connectionId":"c1","availableTransports":[{"transport":"LongPolling","transferFormats":["Text"]}]}"#);
        conn.handle_http(t0, req.id, HttpEvent::Response { status: 200, body });
        let (t, _) = drain(&mut conn);
        let Transmit::Http(poll) = &t[0] else {
            panic!()
        };
        assert_eq!(poll.url, "http://h/hubs/test?id=c1&_=1");
        conn.handle_http(
            t0,
            poll.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::new(),
            },
        );
        let (t, _) = drain(&mut conn);
        let [Transmit::Http(post), Transmit::Http(poll2)] = &t[..] else {
            panic!("{t:?}")
        };
        assert_eq!(post.method, HttpMethod::Post);
        assert_eq!(&post.body[..], b"{\"protocol\":\"json\",\"version\":1}\x1e");
        conn.handle_http(
            t0,
            post.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::new(),
            },
        );
        let body = Bytes::from_static(
            b"{}\x1e{\"type\":1,\"target\":\"Welcome\",\"arguments\":[\"c1\"]}\x1e",
        );
        conn.handle_http(t0, poll2.id, HttpEvent::Response { status: 200, body });
        let (t, e) = drain(&mut conn);
        assert!(
            matches!(
                &e[..],
                [
                    Event::StateChanged { .. },
                    Event::Started { .. },
                    Event::Invocation { .. }
                ]
            ),
            "{e:?}"
        );
        assert!(
            matches!(&t[..], [Transmit::Http(p)] if p.method == HttpMethod::Get),
            "no ping over long polling: {t:?}"
        );
        assert_eq!(conn.poll_timeout(), None);
    }

    #[test]
    fn stopping_long_polling_with_a_post_in_flight_sends_close_then_deletes() {
        let t0 = Instant::now();
        let mut config = Config::new("http://h/hubs/test");
        config.transports = crate::TransportSet::only(TransportKind::LongPolling);
        let mut conn = Connection::new(config);
        conn.start(t0).unwrap();
        let (t, _) = drain(&mut conn);
        let Transmit::Http(req) = &t[0] else { panic!() };
        let body = Bytes::from_static(br#"{"connectionId":"c1","availableTransports":[{"transport":"LongPolling","transferFormats":["Text"]}]}"#);
        conn.handle_http(t0, req.id, HttpEvent::Response { status: 200, body });
        let (t, _) = drain(&mut conn);
        let Transmit::Http(poll) = &t[0] else {
            panic!()
        };
        conn.handle_http(
            t0,
            poll.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::new(),
            },
        );
        let (t, _) = drain(&mut conn);
        let [Transmit::Http(handshake), Transmit::Http(poll)] = &t[..] else {
            panic!("{t:?}")
        };
        conn.handle_http(
            t0,
            handshake.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::new(),
            },
        );
        conn.handle_http(
            t0,
            poll.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::from_static(b"{}\x1e"),
            },
        );
        let (t, _) = drain(&mut conn);
        let [Transmit::Http(_poll)] = &t[..] else {
            panic!("{t:?}")
        };
        conn.send(t0, "A", vec![]).unwrap();
        let (t, _) = drain(&mut conn);
        let [Transmit::Http(post)] = &t[..] else {
            panic!("{t:?}")
        };
        conn.stop(t0);
        assert_eq!(conn.state(), State::Disconnecting);
        assert!(
            drain(&mut conn).0.is_empty(),
            "the Close waits for the POST in flight"
        );
        conn.handle_http(
            t0,
            post.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::new(),
            },
        );
        let (t, _) = drain(&mut conn);
        let [Transmit::Http(close)] = &t[..] else {
            panic!("{t:?}")
        };
        assert_eq!(&close.body[..], b"{\"type\":7}\x1e");
        conn.handle_http(
            t0,
            close.id,
            HttpEvent::Response {
                status: 200,
                body: Bytes::new(),
            },
        );
        let (t, _) = drain(&mut conn);
        let [Transmit::AbortHttp(_), Transmit::Http(delete)] = &t[..] else {
            panic!("{t:?}")
        };
        assert_eq!(delete.method, HttpMethod::Delete);
        conn.handle_http(
            t0,
            delete.id,
            HttpEvent::Response {
                status: 202,
                body: Bytes::new(),
            },
        );
        let (_, e) = drain(&mut conn);
        assert_eq!(e.last(), Some(&Event::Closed(None)));
        assert_eq!(conn.state(), State::Disconnected);
    }
}
