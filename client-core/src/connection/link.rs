//! The transport under a connection: which kind, its URL, its requests in flight, the POST send
//! queue of the HTTP transports, and the receive-side framing (handshake, then hub messages).

use super::RequestId;
use crate::protocol::{Framer, Protocol, TextFramer};
use crate::sse::SseParser;
use crate::transport::TransportKind;

/// One transport, from the moment the core asks to open it until it is closed.
pub(super) struct Link {
    /// WebSockets, SSE or long polling.
    pub kind: TransportKind,
    /// The connect URL in its `http(s)` form (`...?id=<token>`) for the HTTP transports, which
    /// send to it; empty for WebSockets.
    pub url: String,
    /// The WebSocket URL and upgrade headers, kept for a stateful re-attach.
    pub ws_target: Option<(String, Vec<(String, String)>)>,
    /// The transport is open (WebSocket opened, SSE head received, first poll answered).
    pub opened: bool,
    /// The SSE stream request, or the long poll in flight.
    pub receive: Option<RequestId>,
    /// SSE framing.
    pub sse: SseParser,
    /// Long-poll cache-buster counter.
    pub polls: u64,
    /// The poll in flight was sent with a token fetched after a 401 (a second 401 is final).
    pub poll_after_refresh: bool,
    /// Bytes waiting for the next POST (SSE and long polling).
    pub post_queue: Vec<u8>,
    /// Operations whose bytes are in `post_queue`.
    pub post_ops: Vec<u64>,
    /// The POST in flight.
    pub post_in_flight: Option<RequestId>,
    /// `stop()` is draining the POST queue before closing.
    pub closing: bool,
    /// The handshake response has been read.
    pub handshake_done: bool,
    /// A stateful re-attach whose server has not yet sent anything: closing now means the
    /// session is not there (refused or closed at once), so it counts as a failed re-attach.
    pub reattach_unconfirmed: bool,
    /// Framing of the handshake response (always JSON text records).
    pub handshake: TextFramer,
    /// Framing of hub messages.
    pub framer: Framer,
}

impl Link {
    pub(super) fn new(
        kind: TransportKind,
        url: String,
        protocol: Protocol,
        max_message: usize,
    ) -> Self {
        Link {
            kind,
            url,
            ws_target: None,
            opened: false,
            receive: None,
            sse: SseParser::with_max_event_size(max_message.saturating_add(64)),
            polls: 0,
            poll_after_refresh: false,
            post_queue: Vec::new(),
            post_ops: Vec::new(),
            post_in_flight: None,
            closing: false,
            handshake_done: false,
            reattach_unconfirmed: false,
            handshake: TextFramer::new(max_message),
            framer: protocol.framer(max_message),
        }
    }

    /// Whether the transport keeps the connection alive by itself (long polling): no pings, no
    /// server timeout.
    pub(super) fn inherent_keep_alive(&self) -> bool {
        self.kind == TransportKind::LongPolling
    }

    /// The next long-poll URL (`&_=<n>` cache buster).
    pub(super) fn next_poll_url(&mut self) -> String {
        self.polls += 1;
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}_={}", self.url, self.polls)
    }
}
