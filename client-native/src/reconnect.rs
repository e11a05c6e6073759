//! Reconnect policies (re-exported from [`talkback_core::reconnect`]): the reference client's
//! delay list, custom lists, closures `|context| Some(delay)`, and exponential backoff with
//! seeded jitter.

pub use talkback_core::reconnect::*;
