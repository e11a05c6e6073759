//! The session's loop: client bytes, hub commands and timers in one `select!`; the handshake,
//! client, disconnect and reconnect deadlines; waiting on a full queue without missing them;
//! and the end of a session.

use super::handshake::handshake_error;
use super::{End, Session, CLIENT_TIMEOUT_DETAILED, CLOSED_WITH_ERROR};
use crate::metrics::{DisconnectReason, ErrorKind};
use crate::queue;
use crate::registry::{Command, Inbound, Outbound, SessionSide};
use std::time::Duration;
use talkback_core::protocol::{Close, HubMessage};
use talkback_core::transport::TransportKind;
use tokio::time::Instant;

impl Session {
    pub(super) async fn run(mut self, mut side: SessionSide) {
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
                    Some(Inbound::TooLarge) => {
                        let end = Box::pin(self.on_too_large(&side.outbound)).await;
                        if self.handshake_done {
                            self.shared.metrics.error(ErrorKind::Protocol);
                            self.end_reason = Some(DisconnectReason::ProtocolError);
                        }
                        break end;
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

    pub(super) fn next_deadline(&self) -> Instant {
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
            deadlines.extend(config.idle_timeout.map(|idle| self.last_message + idle));
            deadlines.extend(self.ack_due);
            deadlines.extend(self.connect_hook_due);
        }
        deadlines.into_iter().min().unwrap_or(far)
    }

    pub(super) async fn on_timer(&mut self, out: &queue::Sender<Outbound>) -> Option<End> {
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
        if let Some(idle) = config
            .idle_timeout
            .filter(|idle| now >= self.last_message + *idle)
        {
            tracing::debug!(connection = %self.conn.id, "idle timeout");
            self.end_reason = Some(DisconnectReason::ClientTimeout);
            return Some(End::Close(Some(idle_close_text(idle)), false));
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
    pub(super) fn liveness_deadline(&self) -> Instant {
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
    pub(super) async fn guarded<F: std::future::Future>(&mut self, f: F) -> Option<F::Output> {
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

    pub(super) async fn finish(self) {
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

/// The Close text for the idle timeout ([`FixtureConfig::idle_timeout`](crate::Config::idle_timeout)).
pub(super) fn idle_close_text(idle: Duration) -> String {
    format!(
        "Connection closed: no message from the client for {idle:?} (the idle timeout; pings do not count)."
    )
}
