//! Transport kinds and the set a client allows (docs/protocol/transport.md, "Transport
//! selection and fallback").

/// One of the three SignalR transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// WebSockets (bit 1).
    WebSockets,
    /// Server-Sent Events (bit 2).
    ServerSentEvents,
    /// Long polling (bit 4).
    LongPolling,
}

impl TransportKind {
    /// The name used in negotiate responses.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::WebSockets => "WebSockets",
            TransportKind::ServerSentEvents => "ServerSentEvents",
            TransportKind::LongPolling => "LongPolling",
        }
    }

    /// The transport with this negotiate name, if known.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "WebSockets" => Some(TransportKind::WebSockets),
            "ServerSentEvents" => Some(TransportKind::ServerSentEvents),
            "LongPolling" => Some(TransportKind::LongPolling),
            _ => None,
        }
    }

    /// The `HttpTransportType` bit.
    pub fn bit(self) -> u8 {
        match self {
            TransportKind::WebSockets => 1,
            TransportKind::ServerSentEvents => 2,
            TransportKind::LongPolling => 4,
        }
    }
}

/// A set of transports, as the `HttpTransportType` bitmask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransportSet(pub u8);

impl TransportSet {
    /// All three transports.
    pub const ALL: TransportSet = TransportSet(7);

    /// Only `kind`.
    pub fn only(kind: TransportKind) -> Self {
        TransportSet(kind.bit())
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: TransportKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The set with `kind` added.
    pub fn with(self, kind: TransportKind) -> Self {
        TransportSet(self.0 | kind.bit())
    }
}

impl Default for TransportSet {
    fn default() -> Self {
        TransportSet::ALL
    }
}
