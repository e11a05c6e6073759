//! Reconnect policies (`protocol.md` 3.2): the default delays, custom lists, and exponential
//! backoff with jitter from a caller-seeded generator.

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
