//! Starting: negotiate with redirects and tokens, the walk over the server's transports,
//! opening a transport, the handshake.

use super::*;
use crate::connection::link::Link;
use crate::connection::{Event, HttpEvent, HttpMethod, HttpRequest, RequestId, State, Transmit};
use crate::error::{ConnectFailure, TransportFailure, TransportFailureKind};
use crate::negotiate::{self, NegotiateResponse, MAX_REDIRECTS};
use crate::protocol::{HandshakeRequest, HandshakeResponse, HubMessage, TransferFormat};
use crate::stateful::MessageBuffer;
use crate::transport::TransportKind;
use crate::{Error, Instant};
use bytes::Bytes;

/// A transport the walk skipped, with the kind its reason names.
fn skipped(s: &negotiate::SkippedTransport) -> TransportFailure {
    let kind = if s.reason.ends_with(" is disabled by the client.") {
        TransportFailureKind::Disabled
    } else if s.reason.starts_with("Skipping transport ") {
        TransportFailureKind::Unsupported
    } else {
        TransportFailureKind::Format
    };
    TransportFailure {
        transport: s.transport.clone(),
        kind,
        reason: s.reason.clone(),
    }
}

impl Connection {
    pub(super) fn begin_attempt(&mut self, now: Instant) {
        if !self.config.has_access_token_factory {
            // A redirect's token from an earlier connection is not for the first negotiate.
            self.token = None;
        }
        self.attempt = Some(Box::new(Attempt {
            url: self.config.url.clone(),
            redirects: 0,
            pinned_token: None,
            transports: None,
            next_transport: 0,
            pending_kind: None,
            negotiated: None,
            failures: Vec::new(),
            step: Step::Transport,
        }));
        if self.config.skip_negotiation {
            if self.config.transports != crate::TransportSet::only(TransportKind::WebSockets) {
                let text = negotiate::SKIP_NEGOTIATION_REQUIRES_WEBSOCKETS.into();
                self.fail_attempt(now, Error::Usage(text));
                return;
            }
            let url = negotiate::websocket_url(&self.config.url);
            self.open_transport(now, TransportKind::WebSockets, url);
        } else {
            self.negotiate(now);
        }
    }

    pub(super) fn negotiate(&mut self, now: Instant) {
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

    pub(super) fn fetch_token(&mut self, purpose: TokenFor) {
        if self.token_waiters.is_empty() {
            self.transmits.push_back(Transmit::FetchAccessToken);
        }
        self.token_waiters.push(purpose);
    }

    pub(super) fn send_negotiate(&mut self, now: Instant) {
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

    pub(super) fn on_negotiate(&mut self, now: Instant, id: RequestId, event: HttpEvent) {
        if self.attempt.as_ref().map(|a| &a.step) != Some(&Step::Negotiate(id)) {
            return;
        }
        let failed = |text: String| {
            let mut failure = ConnectFailure::new(negotiate::negotiation_failed_message(&text));
            failure.negotiate = true;
            Error::Connect(failure)
        };
        let body = match event {
            HttpEvent::Response { status: 200, body } => body,
            HttpEvent::Response { status, body } => {
                let text = negotiate::unexpected_status_message(status, &body);
                let mut failure = ConnectFailure::new(negotiate::negotiation_failed_message(&text));
                failure.negotiate = true;
                failure.status = Some(status);
                failure.status_text = crate::http_status::body_excerpt(&body);
                return self.fail_attempt(now, Error::Connect(failure));
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
                    let text = negotiate::REDIRECT_LIMIT_EXCEEDED;
                    return self.fail_attempt(now, Error::Connect(ConnectFailure::new(text)));
                }
                attempt.url = url;
                if access_token.is_some() {
                    attempt.pinned_token = access_token;
                }
                self.negotiate(now);
            }
            NegotiateResponse::Connection(connection) => {
                if connection.use_stateful_reconnect && !self.stateful_requested {
                    let mut failure =
                        ConnectFailure::new(negotiate::UNREQUESTED_STATEFUL_RECONNECT);
                    failure.negotiate = true;
                    return self.fail_attempt(now, Error::Connect(failure));
                }
                let Some(attempt) = self.attempt.as_mut() else {
                    return;
                };
                if attempt.transports.is_none() {
                    attempt.transports = Some(connection.available_transports.clone());
                }
                attempt.negotiated = Some(connection);
                match attempt.pending_kind.take() {
                    Some(kind) => self.open_negotiated(now, kind),
                    None => self.try_next_transport(now),
                }
            }
        }
    }

    /// Walks the server's transports in order from where the last try stopped.
    pub(super) fn try_next_transport(&mut self, now: Instant) {
        let format = self.config.protocol.transfer_format();
        loop {
            let Some(attempt) = self.attempt.as_mut() else {
                return;
            };
            let transports = attempt.transports.as_deref().unwrap_or_default();
            let Some(entry) = transports.get(attempt.next_transport) else {
                let texts: Vec<String> = attempt
                    .failures
                    .iter()
                    .map(|f| negotiate::transport_failed_message(&f.transport, &f.reason))
                    .collect();
                let mut failure = ConnectFailure::new(negotiate::unable_to_connect_message(&texts));
                failure.transports = std::mem::take(&mut attempt.failures);
                return self.fail_attempt(now, Error::Connect(failure));
            };
            attempt.next_transport += 1;
            let choice = negotiate::choose_transports(
                std::slice::from_ref(entry),
                self.config.transports,
                format,
            );
            let Some(&kind) = choice.candidates.first() else {
                attempt.failures.extend(choice.skipped.iter().map(skipped));
                continue;
            };
            if attempt.negotiated.is_some() {
                return self.open_negotiated(now, kind);
            }
            // The previous connection token was used up by a failed transport.
            attempt.pending_kind = Some(kind);
            return self.negotiate(now);
        }
    }

    pub(super) fn open_negotiated(&mut self, now: Instant, kind: TransportKind) {
        let Some(attempt) = self.attempt.as_ref() else {
            return;
        };
        let Some(negotiated) = attempt.negotiated.as_ref() else {
            return;
        };
        let url = negotiate::connect_url(&attempt.url, &negotiated.connection_token);
        self.open_transport(now, kind, url);
    }

    pub(super) fn open_transport(&mut self, now: Instant, kind: TransportKind, url: String) {
        // The reference client's Debug line, word for word.
        tracing::debug!("Selecting transport '{}'.", kind.name());
        if let Some(attempt) = self.attempt.as_mut() {
            attempt.step = Step::Transport;
        }
        // Opening the transport and the handshake together get one deadline, so a proxy that
        // holds a request open without answering cannot hold `start` forever.
        self.timers.handshake = Some(now + self.config.handshake_timeout);
        // Only the HTTP transports send to the connect URL later (POSTs, polls).
        let link_url = match kind {
            TransportKind::WebSockets => String::new(),
            _ => url.clone(),
        };
        let mut link = Link::new(
            kind,
            link_url,
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
                // Kept for a stateful re-attach (let go once the handshake shows there is none).
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
    pub(super) fn transport_opened(&mut self, now: Instant) {
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
    pub(super) fn transport_failed(&mut self, now: Instant, message: String) {
        self.drop_link();
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        if self.config.skip_negotiation {
            return self.fail_attempt(now, Error::Connect(ConnectFailure::new(message)));
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
        attempt.failures.push(TransportFailure {
            transport: name,
            kind: TransportFailureKind::Failed,
            reason: message,
        });
        attempt.negotiated = None;
        self.try_next_transport(now);
    }

    pub(super) fn on_handshake_response(&mut self, now: Instant, record: &[u8]) -> bool {
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
    pub(super) fn connected(&mut self, now: Instant) {
        let Some(attempt) = self.attempt.take() else {
            return;
        };
        if attempt.pinned_token.is_some() {
            // A redirect's token serves the whole connection (the POST sends of SSE and long
            // polling too, which Azure SignalR authenticates), as the reference client does.
            self.token = attempt.pinned_token;
        }
        self.timers.handshake = None;
        let negotiated = attempt.negotiated;
        self.connection_id = negotiated.as_ref().map(|n| n.connection_id.clone());
        let kind = self.link.as_ref().map(|l| l.kind);
        let stateful = negotiated
            .as_ref()
            .is_some_and(|n| n.use_stateful_reconnect)
            && kind == Some(TransportKind::WebSockets);
        self.stateful = stateful.then(|| {
            Box::new(MessageBuffer::new(
                self.config.stateful_reconnect_buffer_size,
            ))
        });
        if !stateful {
            // Without stateful reconnect there is no re-attach to open the socket again for.
            if let Some(link) = self.link.as_mut() {
                link.ws_target = None;
            }
        }
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
        // Negotiation and opening grew the queues and maps; a connection may then stay idle
        // for long, so they give back the room they no longer need once drained.
        self.trim_when_drained = true;
    }

    /// A start or reconnect attempt failed.
    pub(super) fn fail_attempt(&mut self, now: Instant, error: Error) {
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

    /// The transport did not open and finish the handshake in time: close it and try the next
    /// one, as after a transport that failed to open.
    pub(super) fn handshake_timed_out(&mut self, now: Instant) {
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        attempt.step = Step::Transport;
        // As u64: formatting a u128 costs the browser build its own routine.
        let ms = u64::try_from(self.config.handshake_timeout.as_millis()).unwrap_or(u64::MAX);
        let text = format!("The transport did not open and complete the handshake within {ms} ms.");
        self.timers.server = None;
        self.close_link();
        self.transport_failed(now, text);
    }

    /// Forgets the attempt in progress and whatever it had open.
    pub(super) fn abandon_attempt(&mut self) {
        self.timers.handshake = None;
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
}
