//! The fixture's metrics and their text form (`GET /metrics`), on `prometheus-client` (the
//! Prometheus project's Rust client): counters, gauges and a histogram in one registry per
//! fixture (fixtures in one test process stay apart), updated where the events happen (the
//! session, the connection's command queue, the fan-out seam) and encoded on each scrape.
//!
//! The text is prometheus-client's OpenMetrics exposition without its closing `# EOF` line, so
//! that more families can follow (the Redis backplane's), served as the Prometheus text format
//! 0.0.4: the two agree on everything used here (counters are exposed with `_total`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;
use talkback_core::protocol::Protocol;
use talkback_core::transport::TransportKind;

const TRANSPORTS: [TransportKind; 3] = [
    TransportKind::WebSockets,
    TransportKind::ServerSentEvents,
    TransportKind::LongPolling,
];
const PROTOCOLS: [Protocol; 2] = [Protocol::Json, Protocol::MessagePack];

/// Why a connection that finished its handshake ended (the `reason` label of
/// `talkback_disconnects_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DisconnectReason {
    /// The client closed its transport or sent a Close message.
    ClientClosed,
    /// Hub code closed the connection (a Close message was sent).
    ServerClosed,
    /// Nothing arrived within the client timeout (long polling: no poll within the disconnect
    /// timeout), or the client read nothing while its queue was full past that deadline.
    ClientTimeout,
    /// The client broke the protocol (bad framing or message, a message over the size limit,
    /// a flood of calls); the Close message carries the reason.
    ProtocolError,
    /// Aborted without a Close message: a fault, `CloseMe`, a slow consumer whose queue was
    /// full, a replay buffer over its bound.
    Aborted,
    /// A stateful-reconnect connection whose client did not come back within the window.
    ReconnectWindowExpired,
    /// The fixture shut down.
    Shutdown,
}

impl DisconnectReason {
    const ALL: [DisconnectReason; 7] = [
        DisconnectReason::ClientClosed,
        DisconnectReason::ServerClosed,
        DisconnectReason::ClientTimeout,
        DisconnectReason::ProtocolError,
        DisconnectReason::Aborted,
        DisconnectReason::ReconnectWindowExpired,
        DisconnectReason::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            DisconnectReason::ClientClosed => "client_closed",
            DisconnectReason::ServerClosed => "server_closed",
            DisconnectReason::ClientTimeout => "client_timeout",
            DisconnectReason::ProtocolError => "protocol_error",
            DisconnectReason::Aborted => "aborted",
            DisconnectReason::ReconnectWindowExpired => "reconnect_window_expired",
            DisconnectReason::Shutdown => "shutdown",
        }
    }
}

/// A kind of error (the `kind` label of `talkback_errors_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A handshake refused, malformed or not sent within the handshake timeout.
    Handshake,
    /// A client message that broke the protocol (the connection was closed).
    Protocol,
    /// A hub invocation refused (unknown method, bad stream ids, an id in use) or failed.
    Invocation,
}

impl ErrorKind {
    const ALL: [ErrorKind; 3] = [
        ErrorKind::Handshake,
        ErrorKind::Protocol,
        ErrorKind::Invocation,
    ];

    fn label(self) -> &'static str {
        match self {
            ErrorKind::Handshake => "handshake",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Invocation => "invocation",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    transport: String,
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The fixture's metrics (one registry per fixture, so fixtures in one process stay apart).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Live connections that finished their handshake, by transport and protocol.
    connections: Family<ConnectionLabels, Gauge>,
    connects: Counter,
    disconnects: Family<ReasonLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    messages_received: Counter,
    messages_sent: Counter,
    bytes_received: Counter,
    bytes_sent: Counter,
    queue_full_aborts: Counter,
    fan_out_seconds: Histogram,
}

fn connection_labels(transport: TransportKind, protocol: Protocol) -> ConnectionLabels {
    ConnectionLabels {
        transport: transport.name().to_owned(),
        protocol: protocol.name().to_owned(),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("talkback");
        let connections = Family::<ConnectionLabels, Gauge>::default();
        let disconnects = Family::<ReasonLabels, Counter>::default();
        let errors = Family::<KindLabels, Counter>::default();
        // Every label value shows from the start (at 0), so a scrape sees the full set.
        for transport in TRANSPORTS {
            for protocol in PROTOCOLS {
                let _ = connections.get_or_create(&connection_labels(transport, protocol));
            }
        }
        for reason in DisconnectReason::ALL {
            let _ = disconnects.get_or_create(&ReasonLabels {
                reason: reason.label().to_owned(),
            });
        }
        for kind in ErrorKind::ALL {
            let _ = errors.get_or_create(&KindLabels {
                kind: kind.label().to_owned(),
            });
        }
        // 10 µs to about 2.6 s.
        let fan_out_seconds = Histogram::new(exponential_buckets(0.000_01, 4.0, 10));
        let metrics = Metrics {
            registry: Registry::default(),
            connections,
            connects: Counter::default(),
            disconnects,
            errors,
            messages_received: Counter::default(),
            messages_sent: Counter::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            queue_full_aborts: Counter::default(),
            fan_out_seconds,
        };
        registry.register(
            "connections",
            "Live connections that finished the handshake, by transport and hub protocol",
            metrics.connections.clone(),
        );
        registry.register(
            "connects",
            "Connections that finished the handshake",
            metrics.connects.clone(),
        );
        registry.register(
            "disconnects",
            "Connections that finished the handshake and then ended, by reason",
            metrics.disconnects.clone(),
        );
        registry.register(
            "errors",
            "Refused handshakes, protocol errors and refused or failed invocations",
            metrics.errors.clone(),
        );
        registry.register(
            "messages_received",
            "Hub messages decoded from clients, Pings included",
            metrics.messages_received.clone(),
        );
        registry.register(
            "messages_sent",
            "Hub messages handed to a transport, Pings included (stateful replays not counted again)",
            metrics.messages_sent.clone(),
        );
        registry.register(
            "received_bytes",
            "Bytes received from clients (WebSocket messages and POST bodies)",
            metrics.bytes_received.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes handed to transports (framed messages, handshake responses included)",
            metrics.bytes_sent.clone(),
        );
        registry.register(
            "queue_full_aborts",
            "Connections aborted because their outbound queue was full (slow consumers)",
            metrics.queue_full_aborts.clone(),
        );
        registry.register(
            "fan_out_seconds",
            "Time one send to other connections (all, a group, a user, a connection) takes to encode and queue the message for every receiver",
            metrics.fan_out_seconds.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// A connection finished its handshake.
    pub(crate) fn connected(&self, transport: TransportKind, protocol: Protocol) {
        self.connects.inc();
        self.connections
            .get_or_create(&connection_labels(transport, protocol))
            .inc();
    }

    /// A connection counted by [`Self::connected`] ended.
    pub(crate) fn disconnected(
        &self,
        transport: TransportKind,
        protocol: Protocol,
        reason: DisconnectReason,
    ) {
        self.disconnects
            .get_or_create(&ReasonLabels {
                reason: reason.label().to_owned(),
            })
            .inc();
        self.connections
            .get_or_create(&connection_labels(transport, protocol))
            .dec();
    }

    /// An error of `kind` happened.
    pub(crate) fn error(&self, kind: ErrorKind) {
        self.errors
            .get_or_create(&KindLabels {
                kind: kind.label().to_owned(),
            })
            .inc();
    }

    /// Bytes arrived from a client (a WebSocket message or a POST body, handshake included).
    pub(crate) fn received_bytes(&self, n: usize) {
        self.bytes_received.inc_by(n as u64);
    }

    /// A hub message (Pings included) was decoded from a client.
    pub(crate) fn received_message(&self) {
        self.messages_received.inc();
    }

    /// Bytes were handed to a transport.
    pub(crate) fn sent_bytes(&self, n: usize) {
        self.bytes_sent.inc_by(n as u64);
    }

    /// A hub message was handed to a transport (replays after a re-attach are not counted
    /// again).
    pub(crate) fn sent_message(&self) {
        self.messages_sent.inc();
    }

    /// A connection was aborted because its outbound queue was full (a slow consumer).
    pub(crate) fn queue_full_abort(&self) {
        self.queue_full_aborts.inc();
    }

    /// One fan-out send took `took` (encoding and queueing for every receiver).
    pub(crate) fn fan_out(&self, took: Duration) {
        self.fan_out_seconds.observe(took.as_secs_f64());
    }

    /// Hub messages received from clients and sent to them so far (for the figures a node
    /// publishes to the Redis backplane).
    pub(crate) fn message_totals(&self) -> (u64, u64) {
        (self.messages_received.get(), self.messages_sent.get())
    }

    /// The metrics as text (see the module docs): the OpenMetrics exposition without its
    /// closing `# EOF` line.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        if out.ends_with("# EOF\n") {
            out.truncate(out.len() - "# EOF\n".len());
        }
        out
    }
}
