//! Sending: encoding, the stateful buffer, WebSocket frames, the POST queue of the HTTP
//! transports, and the replay after a re-attach.

use super::*;
use crate::connection::{HttpEvent, HttpMethod, HttpRequest, RequestId, State, Transmit};
use crate::http_status::status_error;
use crate::protocol::{HubMessage, TransferFormat};
use crate::transport::TransportKind;
use crate::{Error, Instant};
use bytes::Bytes;

/// The start of the error text of a refused POST.
const SEND_FAILED: &str = "Send failed";

/// The largest encoding buffer a thread keeps between messages; a larger one is let go.
const SCRATCH_KEPT: usize = 64 * 1024;

/// Encodes `message` into bytes of exactly its size (see [`crate::protocol::encode_exact`]).
fn encode(protocol: crate::protocol::Protocol, message: &HubMessage) -> Bytes {
    crate::protocol::encode_exact(SCRATCH_KEPT, |out| protocol.encode(message, out))
}

impl Connection {
    /// Encodes and writes one hub message; `op` is reported in [`Event::Written`].
    pub(super) fn write(
        &mut self,
        now: Instant,
        message: &HubMessage,
        op: Option<u64>,
    ) -> Result<(), Error> {
        if self.link.as_ref().is_none_or(|l| !l.handshake_done) {
            if let Some(op) = op {
                self.written(op, Err(Error::Usage(NOT_CONNECTED.into())));
            }
            return Err(Error::Usage(NOT_CONNECTED.into()));
        }
        let bytes = encode(self.config.protocol, message);
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
    pub(super) fn write_raw(&mut self, bytes: Bytes, format: TransferFormat, op: Option<u64>) {
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
    pub(super) fn pump_posts(&mut self) {
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

    pub(super) fn send_post(&mut self, ops: Vec<u64>, body: Bytes, retried: bool) {
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

    pub(super) fn on_post(
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
                HttpEvent::Response { status, body } => {
                    Err(Error::Transport(status_error(SEND_FAILED, status, &body)))
                }
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
            HttpEvent::Response { status: 401, .. }
                if !retried && self.config.has_access_token_factory =>
            {
                link.post_in_flight = Some(id);
                self.fetch_token(TokenFor::RetryPost { ops, body });
                return;
            }
            HttpEvent::Response {
                status: 404,
                body: reason,
            } => {
                // The server no longer knows the connection.
                let error = Error::Transport(status_error(SEND_FAILED, 404, &reason));
                return self.post_failed(now, ops, error);
            }
            HttpEvent::Response {
                status,
                body: reason,
            } => {
                // Refused (409 another send in flight, 413 from a proxy's body limit, ...):
                // these sends fail with the status and the server's reason, and the connection
                // goes on, as with the reference client.
                let error = Error::Transport(status_error(SEND_FAILED, status, &reason));
                if self.attempt.is_some() {
                    // The handshake itself was refused: the start fails.
                    return self.post_failed(now, ops, error);
                }
                for op in ops {
                    self.written(op, Err(error.clone()));
                }
            }
            HttpEvent::Failed { message, .. } => {
                let error = Error::Transport(message);
                if self.attempt.is_some() || self.state == State::Disconnecting {
                    return self.post_failed(now, ops, error);
                }
                // As with the reference client, a send lost on the wire (or timed out) fails
                // only its calls: the poll or the event stream finds out whether the server
                // is gone, and closes the connection then.
                for op in ops {
                    self.written(op, Err(error.clone()));
                }
            }
            _ => return,
        }
        self.pump_posts();
        if self.link.as_ref().is_some_and(|l| l.closing) {
            self.continue_stop();
        }
    }

    pub(super) fn post_failed(&mut self, now: Instant, ops: Vec<u64>, error: Error) {
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
    pub(super) fn resend(&mut self, now: Instant) {
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
