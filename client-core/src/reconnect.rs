//! Reconnect policies (docs/protocol/client.md, "Automatic reconnect"): the default delays,
//! custom lists, and exponential backoff with jitter from a caller-seeded generator.

use crate::Duration;

/// What a policy is told before each reconnect attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryContext {
    /// How many attempts were made so far in this reconnect.
    pub previous_retry_count: u32,
    /// Time since the connection was lost.
    pub elapsed: Duration,
    /// Why the connection was lost.
    pub retry_reason: String,
}

/// Decides the delay before each reconnect attempt; `None` stops reconnecting.
pub trait ReconnectPolicy: Send + 'static {
    /// The delay before the next attempt, or `None` to give up.
    fn next_retry_delay(&mut self, context: &RetryContext) -> Option<Duration>;
}

// The built-in policies can move into a connection's driver task: checked at compile time.
const _: () = {
    const fn policy<P: ReconnectPolicy>() {}
    policy::<ListReconnectPolicy>();
    policy::<ExponentialBackoff>();
};

/// The default policy's delays: 0, 2, 10 and 30 seconds, then stop.
pub const DEFAULT_RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(0),
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Waits the listed delays in order, then stops; [`ListReconnectPolicy::default`] is the
/// reference client's 0, 2, 10, 30 seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListReconnectPolicy {
    delays: Vec<Duration>,
}

/// The reference client's default policy (0, 2, 10, 30 s, then stop).
pub type DefaultReconnectPolicy = ListReconnectPolicy;

impl ListReconnectPolicy {
    /// A policy that waits `delays[n]` before attempt `n`, then stops.
    pub fn new(delays: impl Into<Vec<Duration>>) -> Self {
        ListReconnectPolicy {
            delays: delays.into(),
        }
    }

    /// The delays of this policy.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }
}

impl Default for ListReconnectPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_RETRY_DELAYS.to_vec())
    }
}

impl ReconnectPolicy for ListReconnectPolicy {
    fn next_retry_delay(&mut self, context: &RetryContext) -> Option<Duration> {
        usize::try_from(context.previous_retry_count)
            .ok()
            .and_then(|i| self.delays.get(i).copied())
    }
}

impl<F> ReconnectPolicy for F
where
    F: FnMut(&RetryContext) -> Option<Duration> + Send + 'static,
{
    fn next_retry_delay(&mut self, context: &RetryContext) -> Option<Duration> {
        self(context)
    }
}

/// How [`ExponentialBackoff`] randomizes its delays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// `min(max, base * 2^n)` exactly.
    None,
    /// Uniform in `[0, min(max, base * 2^n)]`.
    Full,
    /// AWS "decorrelated": `min(max, uniform(base, previous * 3))`.
    Decorrelated,
}

/// Exponential backoff with optional jitter from a caller-seeded generator: the same seed gives
/// the same delays.
#[derive(Clone, Debug)]
pub struct ExponentialBackoff {
    base: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
    jitter: Jitter,
    rng: fastrand::Rng,
    previous: Duration,
}

impl ExponentialBackoff {
    /// Delays `base * 2^n` capped at `max_delay`, no jitter, no attempt or time limit.
    pub fn new(base: Duration, max_delay: Duration) -> Self {
        ExponentialBackoff {
            base,
            max_delay,
            max_attempts: None,
            max_elapsed: None,
            jitter: Jitter::None,
            rng: fastrand::Rng::with_seed(0),
            previous: base,
        }
    }

    /// Uses `jitter`, drawing from a generator seeded with `seed`.
    pub fn with_jitter(mut self, jitter: Jitter, seed: u64) -> Self {
        self.jitter = jitter;
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// Stops after `attempts` attempts.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Stops once `elapsed` has passed since the connection was lost.
    pub fn with_max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = Some(elapsed);
        self
    }

    fn uniform(&mut self, low: Duration, high: Duration) -> Duration {
        let low_ns = u64::try_from(low.as_nanos()).unwrap_or(u64::MAX);
        let high_ns = u64::try_from(high.as_nanos()).unwrap_or(u64::MAX);
        if high_ns <= low_ns {
            return low;
        }
        Duration::from_nanos(self.rng.u64(low_ns..=high_ns))
    }
}

impl ReconnectPolicy for ExponentialBackoff {
    fn next_retry_delay(&mut self, context: &RetryContext) -> Option<Duration> {
        if self
            .max_attempts
            .is_some_and(|max| context.previous_retry_count >= max)
        {
            return None;
        }
        if self.max_elapsed.is_some_and(|max| context.elapsed >= max) {
            return None;
        }
        if context.previous_retry_count == 0 {
            self.previous = self.base;
        }
        let capped = self
            .base
            .checked_mul(
                1u32.checked_shl(context.previous_retry_count.min(31))
                    .unwrap_or(u32::MAX),
            )
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let delay = match self.jitter {
            Jitter::None => capped,
            Jitter::Full => self.uniform(Duration::ZERO, capped),
            Jitter::Decorrelated => {
                let high = self.previous.saturating_mul(3);
                let drawn = self.uniform(self.base, high);
                drawn.min(self.max_delay)
            }
        };
        self.previous = delay;
        Some(delay)
    }
}
