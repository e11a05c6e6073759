//! Receiving: client bytes to hub messages (the handshake first), each message handled
//! (invocations, upload items, completions, cancels, stateful-reconnect acks), and the
//! per-connection dispatcher that runs hub calls in arrival order.

use super::handshake::handshake_error;
use super::{
    End, Session, ACK_DELAY, CLOSED_WITH_ERROR, MAX_OPEN_UPLOADS, MAX_QUEUED_CALLS,
    MAX_RUNNING_INVOCATIONS, MAX_STREAM_IDS_PER_INVOCATION, UPLOAD_BUFFER,
};
use crate::context::{HubContext, StreamSender, UploadStream};
use crate::hub::{Hub, HubError, Method};
use crate::metrics::ErrorKind;
use crate::queue;
use crate::registry::{Command, Outbound};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use talkback_core::protocol::{
    Completion, CompletionResult, Decoded, HubMessage, Invocation, RawValue,
};
use talkback_core::stateful::Inbound as Seq;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

/// A hub call waiting for the per-connection dispatcher ([`run_dispatcher`]).
pub(super) struct Job {
    pub(super) ctx: HubContext,
    pub(super) method: Method,
    pub(super) target: String,
    pub(super) arguments: Vec<RawValue>,
    pub(super) invocation_id: Option<String>,
    /// The invocation's span (connection, hub, transport, method).
    pub(super) span: tracing::Span,
}

impl Session {
    pub(super) async fn on_data(
        &mut self,
        bytes: &[u8],
        out: &queue::Sender<Outbound>,
    ) -> Option<End> {
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
            // Recorded before the response goes out, so that whoever asks the fixture about
            // the connection once the client has its answer sees the version (messages
            // for the connection still wait for this task, so none precede the response).
            let _ = self.conn.handshake_version.set(version);
            let mut response = Vec::new();
            crate::wire::encode_handshake_response(None, &mut response);
            self.write_raw(Bytes::from(response), out).await;
            self.connected();
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
                Err(talkback_core::protocol::ProtocolError::MessageTooLarge { .. }) => {
                    return Some(End::Close(Some(self.too_large_text()), false));
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

    /// A client message over the size limit that the transport refused before reading it (the
    /// WebSocket layer, from its frame header): before the handshake, the handshake fails;
    /// after it, the connection closes as for a message the framer refuses.
    pub(super) async fn on_too_large(&mut self, out: &queue::Sender<Outbound>) -> End {
        tracing::debug!(connection = %self.conn.id, "a message over the size limit: closing");
        if !self.handshake_done {
            self.shared.metrics.error(ErrorKind::Handshake);
            self.write_raw(handshake_error("Handshake was canceled."), out)
                .await;
            return End::Quiet;
        }
        End::Close(Some(self.too_large_text()), false)
    }

    /// The Close text for a client message over the size limit, as ASP.NET Core's: its hub
    /// parser throws an `InvalidDataException` with this message (`HubConnectionHandler`,
    /// dotnet/aspnetcore `src/SignalR/server/Core`), and the Close carries
    /// [`CLOSED_WITH_ERROR`], followed by the exception with detailed errors.
    pub(super) fn too_large_text(&self) -> String {
        if self.shared.config.detailed_errors {
            format!(
                "{CLOSED_WITH_ERROR} InvalidDataException: The maximum message size of {}B was exceeded. The message size can be configured in AddHubOptions.",
                self.shared.config.max_receive_message_size
            )
        } else {
            CLOSED_WITH_ERROR.into()
        }
    }

    pub(super) async fn on_message(
        &mut self,
        message: HubMessage,
        out: &queue::Sender<Outbound>,
    ) -> Option<End> {
        self.conn.messages_received.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.received_message();
        if matches!(message, HubMessage::Ping) {
            self.conn.pings_received.fetch_add(1, Ordering::Relaxed);
        }
        if !matches!(
            message,
            HubMessage::Ping | HubMessage::Ack(_) | HubMessage::Sequence(_) | HubMessage::Close(_)
        ) {
            self.last_message = Instant::now();
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

    pub(super) async fn on_invocation(
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
            // A blocking call claims its id until its Completion; reusing a running id is
            // refused, and so is a call over the connection's bound on running calls (each runs
            // as its own task).
            let id = id
                .as_ref()
                .filter(|_| matches!(method, Some(Method::Invoke(_) | Method::Stream(_))))?;
            let mut active = self.conn.active_invocations.lock();
            if active.contains(id) {
                Some(format!("Invocation ID '{id}' is already in use."))
            } else if active.len() >= MAX_RUNNING_INVOCATIONS {
                Some(format!(
                    "A connection may have at most {MAX_RUNNING_INVOCATIONS} invocations running."
                ))
            } else {
                active.insert(id.clone());
                None
            }
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
}

/// A connection's hub calls waiting to run, and whether a runner task is at them.
///
/// No task waits on an idle connection: the first call spawns a runner ([`run_dispatcher`]),
/// which ends (and frees the queue's storage) once the queue is empty; the next call spawns
/// another. Only one runner exists at a time (both decisions are taken under the lock), so
/// calls still run one after another in arrival order.
#[derive(Clone, Default)]
pub(super) struct Dispatcher {
    state: Arc<Mutex<DispatchState>>,
}

#[derive(Default)]
struct DispatchState {
    jobs: VecDeque<Box<Job>>,
    running: bool,
}

impl Dispatcher {
    /// Queues a call; false if [`MAX_QUEUED_CALLS`] are already waiting.
    pub(super) fn push(&self, job: Box<Job>, detailed: bool) -> bool {
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
    pub(super) fn next(&self) -> Option<Box<Job>> {
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
/// another in arrival order (so a client's sends keep their order); a blocking invocation is
/// started here and, unless it finished at once, goes on as its own task (so a slow `Delay`
/// does not hold up the others, and results may overtake).
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
                let conn = job.ctx.conn.clone();
                let metrics = job.ctx.shared.metrics.clone();
                let target = job.target;
                let mut call = f(job.ctx, job.arguments).instrument(span.clone());
                // Polled once here first: a method that answers at once (most do) costs no
                // task of its own. One that is not done yet goes on as its own task (so a slow
                // `Delay` does not hold up the calls behind it), which polls it again and so
                // takes over its wake-ups. A panic in that first poll ends the call as a
                // panicking task would (no Completion), not this runner.
                let first = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                        || std::future::Future::poll(std::pin::Pin::new(&mut call), cx),
                    )))
                })
                .await;
                match first {
                    Ok(std::task::Poll::Ready(outcome)) => {
                        let done =
                            completion(&conn, &metrics, invocation_id, outcome, &target, detailed);
                        // Queued without waiting when there is room: a full queue must hold up
                        // only this call's answer, not the calls behind it.
                        if let Err(queue::TrySendError::Full(done)) = conn.commands.try_send(done) {
                            tokio::spawn(async move {
                                let _ = conn.commands.send(done).await;
                            });
                        }
                    }
                    Ok(std::task::Poll::Pending) => {
                        tokio::spawn(
                            async move {
                                let outcome = call.await;
                                let done = completion(
                                    &conn,
                                    &metrics,
                                    invocation_id,
                                    outcome,
                                    &target,
                                    detailed,
                                );
                                let _ = conn.commands.send(done).await;
                            }
                            .instrument(span),
                        );
                    }
                    Err(_) => {
                        span.in_scope(|| {
                            tracing::error!(target = %target, "hub method panicked");
                        });
                    }
                }
            }
            Method::Stream(_) => {}
        }
    }
}

/// The Completion command for a finished blocking call, which frees its invocation id.
fn completion(
    conn: &Arc<crate::registry::Conn>,
    metrics: &crate::metrics::Metrics,
    invocation_id: String,
    outcome: Result<CompletionResult, HubError>,
    target: &str,
    detailed: bool,
) -> Command {
    let result = outcome.unwrap_or_else(|e| {
        metrics.error(ErrorKind::Invocation);
        CompletionResult::Error(e.to_completion_text(target, detailed))
    });
    conn.active_invocations.lock().remove(&invocation_id);
    Command::Message(Box::new(HubMessage::Completion(Completion {
        invocation_id,
        result,
        headers: Default::default(),
    })))
}
