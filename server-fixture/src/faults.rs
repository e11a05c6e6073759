//! Fault injection: server-wide faults ([`Faults`]) and per-connection faults
//! ([`ConnectionFaults`]), set from tests through [`crate::FixtureHandle`] or the admin endpoint.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use talkback_core::transport::{TransportKind, TransportSet};

/// Server-wide faults.
#[derive(Debug, Default)]
pub struct Faults {
    refused_at_negotiate: AtomicU8,
    refused_at_connect: AtomicU8,
    refuse_new_until: Mutex<Option<Instant>>,
}

impl Faults {
    /// Leaves `kind` out of negotiate responses (`refuse = false` offers it again).
    pub fn refuse_at_negotiate(&self, kind: TransportKind, refuse: bool) {
        set_bit(&self.refused_at_negotiate, kind, refuse);
    }

    /// Answers transport requests of `kind` with 404 "transport not supported".
    pub fn refuse_at_connect(&self, kind: TransportKind, refuse: bool) {
        set_bit(&self.refused_at_connect, kind, refuse);
    }

    /// Refuses new connections (negotiate and connection-less WebSockets answer 503) for `period`.
    pub fn refuse_new_connections(&self, period: Duration) {
        *self.refuse_new_until.lock().unwrap() = Some(Instant::now() + period);
    }

    /// Clears every server-wide fault.
    pub fn reset(&self) {
        self.refused_at_negotiate.store(0, Ordering::SeqCst);
        self.refused_at_connect.store(0, Ordering::SeqCst);
        *self.refuse_new_until.lock().unwrap() = None;
    }

    pub(crate) fn negotiate_refuses(&self, kind: TransportKind) -> bool {
        TransportSet(self.refused_at_negotiate.load(Ordering::SeqCst)).contains(kind)
    }

    pub(crate) fn connect_refuses(&self, kind: TransportKind) -> bool {
        TransportSet(self.refused_at_connect.load(Ordering::SeqCst)).contains(kind)
    }

    pub(crate) fn refusing_new(&self) -> bool {
        matches!(*self.refuse_new_until.lock().unwrap(), Some(t) if Instant::now() < t)
    }
}

fn set_bit(bits: &AtomicU8, kind: TransportKind, on: bool) {
    if on {
        bits.fetch_or(kind.bit(), Ordering::SeqCst);
    } else {
        bits.fetch_and(!kind.bit(), Ordering::SeqCst);
    }
}

/// Faults of one connection.
#[derive(Debug)]
pub struct ConnectionFaults {
    /// Messages still allowed before the transport drops; negative = no limit.
    pub(crate) drop_after: AtomicI64,
    /// Whether keep-alive Pings are suppressed.
    pub(crate) pings_stopped: AtomicBool,
    /// Delay before each outgoing message, in milliseconds.
    pub(crate) delay_ms: AtomicU64,
}

impl Default for ConnectionFaults {
    fn default() -> Self {
        ConnectionFaults {
            drop_after: AtomicI64::new(-1),
            pings_stopped: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
        }
    }
}

impl ConnectionFaults {
    /// Called before a message goes out; `true` when the transport must drop after it.
    pub(crate) fn count_message(&self) -> bool {
        let left = self.drop_after.load(Ordering::SeqCst);
        if left < 0 {
            return false;
        }
        self.drop_after.fetch_sub(1, Ordering::SeqCst) <= 1
    }

    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.delay_ms.load(Ordering::SeqCst) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}
