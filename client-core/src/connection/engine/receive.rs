//! Receiving: transport bytes to the handshake response and hub messages, their dispatch,
//! and the Server-Sent Events and long-polling receive paths.

use super::*;
use crate::connection::{Event, HttpEvent, HttpMethod, HttpRequest, RequestId, State, Transmit};
use crate::protocol::{CompletionResult, Decoded, HubMessage, ProtocolError};
use crate::stateful::Inbound;
use crate::{Error, Instant};
use bytes::Bytes;

impl Connection {
    /// Bytes from the transport: the handshake response first, then hub messages.
    pub(super) fn on_data(&mut self, now: Instant, data: &[u8]) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if self.state == State::Disconnecting {
            return;
        }
        if !link.inherent_keep_alive() || !link.handshake_done {
            self.timers.server = Some(now + self.config.server_timeout);
        }
        if self.calls.is_empty() {
            // Something the server sent by itself (a ping, an invocation) to a connection that
            // waits for nothing: the queues it fills can let go of their room afterwards.
            self.trim_when_drained = true;
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

    pub(super) fn dispatch(&mut self, now: Instant, message: HubMessage) {
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
            HubMessage::StreamItem(item) => {
                let number = invocation_number(&item.invocation_id);
                match number.and_then(|n| self.calls.get(&n)) {
                    Some(Call::Stream) => self.events.push_back(Event::StreamItem {
                        id: item.invocation_id,
                        item: item.item,
                    }),
                    Some(Call::Invoke) => {
                        if let Some(number) = number {
                            self.calls.remove(&number);
                        }
                        let text = "Unexpected message type: 2".to_owned();
                        self.events.push_back(Event::InvocationCompleted {
                            id: item.invocation_id,
                            result: Err(Error::Protocol(ProtocolError::Violation(text))),
                        });
                    }
                    None => tracing::debug!(id = %item.invocation_id, "StreamItem for no call"),
                }
            }
            HubMessage::Completion(completion) => {
                let id = completion.invocation_id;
                match invocation_number(&id).and_then(|n| self.calls.remove(&n)) {
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

    pub(super) fn on_sse(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
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

    pub(super) fn sse_ended(&mut self, now: Instant, opened: bool, error: Option<String>) {
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

    pub(super) fn send_poll(&mut self) {
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

    pub(super) fn on_poll(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
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
            HttpEvent::Response { status, body } => {
                let text = crate::http_status::status_error("Long poll failed", status, &body);
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
}
