//! The fixture's counters and their Prometheus text form (`GET /metrics`).
//!
//! Plain atomics, updated where the events happen (the session, the connection's command
//! queue), rendered on each scrape in the Prometheus text exposition format 0.0.4.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use talkback_core::protocol::Protocol;
use talkback_core::transport::TransportKind;

const TRANSPORTS: [TransportKind; 3] = [
    TransportKind::WebSockets,
    TransportKind::ServerSentEvents,
    TransportKind::LongPolling,
];
const PROTOCOLS: [Protocol; 2] = [Protocol::Json, Protocol::MessagePack];

/// The fixture's counters (one set per fixture).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Live connections that finished their handshake, by transport and protocol.
    connections: [[AtomicI64; 2]; 3],
    connects: AtomicU64,
    disconnects: AtomicU64,
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    queue_full_aborts: AtomicU64,
}

fn transport_index(kind: TransportKind) -> usize {
    match kind {
        TransportKind::WebSockets => 0,
        TransportKind::ServerSentEvents => 1,
        TransportKind::LongPolling => 2,
    }
}

fn protocol_index(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Json => 0,
        Protocol::MessagePack => 1,
    }
}

impl Metrics {
    /// A connection finished its handshake.
    pub(crate) fn connected(&self, transport: TransportKind, protocol: Protocol) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.connections[transport_index(transport)][protocol_index(protocol)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A connection counted by [`Self::connected`] ended.
    pub(crate) fn disconnected(&self, transport: TransportKind, protocol: Protocol) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
        self.connections[transport_index(transport)][protocol_index(protocol)]
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Bytes arrived from a client (a WebSocket message or a POST body, handshake included).
    pub(crate) fn received_bytes(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A hub message (Pings included) was decoded from a client.
    pub(crate) fn received_message(&self) {
        self.messages_received.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes were handed to a transport.
    pub(crate) fn sent_bytes(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A hub message was handed to a transport (replays after a re-attach are not counted
    /// again).
    pub(crate) fn sent_message(&self) {
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was aborted because its outbound queue was full (a slow consumer).
    pub(crate) fn queue_full_abort(&self) {
        self.queue_full_aborts.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str(
            "# HELP talkback_connections Live connections that finished the handshake, by transport and hub protocol.\n\
             # TYPE talkback_connections gauge\n",
        );
        for transport in TRANSPORTS {
            for protocol in PROTOCOLS {
                let value = self.connections[transport_index(transport)][protocol_index(protocol)]
                    .load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "talkback_connections{{transport=\"{}\",protocol=\"{}\"}} {}",
                    transport.name(),
                    protocol.name(),
                    value.max(0)
                );
            }
        }
        let counters: [(&str, &str, &AtomicU64); 7] = [
            (
                "talkback_connects_total",
                "Connections that finished the handshake.",
                &self.connects,
            ),
            (
                "talkback_disconnects_total",
                "Connections that finished the handshake and then ended.",
                &self.disconnects,
            ),
            (
                "talkback_messages_received_total",
                "Hub messages decoded from clients, Pings included.",
                &self.messages_received,
            ),
            (
                "talkback_messages_sent_total",
                "Hub messages handed to a transport, Pings included (stateful replays not counted again).",
                &self.messages_sent,
            ),
            (
                "talkback_received_bytes_total",
                "Bytes received from clients (WebSocket messages and POST bodies).",
                &self.bytes_received,
            ),
            (
                "talkback_sent_bytes_total",
                "Bytes handed to transports (framed messages, handshake responses included).",
                &self.bytes_sent,
            ),
            (
                "talkback_queue_full_aborts_total",
                "Connections aborted because their outbound queue was full (slow consumers).",
                &self.queue_full_aborts,
            ),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}
