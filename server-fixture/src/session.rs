//! One connection's hub-protocol session: the handshake, decoding client messages, dispatching
//! hub methods, encoding everything sent to the client in order, keep-alive pings, the client
//! timeout, and the stateful-reconnect buffer across WebSocket re-attaches.
//!
//! A session is one task. Transports only move bytes in ([`Inbound`]) and out ([`Outbound`]);
//! hub code reaches the session through the connection's bounded command queue.

use crate::context::{HubContext, StreamSender, UploadStream};
use crate::hub::{Hub, HubError, Method};
use crate::metrics::{DisconnectReason, ErrorKind};
use crate::queue;
use crate::registry::{Command, Conn, Inbound, Outbound, SessionSide, Shared};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use talkback_core::protocol::{
    Close, Completion, CompletionResult, Decoded, Framer, HandshakeRequest, HubMessage, Invocation,
    Protocol, RawValue, TextFramer, TransferFormat,
};
use talkback_core::stateful::{Inbound as Seq, MessageBuffer};
use talkback_core::transport::TransportKind;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// Delay of the coalesced Ack to the client under stateful reconnect.
const ACK_DELAY: Duration = Duration::from_millis(200);
/// Items an upload stream buffers before reading from the client waits (ASP.NET's
/// `StreamBufferCapacity`).
const UPLOAD_BUFFER: usize = 10;
/// Hub calls queued per connection for the dispatcher ([`run_dispatcher`]). A call that finds
/// the queue full closes the connection with an error: a client flooding calls behind a slow
/// non-blocking one cannot grow the server's memory.
pub(crate) const MAX_QUEUED_CALLS: usize = 1024;
/// Stream ids one invocation may announce; more are refused before the method is looked up
/// and before any upload channel exists.
pub(crate) const MAX_STREAM_IDS_PER_INVOCATION: usize = 16;
/// Upload streams open at once per connection; an invocation that would exceed it is refused.
pub(crate) const MAX_OPEN_UPLOADS: usize = 256;
/// The Close text for an unexpected server-side end.
const CLOSED_WITH_ERROR: &str = "Connection closed with an error.";
/// The Close text for the client timeout with detailed errors: ASP.NET Core's
/// `ErrorMessageHelper.BuildErrorMessage` appends the exception's type and message to
/// [`CLOSED_WITH_ERROR`], and the client timeout is an `OperationCanceledException` with this
/// message (`HubConnectionContext`, dotnet/aspnetcore `src/SignalR/server/Core`).
const CLIENT_TIMEOUT_DETAILED: &str = "Connection closed with an error. OperationCanceledException: Client hasn't sent a message/ping within the configured ClientTimeoutInterval.";

/// The longest a stateful connection's on-connected hook waits for the client's first message
/// (see `Session::connected`).
const CONNECT_HOOK_WAIT: Duration = Duration::from_secs(1);

/// A hub call waiting for the per-connection dispatcher ([`run_dispatcher`]).
struct Job {
    ctx: HubContext,
    method: Method,
    target: String,
    arguments: Vec<RawValue>,
    invocation_id: Option<String>,
    /// The invocation's span (connection, hub, transport, method).
    span: tracing::Span,
}

/// Starts the session of `conn` unless it runs already.
pub(crate) fn ensure_started(shared: &Arc<Shared>, conn: &Arc<Conn>) {
    // A connection is created for a registered hub, and the hubs never change: not found
    // cannot happen, but it must not panic either.
    let Some(hub) = shared.hub(&conn.hub) else {
        tracing::error!(connection = %conn.id, hub = %conn.hub, "no such hub: connection aborted");
        conn.abort();
        shared.remove(conn);
        return;
    };
    let side = conn.pipe.session_side.lock().take();
    if let Some(side) = side {
        // Debug level: disabled spans cost nothing, so idle connections stay small unless a
        // subscriber (an OpenTelemetry exporter, `RUST_LOG=talkback_fixture=debug`) asks.
        let span = tracing::debug_span!(
            "connection",
            connection = %conn.id,
            hub = %conn.hub,
            transport = conn.transport.get().map_or("", |t| t.name()),
        );
        let session = Session::new(shared.clone(), hub, conn.clone());
        tokio::spawn(session.run(side).instrument(span));
    }
}

struct Session {
    shared: Arc<Shared>,
    /// The connection's hub (its methods and connection hooks).
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    handshake_done: bool,
    handshake: TextFramer,
    framer: Option<Framer>,
    protocol: Protocol,
    stateful: Option<MessageBuffer>,
    detached_since: Option<Instant>,
    ack_due: Option<Instant>,
    started: Instant,
    last_sent: Instant,
    last_received: Instant,
    uploads: HashMap<String, mpsc::Sender<Result<RawValue, String>>>,
    finished_uploads: HashSet<String>,
    streams: Arc<Mutex<HashMap<String, AbortHandle>>>,
    /// The hub calls waiting for the dispatcher ([`run_dispatcher`]).
    dispatcher: Dispatcher,
    /// The connection outlived its liveness deadline while the session waited on a full queue
    /// (see [`Session::guarded`]): the session ends without sending anything more.
    stalled: bool,
    /// On a stateful connection, the hub's on-connected hook waits for the client's first
    /// message after the handshake (or this deadline): see [`Session::connected`].
    connect_hook_due: Option<Instant>,
    /// The transport and protocol this connection is counted under in the metrics' gauge
    /// (from the handshake on).
    counted: Option<(TransportKind, Protocol)>,
    /// Why the session ended, where the loop knows it (see [`Session::finish`]).
    end_reason: Option<DisconnectReason>,
}

/// Why a session ends.
enum End {
    /// Send nothing more (the transport is gone or the client closed).
    Quiet,
    /// Send a Close message first.
    Close(Option<String>, bool),
}

impl Session {
    fn new(shared: Arc<Shared>, hub: Arc<Hub>, conn: Arc<Conn>) -> Self {
        let max = shared.config.max_receive_message_size;
        let now = Instant::now();
        Session {
            shared,
            hub,
            conn,
            handshake_done: false,
            handshake: TextFramer::new(max),
            framer: None,
            protocol: Protocol::Json,
            stateful: None,
            detached_since: None,
            ack_due: None,
            started: now,
            last_sent: now,
            last_received: now,
            uploads: HashMap::new(),
            finished_uploads: HashSet::new(),
            streams: Arc::new(Mutex::new(HashMap::new())),
            dispatcher: Dispatcher::default(),
            stalled: false,
            connect_hook_due: None,
            counted: None,
            end_reason: None,
        }
    }

    fn transport(&self) -> Option<TransportKind> {
        self.conn.transport.get().copied()
    }

    async fn run(mut self, mut side: SessionSide) {
        let end = loop {
            if self.conn.is_aborted() || self.stalled {
                break End::Quiet;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                _ = self.shared.shutdown.notified() => {
                    self.end_reason = Some(DisconnectReason::Shutdown);
                    break End::Close(None, true);
                }
                inbound = side.inbound.recv() => match inbound {
                    Some(Inbound::Data(bytes)) => {
                        self.shared.metrics.received_bytes(bytes.len());
                        // Boxed: the session's future stays small while it idles, and the
                        // decoding and dispatch state exists only while a message is handled.
                        if let Some(end) = Box::pin(self.on_data(&bytes, &side.outbound)).await {
                            if self.handshake_done {
                                self.end_reason = Some(match end {
                                    End::Quiet => DisconnectReason::ClientClosed,
                                    End::Close(..) => {
                                        self.shared.metrics.error(ErrorKind::Protocol);
                                        DisconnectReason::ProtocolError
                                    }
                                });
                            }
                            break end;
                        }
                    }
                    Some(Inbound::Closed) | None => {
                        if self.stateful.is_some() && self.detached_since.is_none() {
                            tracing::debug!(connection = %self.conn.id, "transport lost; waiting for a re-attach");
                            self.detached_since = Some(Instant::now());
                            if let Some(buffer) = self.stateful.as_mut() {
                                buffer.disconnected();
                            }
                        } else if self.detached_since.is_none() {
                            break End::Quiet;
                        }
                    }
                    Some(Inbound::Reattached) => {
                        if self.detached_since.take().is_some() {
                            self.resend(&side.outbound).await;
                        }
                    }
                },
                command = side.commands.recv() => match command {
                    // Before the handshake response the connection is not yet part of the hub
                    // (ASP.NET Core adds it to the lifetime manager after the handshake): a send
                    // to everyone must not reach the client ahead of that response.
                    Some(Command::Message(_)) if !self.handshake_done => {}
                    Some(Command::Message(message)) => Box::pin(self.write(&message, &side.outbound)).await,
                    Some(Command::Close { error, allow_reconnect }) => {
                        self.end_reason = Some(DisconnectReason::ServerClosed);
                        break End::Close(error, allow_reconnect);
                    }
                    Some(Command::Abort) | None => {
                        self.end_reason = Some(DisconnectReason::Aborted);
                        break End::Quiet;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if let Some(end) = Box::pin(self.on_timer(&side.outbound)).await {
                        break end;
                    }
                }
            }
        };
        if let End::Close(error, allow_reconnect) = end {
            if self.handshake_done && self.detached_since.is_none() {
                let close = HubMessage::Close(Close {
                    error,
                    allow_reconnect,
                });
                self.write(&close, &side.outbound).await;
            }
        }
        if self.stalled {
            tracing::debug!(connection = %self.conn.id, "outbound queue full past the liveness deadline: closing");
        }
        if side.outbound.try_send(Outbound::End).is_err() {
            // The queue is full (a client that does not read): the transport would never see
            // the end, so it is dropped.
            self.conn.kill_transport();
        }
        self.finish().await;
    }

    fn next_deadline(&self) -> Instant {
        let config = &self.shared.config;
        let far = Instant::now() + Duration::from_secs(3600);
        let mut deadlines = vec![far];
        if !self.handshake_done {
            deadlines.push(self.started + config.handshake_timeout);
        } else if let Some(since) = self.detached_since {
            deadlines.push(since + config.reconnect_window);
        } else {
            deadlines.push(self.last_sent + config.keep_alive_interval);
            if self.transport() != Some(TransportKind::LongPolling) {
                deadlines.push(self.last_received + config.client_timeout);
            } else {
                deadlines.push(Instant::now() + Duration::from_secs(1));
            }
            deadlines.extend(self.ack_due);
            deadlines.extend(self.connect_hook_due);
        }
        deadlines.into_iter().min().unwrap_or(far)
    }

    async fn on_timer(&mut self, out: &queue::Sender<Outbound>) -> Option<End> {
        let config = self.shared.config.clone();
        let now = Instant::now();
        if self.connect_hook_due.is_some_and(|due| now >= due) {
            self.run_connect_hook();
        }
        if !self.handshake_done {
            if now >= self.started + config.handshake_timeout {
                tracing::debug!(connection = %self.conn.id, "no handshake in time");
                self.shared.metrics.error(ErrorKind::Handshake);
                self.write_raw(handshake_error("Handshake was canceled."), out)
                    .await;
                return Some(End::Quiet);
            }
            return None;
        }
        if let Some(since) = self.detached_since {
            if now >= since + config.reconnect_window {
                tracing::debug!(connection = %self.conn.id, "no re-attach within the window");
                self.end_reason = Some(DisconnectReason::ReconnectWindowExpired);
                return Some(End::Quiet);
            }
            return None;
        }
        if self.transport() == Some(TransportKind::LongPolling) {
            let idle = *self.conn.poll_idle_since.lock();
            if idle.is_some_and(|t| t.elapsed() >= config.disconnect_timeout) {
                self.end_reason = Some(DisconnectReason::ClientTimeout);
                return Some(End::Quiet);
            }
        } else if now >= self.last_received + config.client_timeout {
            tracing::debug!(connection = %self.conn.id, "client timeout");
            self.end_reason = Some(DisconnectReason::ClientTimeout);
            let text = if config.detailed_errors {
                CLIENT_TIMEOUT_DETAILED
            } else {
                CLOSED_WITH_ERROR
            };
            return Some(End::Close(Some(text.into()), true));
        }
        if self.ack_due.is_some_and(|t| now >= t) {
            self.ack_due = None;
            if let Some(id) = self.stateful.as_ref().map(|b| b.ack_id()) {
                self.write(&HubMessage::Ack(id), out).await;
            }
        }
        if now >= self.last_sent + config.keep_alive_interval {
            if self.shared.faults.pings_stopped() || self.conn.faults.pings_stopped() {
                // Pretend we sent one, so the timer does not spin.
                self.last_sent = now;
            } else {
                self.write(&HubMessage::Ping, out).await;
            }
        }
        None
    }

    /// When the connection stops being alive if nothing changes: the handshake timeout before
    /// the handshake; then the client timeout (nothing received), or for long polling, no poll
    /// waiting for [`FixtureConfig::disconnect_timeout`](crate::Config::disconnect_timeout).
    fn liveness_deadline(&self) -> Instant {
        let config = &self.shared.config;
        if !self.handshake_done {
            return self.started + config.handshake_timeout;
        }
        if self.detached_since.is_some() {
            return Instant::now() + Duration::from_secs(3600);
        }
        if self.transport() == Some(TransportKind::LongPolling) {
            let idle = *self.conn.poll_idle_since.lock();
            return match idle {
                Some(since) => Instant::from_std(since) + config.disconnect_timeout,
                None => Instant::now() + config.disconnect_timeout,
            };
        }
        self.last_received + config.client_timeout
    }

    /// Awaits `f` (room in a full queue), but gives up when the connection is aborted or its
    /// [liveness deadline](Self::liveness_deadline) passes first; the latter marks the
    /// session `stalled`, which ends it. The session never waits on a queue without its timers.
    async fn guarded<F: std::future::Future>(&mut self, f: F) -> Option<F::Output> {
        tokio::pin!(f);
        let conn = self.conn.clone();
        loop {
            let aborted = conn.abort_signal.notified();
            tokio::pin!(aborted);
            aborted.as_mut().enable();
            if conn.is_aborted() || self.stalled {
                return None;
            }
            let deadline = self.liveness_deadline();
            tokio::select! {
                biased;
                output = &mut f => return Some(output),
                _ = &mut aborted => return None,
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= self.liveness_deadline() {
                        self.stalled = true;
                        return None;
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ receiving

    async fn on_data(&mut self, bytes: &[u8], out: &queue::Sender<Outbound>) -> Option<End> {
        self.last_received = Instant::now();
        let mut data = bytes;
        let rest;
        if !self.handshake_done {
            self.handshake.push(data);
            let record = match self.handshake.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return None,
                Err(_) => {
                    self.shared.metrics.error(ErrorKind::Handshake);
                    self.write_raw(handshake_error("Handshake was canceled."), out)
                        .await;
                    return Some(End::Quiet);
                }
            };
            rest = self.handshake.take_remaining();
            let version = match self.accept_handshake(&record) {
                Ok(version) => version,
                Err(text) => {
                    tracing::debug!(connection = %self.conn.id, %text, "handshake refused");
                    self.shared.metrics.error(ErrorKind::Handshake);
                    self.write_raw(handshake_error(&text), out).await;
                    return Some(End::Quiet);
                }
            };
            let mut response = Vec::new();
            crate::wire::encode_handshake_response(None, &mut response);
            self.write_raw(Bytes::from(response), out).await;
            self.connected(version);
            data = &rest;
        }
        if self.connect_hook_due.is_some() && !data.is_empty() {
            self.run_connect_hook();
        }
        let framer = self.framer.as_mut()?;
        framer.push(data);
        loop {
            let record = match self.framer.as_mut()?.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return None,
                Err(talkback_core::protocol::ProtocolError::MessageTooLarge { max, .. }) => {
                    let text = format!("The maximum message size of {max}B was exceeded.");
                    return Some(End::Close(Some(text), false));
                }
                Err(e) => {
                    tracing::debug!(connection = %self.conn.id, error = %e, "bad framing");
                    return Some(End::Close(Some(CLOSED_WITH_ERROR.into()), false));
                }
            };
            match self.protocol.decode(&record) {
                Ok(Decoded::Message(message)) => {
                    if let Some(end) = self.on_message(message, out).await {
                        return Some(end);
                    }
                }
                Ok(Decoded::Unknown { type_id }) => {
                    tracing::debug!(type_id, "skipping a message of unknown type")
                }
                Err(e) => {
                    tracing::debug!(connection = %self.conn.id, error = %e, "bad message");
                    return Some(End::Close(Some(CLOSED_WITH_ERROR.into()), false));
                }
            }
        }
    }

    /// Checks the handshake request; returns the version the client asked for.
    fn accept_handshake(&mut self, record: &[u8]) -> Result<u32, String> {
        let request = HandshakeRequest::parse(record).map_err(|e| match e {
            talkback_core::protocol::ProtocolError::InvalidHandshake(text) => text,
            other => other.to_string(),
        })?;
        let Some(protocol) = Protocol::from_name(&request.protocol) else {
            return Err(format!(
                "The protocol '{}' is not supported.",
                request.protocol
            ));
        };
        if !(1..=2).contains(&request.version) {
            return Err(format!(
                "The server does not support version {} of the '{}' protocol.",
                request.version, request.protocol
            ));
        }
        if protocol.transfer_format() == TransferFormat::Binary
            && self.transport() == Some(TransportKind::ServerSentEvents)
        {
            return Err(format!(
                "Cannot use the '{}' protocol on the current transport. The transport does not support 'Binary' transfer format.",
                request.protocol
            ));
        }
        self.protocol = protocol;
        let _ = self.conn.protocol.set(protocol);

        if request.version >= 2
            && self.conn.stateful_negotiated
            && self.transport() == Some(TransportKind::WebSockets)
        {
            self.stateful = Some(MessageBuffer::new(usize::MAX));
            self.conn
                .stateful_active
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(request.version)
    }

    fn connected(&mut self, version: u32) {
        self.handshake_done = true;
        let _ = self.conn.handshake_version.set(version);
        self.conn.changed();
        self.shared.changed();
        self.framer = Some(
            self.protocol
                .framer(self.shared.config.max_receive_message_size),
        );
        tracing::debug!(connection = %self.conn.id, protocol = self.protocol.name(), "connected");
        if let Some(transport) = self.transport() {
            self.shared.metrics.connected(transport, self.protocol);
            self.counted = Some((transport, self.protocol));
        }
        if self.stateful.is_some() && self.hub.on_connected.is_some() {
            // The official JavaScript client creates its stateful-reconnect buffer only after
            // it has processed the handshake response, then sends a Ping. In Node, where every
            // frame of one TCP read is handled before that happens, a message sent right after
            // the handshake is processed but not counted, so a later re-attach replays one
            // message too many (a duplicate the application sees). On stateful connections the
            // hook therefore runs once the client's first message arrives (at most 1 s later):
            // the same messages in the same order, only not racing the client's set-up.
            self.connect_hook_due = Some(Instant::now() + CONNECT_HOOK_WAIT);
            return;
        }
        self.run_connect_hook();
    }

    /// Queues the hub's on-connected hook on the dispatcher (so it runs before the first
    /// invocation that follows it).
    fn run_connect_hook(&mut self) {
        self.connect_hook_due = None;
        if let Some(hook) = self.hub.on_connected.clone() {
            let ctx = self.context(Vec::new());
            // Through the dispatcher, so it runs before the first invocation.
            let job = Box::new(Job {
                ctx,
                method: Method::Lifecycle(hook),
                target: String::new(),
                arguments: Vec::new(),
                invocation_id: None,
                span: tracing::debug_span!("on_connected"),
            });
            self.dispatcher
                .push(job, self.shared.config.detailed_errors);
        }
    }

    fn context(&self, uploads: Vec<Option<UploadStream>>) -> HubContext {
        HubContext {
            conn: self.conn.clone(),
            shared: self.shared.clone(),
            uploads: Arc::new(Mutex::new(uploads)),
        }
    }

    async fn on_message(
        &mut self,
        message: HubMessage,
        out: &queue::Sender<Outbound>,
    ) -> Option<End> {
        self.conn.messages_received.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.received_message();
        if matches!(message, HubMessage::Ping) {
            self.conn.pings_received.fetch_add(1, Ordering::Relaxed);
        }
        self.conn.changed();
        if let Some(buffer) = self.stateful.as_mut() {
            let is_sequence = matches!(message, HubMessage::Sequence(_));
            let (inbound, ack) = buffer.receive(message.is_trackable(), is_sequence);
            if ack && self.ack_due.is_none() {
                self.ack_due = Some(Instant::now() + ACK_DELAY);
            }
            if inbound == Seq::Drop {
                return None;
            }
        }
        match message {
            HubMessage::Invocation(invocation) => self.on_invocation(invocation, false, out).await,
            HubMessage::StreamInvocation(invocation) => {
                self.on_invocation(invocation, true, out).await
            }
            HubMessage::StreamItem(item) => {
                if let Some(tx) = self.uploads.get(&item.invocation_id).cloned() {
                    // Waits while the hub method is behind (bounded upload buffer), but never
                    // past the connection's timers.
                    let _ = self.guarded(tx.send(Ok(item.item))).await;
                } else if !self.finished_uploads.contains(&item.invocation_id) {
                    tracing::debug!(id = %item.invocation_id, "StreamItem for an unknown stream");
                    return Some(End::Close(
                        Some(format!(
                            "Received a StreamItem for unknown stream id '{}'.",
                            item.invocation_id
                        )),
                        false,
                    ));
                }
                None
            }
            HubMessage::Completion(completion) => {
                let id = completion.invocation_id;
                if let Some(tx) = self.uploads.remove(&id) {
                    if let CompletionResult::Error(text) = completion.result {
                        let _ = self.guarded(tx.send(Err(text))).await;
                    }
                    self.finished_uploads.insert(id);
                } else if let Some(tx) = self.conn.client_results.lock().remove(&id) {
                    let _ = tx.send(completion.result);
                } else {
                    tracing::debug!(%id, "Completion for nothing pending; ignored");
                }
                None
            }
            HubMessage::CancelInvocation(cancel) => {
                let handle = self.streams.lock().remove(&cancel.invocation_id);
                if let Some(handle) = handle {
                    handle.abort();
                    self.conn
                        .active_invocations
                        .lock()
                        .remove(&cancel.invocation_id);
                    let done = HubMessage::Completion(Completion {
                        invocation_id: cancel.invocation_id,
                        result: CompletionResult::Void,
                        headers: Default::default(),
                    });
                    self.write(&done, out).await;
                }
                None
            }
            HubMessage::Ping => None,
            HubMessage::Close(_) => Some(End::Quiet),
            HubMessage::Ack(id) => {
                if let Some(buffer) = self.stateful.as_mut() {
                    buffer.ack(id);
                }
                None
            }
            HubMessage::Sequence(id) => {
                if let Some(buffer) = self.stateful.as_mut() {
                    if buffer.sequence(id).is_err() {
                        return Some(End::Close(
                            Some(talkback_core::stateful::SEQUENCE_TOO_HIGH.into()),
                            false,
                        ));
                    }
                }
                None
            }
        }
    }

    async fn on_invocation(
        &mut self,
        invocation: Invocation,
        streaming: bool,
        out: &queue::Sender<Outbound>,
    ) -> Option<End> {
        let target = invocation.target;
        let id = invocation.invocation_id;
        let stream_ids = invocation.stream_ids.unwrap_or_default();
        let hub: Arc<Hub> = self.hub.clone();
        let method = hub.resolve(&target, id.as_deref());
        let fail = |text: String| {
            id.clone().map(|invocation_id| {
                HubMessage::Completion(Completion {
                    invocation_id,
                    result: CompletionResult::Error(text),
                    headers: Default::default(),
                })
            })
        };
        let error = match (&method, streaming) {
            (None, _) => Some(format!(
                "Failed to invoke '{target}' due to an error on the server. HubException: Method does not exist."
            )),
            (Some(Method::Stream(_)), false) => Some(format!(
                "The client attempted to invoke the streaming '{target}' method with a non-streaming invocation."
            )),
            (Some(Method::Invoke(_)), true) => Some(format!(
                "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
            )),
            _ => None,
        };
        // Bounded before anything is allocated for them (checked after the method, so an
        // unknown method still gets its usual error).
        let error = error.or_else(|| {
            if stream_ids.len() > MAX_STREAM_IDS_PER_INVOCATION {
                Some(format!(
                    "An invocation may announce at most {MAX_STREAM_IDS_PER_INVOCATION} stream ids."
                ))
            } else if self.uploads.len() + stream_ids.len() > MAX_OPEN_UPLOADS {
                Some(format!(
                    "A connection may have at most {MAX_OPEN_UPLOADS} upload streams open."
                ))
            } else {
                None
            }
        });
        let error = error.or_else(|| {
            // A blocking call claims its id until its Completion; reusing a running id is refused.
            let running = id.as_ref().filter(|id| {
                matches!(method, Some(Method::Invoke(_) | Method::Stream(_)))
                    && !self.conn.active_invocations.lock().insert((*id).clone())
            });
            running.map(|id| format!("Invocation ID '{id}' is already in use."))
        });
        if let Some(text) = error {
            tracing::debug!(%target, %text, "invocation refused");
            self.shared.metrics.error(ErrorKind::Invocation);
            // Items the client still sends for these streams are ignored (as for a finished
            // upload), unless it announced more ids than allowed.
            if stream_ids.len() <= MAX_STREAM_IDS_PER_INVOCATION {
                self.finished_uploads.extend(stream_ids);
            }
            if let Some(message) = fail(text) {
                self.write(&message, out).await;
            }
            return None;
        }
        let mut uploads = Vec::with_capacity(stream_ids.len());
        for stream_id in stream_ids {
            let (tx, rx) = mpsc::channel(UPLOAD_BUFFER);
            self.uploads.insert(stream_id, tx);
            uploads.push(Some(UploadStream { items: rx }));
        }
        let ctx = self.context(uploads);
        let span = tracing::debug_span!(
            "invocation",
            connection = %self.conn.id,
            hub = %self.conn.hub,
            transport = self.transport().map_or("", |t| t.name()),
            method = %target,
            invocation_id = id.as_deref().unwrap_or(""),
        );
        match method {
            Some(Method::Stream(f)) => {
                let invocation_id = id?;
                let sender = StreamSender {
                    conn: self.conn.clone(),
                    invocation_id: invocation_id.clone(),
                };
                let conn = self.conn.clone();
                let streams = self.streams.clone();
                let detailed = self.shared.config.detailed_errors;
                let metrics = self.shared.metrics.clone();
                let key = invocation_id.clone();
                // Registered under the lock before the task can end: a stream that finishes at
                // once must still find its entry, or its Completion would never be sent.
                let mut registered = self.streams.lock();
                let task = tokio::spawn(
                    async move {
                        let outcome = f(ctx, invocation.arguments, sender).await;
                        // Only the task that still owns its entry completes (a cancel completed it).
                        if streams.lock().remove(&key).is_some() {
                            conn.active_invocations.lock().remove(&key);
                            let result = match outcome {
                                Ok(()) => CompletionResult::Void,
                                Err(e) => {
                                    metrics.error(ErrorKind::Invocation);
                                    CompletionResult::Error(e.to_completion_text(&target, detailed))
                                }
                            };
                            let done = HubMessage::Completion(Completion {
                                invocation_id: key,
                                result,
                                headers: Default::default(),
                            });
                            let _ = conn.commands.send(Command::Message(Box::new(done))).await;
                        }
                    }
                    .instrument(span),
                );
                registered.insert(invocation_id, task.abort_handle());
            }
            Some(method) => {
                let job = Box::new(Job {
                    ctx,
                    method,
                    target,
                    arguments: invocation.arguments,
                    invocation_id: id,
                    span,
                });
                if !self
                    .dispatcher
                    .push(job, self.shared.config.detailed_errors)
                {
                    tracing::warn!(connection = %self.conn.id, "hub call queue full: closing");
                    return Some(End::Close(Some(CLOSED_WITH_ERROR.into()), false));
                }
            }
            None => {}
        }
        None
    }

    // ------------------------------------------------------------------ sending

    /// Encodes and sends one message (numbered and buffered under stateful reconnect).
    async fn write(&mut self, message: &HubMessage, out: &queue::Sender<Outbound>) {
        let bytes = crate::wire::to_bytes(self.protocol, message);
        if let (Some(buffer), true) = (self.stateful.as_mut(), message.is_trackable()) {
            buffer.push_sent(bytes.clone());
            if buffer.buffered_bytes() > self.shared.config.replay_buffer_bytes.saturating_mul(10) {
                tracing::warn!(connection = %self.conn.id, "replay buffer over its bound: aborting");
                self.conn.abort();
            }
        }
        if self.detached_since.is_some() {
            return;
        }
        if self.write_raw(bytes, out).await {
            self.shared.metrics.sent_message();
        }
    }

    /// Sends bytes to the transport, applying the delay and drop-after faults; false if they
    /// could not be queued (the connection was aborted or missed its liveness deadline).
    async fn write_raw(&mut self, bytes: Bytes, out: &queue::Sender<Outbound>) -> bool {
        if let Some(delay) = self.conn.faults.delay() {
            tokio::time::sleep(delay).await;
        }
        self.last_sent = Instant::now();
        // Wait for room, but not past an abort nor the connection's liveness deadline: a
        // client that neither reads nor writes is still closed on time.
        let Some(Ok(permit)) = self.guarded(out.reserve()).await else {
            return false;
        };
        self.shared.metrics.sent_bytes(bytes.len());
        permit.send(Outbound::Frame(bytes));
        if self.conn.faults.count_message() {
            // The n-th message must reach the client first: wait until the transport took it
            // from the queue (bounded), give it a moment to write it, then drop.
            let conn = self.conn.clone();
            let out = out.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(1);
                while out.capacity() < out.max_capacity() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                tracing::debug!(connection = %conn.id, "fault: dropping the transport");
                conn.drop_transport();
            });
        }
        true
    }

    /// After a stateful re-attach: Sequence, then every unacknowledged message.
    async fn resend(&mut self, out: &queue::Sender<Outbound>) {
        let Some(buffer) = self.stateful.as_mut() else {
            return;
        };
        let (next, replay) = buffer.resend();
        tracing::debug!(connection = %self.conn.id, next, replay = replay.len(), "re-attached");
        let sequence = crate::wire::to_bytes(self.protocol, &HubMessage::Sequence(next));
        self.write_raw(sequence, out).await;
        for message in replay {
            self.write_raw(message, out).await;
        }
    }

    async fn finish(self) {
        if let Some((transport, protocol)) = self.counted {
            // An abort shows first as a closed transport: it wins over what the loop saw.
            let reason = if self.conn.is_aborted() {
                DisconnectReason::Aborted
            } else if self.stalled {
                DisconnectReason::ClientTimeout
            } else {
                self.end_reason.unwrap_or(DisconnectReason::ClientClosed)
            };
            tracing::debug!(connection = %self.conn.id, ?reason, "disconnected");
            self.shared
                .metrics
                .disconnected(transport, protocol, reason);
        }
        let _ = self.conn.closed.set(());
        self.shared.remove(&self.conn);
        self.conn.ended.notify_waiters();
        self.conn.poll_cancel.notify_waiters();
        self.conn.client_results.lock().clear();
        self.conn.active_invocations.lock().clear();
        for (_, handle) in self.streams.lock().drain() {
            handle.abort();
        }
        tracing::debug!(connection = %self.conn.id, "connection ended");
        if let (true, Some(hook)) = (self.handshake_done, self.hub.on_disconnected.clone()) {
            let ctx = self.context(Vec::new());
            tokio::spawn(async move { hook(ctx).await });
        }
    }
}

fn handshake_error(text: &str) -> Bytes {
    let mut bytes = Vec::new();
    crate::wire::encode_handshake_response(Some(text), &mut bytes);
    Bytes::from(bytes)
}

/// A connection's hub calls waiting to run, and whether a runner task is at them.
///
/// No task waits on an idle connection: the first call spawns a runner ([`run_dispatcher`]),
/// which ends (and frees the queue's storage) once the queue is empty; the next call spawns
/// another. Only one runner exists at a time (both decisions are taken under the lock), so
/// calls still run one after another in arrival order.
#[derive(Clone, Default)]
struct Dispatcher {
    state: Arc<Mutex<DispatchState>>,
}

#[derive(Default)]
struct DispatchState {
    jobs: VecDeque<Box<Job>>,
    running: bool,
}

impl Dispatcher {
    /// Queues a call; false if [`MAX_QUEUED_CALLS`] are already waiting.
    fn push(&self, job: Box<Job>, detailed: bool) -> bool {
        let mut state = self.state.lock();
        if state.jobs.len() >= MAX_QUEUED_CALLS {
            return false;
        }
        state.jobs.push_back(job);
        if !state.running {
            state.running = true;
            tokio::spawn(run_dispatcher(self.clone(), detailed));
        }
        true
    }

    /// The next call, or `None` after marking the runner gone (under one lock).
    fn next(&self) -> Option<Box<Job>> {
        let mut state = self.state.lock();
        let job = state.jobs.pop_front();
        if job.is_none() {
            state.running = false;
            state.jobs = VecDeque::new();
        }
        job
    }
}

/// Marks the runner gone if its task ends early (a hub method panicked), so the next call
/// starts a new one.
struct RunnerGuard(Dispatcher);

impl Drop for RunnerGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.state.lock().running = false;
        }
    }
}

/// Runs a connection's hub calls: connection callbacks and non-blocking invocations one after
/// another in arrival order (so a client's sends keep their order), blocking invocations each as
/// their own task (so a slow `Delay` does not hold up the others, and results may overtake).
async fn run_dispatcher(dispatcher: Dispatcher, detailed: bool) {
    let guard = RunnerGuard(dispatcher);
    while let Some(job) = guard.0.next() {
        let job = *job;
        let span = job.span;
        match job.method {
            Method::Lifecycle(hook) => hook(job.ctx).instrument(span).await,
            Method::Invoke(f) => {
                let Some(invocation_id) = job.invocation_id else {
                    let metrics = job.ctx.shared.metrics.clone();
                    if let Err(e) = f(job.ctx, job.arguments).instrument(span.clone()).await {
                        metrics.error(ErrorKind::Invocation);
                        span.in_scope(|| {
                            tracing::debug!(target = %job.target, error = %e, "non-blocking invocation failed");
                        });
                    }
                    continue;
                };
                tokio::spawn(
                    async move {
                        let conn = job.ctx.conn.clone();
                        let metrics = job.ctx.shared.metrics.clone();
                        let result =
                            f(job.ctx, job.arguments)
                                .await
                                .unwrap_or_else(|e: HubError| {
                                    metrics.error(ErrorKind::Invocation);
                                    CompletionResult::Error(
                                        e.to_completion_text(&job.target, detailed),
                                    )
                                });
                        conn.active_invocations.lock().remove(&invocation_id);
                        let done = HubMessage::Completion(Completion {
                            invocation_id,
                            result,
                            headers: Default::default(),
                        });
                        let _ = conn.commands.send(Command::Message(Box::new(done))).await;
                    }
                    .instrument(span),
                );
            }
            Method::Stream(_) => {}
        }
    }
}
