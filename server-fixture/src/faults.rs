//! Fault injection: server-wide faults ([`Faults`], reached through [`crate::Server::faults`])
//! and per-connection faults ([`ConnectionFaults`], reached through
//! [`crate::Server::connection_faults`]), or over HTTP through the admin endpoints.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};
use talkback_core::transport::{TransportKind, TransportSet};

/// Server-wide faults.
#[derive(Debug, Default)]
pub struct Faults {
    refused_at_negotiate: AtomicU8,
    refused_at_connect: AtomicU8,
    refuse_new_until: Mutex<Option<Instant>>,
    pings_stopped: AtomicBool,
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
        *self.refuse_new_until.lock() = Some(Instant::now() + period);
    }

    /// Stops (or resumes) keep-alive Pings to every connection.
    pub fn stop_pings(&self, stop: bool) {
        self.pings_stopped.store(stop, Ordering::SeqCst);
    }

    pub(crate) fn pings_stopped(&self) -> bool {
        self.pings_stopped.load(Ordering::SeqCst)
    }

    /// Clears every server-wide fault.
    pub fn reset(&self) {
        self.pings_stopped.store(false, Ordering::SeqCst);
        self.refused_at_negotiate.store(0, Ordering::SeqCst);
        self.refused_at_connect.store(0, Ordering::SeqCst);
        *self.refuse_new_until.lock() = None;
    }

    pub(crate) fn negotiate_refuses(&self, kind: TransportKind) -> bool {
        TransportSet(self.refused_at_negotiate.load(Ordering::SeqCst)).contains(kind)
    }

    pub(crate) fn connect_refuses(&self, kind: TransportKind) -> bool {
        TransportSet(self.refused_at_connect.load(Ordering::SeqCst)).contains(kind)
    }

    /// When the current refusal of new connections ends (`None`: not refusing).
    pub fn refusing_new_until(&self) -> Option<Instant> {
        let until = *self.refuse_new_until.lock();
        until.filter(|t| Instant::now() < *t)
    }

    pub(crate) fn refusing_new(&self) -> bool {
        matches!(*self.refuse_new_until.lock(), Some(t) if Instant::now() < t)
    }
}

fn set_bit(bits: &AtomicU8, kind: TransportKind, on: bool) {
    if on {
        bits.fetch_or(kind.bit(), Ordering::SeqCst);
    } else {
        bits.fetch_and(!kind.bit(), Ordering::SeqCst);
    }
}

/// Faults of one connection (set through [`crate::ConnectionFaultsHandle`]).
#[derive(Debug)]
pub(crate) struct ConnectionFaults {
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
    /// Fires once: the counter then stays at 0 (disarmed) until `drop_after` is called again, so
    /// a stateful connection's next socket is not dropped as well.
    pub(crate) fn count_message(&self) -> bool {
        self.drop_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                (left > 0).then_some(left - 1)
            })
            .is_ok_and(|left| left == 1)
    }

    pub(crate) fn pings_stopped(&self) -> bool {
        self.pings_stopped.load(Ordering::SeqCst)
    }

    /// Drops the transport once `n` more outgoing messages have gone out (0 disarms).
    pub(crate) fn drop_after(&self, n: u64) {
        self.drop_after
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Stops (or resumes) keep-alive Pings.
    pub(crate) fn stop_pings(&self, stop: bool) {
        self.pings_stopped.store(stop, Ordering::SeqCst);
    }

    /// Delays every outgoing message by `delay` (zero: no delay).
    pub(crate) fn delay_messages(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    pub(crate) fn delay(&self) -> Option<Duration> {
        match self.delay_ms.load(Ordering::SeqCst) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}
