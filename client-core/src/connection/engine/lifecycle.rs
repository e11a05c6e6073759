//! Losing, re-attaching, reconnecting and closing a connection.

use super::*;
use crate::connection::link::Link;
use crate::connection::{Event, HttpMethod, HttpRequest, State, Transmit};
use crate::reconnect::RetryContext;
use crate::transport::TransportKind;
use crate::{Duration, Error, Instant};
use bytes::Bytes;

impl Connection {
    /// The connection (Connected) lost its transport or must close with `error`.
    pub(super) fn lost(&mut self, now: Instant, error: Option<Error>, recovery: Recovery) {
        if self.attempt.is_some() {
            let error = error.unwrap_or_else(|| Error::Transport(CLOSED_DURING_HANDSHAKE.into()));
            return self.fail_attempt(now, error);
        }
        if self.state != State::Connected {
            if self.state == State::Disconnecting {
                // Lost while stopping over long polling (the poll itself was aborted at stop,
                // so a timer or a failed read): the queued POSTs still finish and the DELETE
                // is still sent, as the official client always sends it on stop.
                if self
                    .link
                    .as_ref()
                    .is_some_and(|l| l.kind == TransportKind::LongPolling)
                {
                    return self.continue_stop();
                }
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
    /// Sequence and replay. A re-attach that is refused ends the connection the normal way
    /// (close, or the reconnect policy); one that opens and closes before the server sent
    /// anything is tried again at most `MAX_REATTACH_ATTEMPTS` times in a row when the server closed it
    /// (`MAX_REATTACH_RESETS` when it dropped without a Close frame), so a server that
    /// accepts the upgrade and closes at once cannot cause an endless loop (docs/protocol/transport.md, "Stateful reconnect at the transport
    /// level"). Returns false when stateful reconnect is off.
    pub(super) fn try_reattach(
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
            String::new(),
            self.config.protocol,
            self.config.max_message_size,
        );
        link.handshake_done = true;
        link.reattach_unconfirmed = true;
        link.ws_target = Some((url.clone(), headers.clone()));
        self.link = Some(link);
        self.transmits
            .push_back(Transmit::OpenWebSocket { url, headers });
        true
    }

    /// Asks the policy for the next delay after a failed reconnect attempt.
    pub(super) fn schedule_retry(&mut self, now: Instant, error: Error) {
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
    pub(super) fn end_connection(&mut self, error: Option<Error>) {
        let error = error.unwrap_or_else(|| Error::Closed(INVOCATION_CANCELED.into()));
        let mut calls: Vec<(u64, Call)> = self.calls.drain().collect();
        // Numbers are unique, so an unstable sort gives the same order (and less code in wasm).
        calls.sort_unstable_by_key(|&(number, _)| number);
        for (number, call) in calls {
            let id = number.to_string();
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
        self.reattach_failures = 0;
        self.reattach_resets = 0;
        self.timers.ping = None;
        self.timers.server = None;
        self.timers.ack = None;
    }

    pub(super) fn complete_close(&mut self, error: Option<Error>) {
        self.connection_id = None;
        self.set_state(State::Disconnected);
        self.events.push_back(Event::Closed(error));
    }

    /// SSE and long polling: wait for queued POSTs (the Close among them), then close.
    pub(super) fn continue_stop(&mut self) {
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

    pub(super) fn finish_stop(&mut self) {
        if self.state != State::Disconnecting {
            return;
        }
        self.timers.stop = None;
        self.close_link();
        self.end_connection(None);
        self.complete_close(None);
    }

    /// Closes the transport (no Close message) and forgets its requests.
    pub(super) fn close_link(&mut self) {
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
    pub(super) fn drop_link(&mut self) {
        if let Some(link) = self.link.take() {
            for id in [link.receive, link.post_in_flight].into_iter().flatten() {
                self.requests.remove(&id);
                self.transmits.push_back(Transmit::AbortHttp(id));
            }
        }
    }
}
