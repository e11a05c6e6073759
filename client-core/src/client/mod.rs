//! The runtime-agnostic client: what the tokio and browser shells share above the engine.
//!
//! Written once against [`Runtime`]; a shell supplies the runtime (and its defaults, through
//! [`Shell`]) and nothing else.
//!
//! | module | role |
//! |---|---|
//! | `builder` | [`HubConnectionBuilder`]: the settings, checked, then a [`HubConnection`] |
//! | `connection` | [`HubConnection`]: the async API; it turns calls into commands |
//! | `commands` | the messages between the API and the driver, and the state the API reads |
//! | `driver` | the driver task: one `poll_fn` that feeds the engine and drains it |
//! | `transmit` | performing the engine's transmits through the [`Runtime`] |
//! | `pending` | who waits for what: replies, stream items and dispatches, with backpressure |
//! | `handlers` | the handler registry and the dispatcher task that runs handlers in order |
//! | `stream` | [`HubStream`] |
//!
//! # Ordering and backpressure
//!
//! Every queue between the network and the application is bounded, so a slow application
//! slows the server down instead of growing memory:
//!
//! - Server invocations and the `on_close`/`on_reconnecting`/`on_reconnected` callbacks are
//!   handed, in arrival order, to one dispatcher task per connection through a queue of
//!   [`DISPATCH_QUEUE`] entries. `on` handlers run there one after another. When a handler is
//!   slow and the queue is full, the driver stops reading the transport (it keeps running timers
//!   and commands); the socket's receive buffer fills and TCP backpressure reaches the server.
//! - Client-result handlers (`on_result`) run as their own tasks, at most
//!   [`MAX_CONCURRENT_CLIENT_RESULTS`] at once, so they may call the server themselves.
//! - Each stream buffers a few dozen items; a consumer that does not poll its [`HubStream`]
//!   holds back reading in the same way.
//! - Calls (`invoke`, `send`, upload items) go through a bounded command queue and wait while
//!   the WebSocket writer is behind or while stateful reconnect's buffer of unacknowledged
//!   messages is full. `start`, `stop` and stream cancellation use a separate queue that is
//!   never held back.

/// `dyn $fn + Send + Sync` on native targets, `dyn $fn` on `wasm32` (see [`MaybeSend`]).
#[cfg(not(target_arch = "wasm32"))]
macro_rules! shared_fn {
    ($($t:tt)*) => { dyn $($t)* + Send + Sync };
}
#[cfg(target_arch = "wasm32")]
macro_rules! shared_fn {
    ($($t:tt)*) => { dyn $($t)* };
}

mod builder;
mod commands;
mod connection;
mod driver;
mod error;
mod handlers;
mod pending;
pub mod runtime;
mod stream;
mod transmit;

pub use crate::error::{ConnectFailure, TransportFailure, TransportFailureKind};
pub use builder::HubConnectionBuilder;
pub use connection::{HubConnection, UploadItem, STOP_ORDER_WAIT};
pub use error::{BoxError, ConnectionError, Error, Result};
pub use handlers::{HandlerId, DISPATCH_QUEUE, MAX_CONCURRENT_CLIENT_RESULTS};
pub use runtime::{
    BoxFuture, BoxSink, BoxStream, MaybeSend, MaybeSync, Outgoing, Runtime, Shell, SocketClosed,
    WebSocket, WebSocketRequest,
};
pub use stream::HubStream;
