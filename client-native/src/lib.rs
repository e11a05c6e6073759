//! `talkback`: the SignalR client for tokio.
//!
//! It speaks the ASP.NET Core SignalR protocol over WebSockets, Server-Sent Events and long
//! polling, with the JSON and MessagePack hub protocols, automatic and stateful reconnect,
//! streams both ways and client results. All protocol logic lives in the sans-IO
//! [`talkback_core`] engine, and the async API above it ([`HubConnection`], the driver task
//! that feeds the engine, handlers, streams) in [`talkback_core::client`], shared with the
//! browser client. This crate is the tokio shell: [`TokioRuntime`] supplies tasks, tokio's
//! clock and timers, HTTP requests (reqwest, rustls) and WebSockets (tokio-tungstenite), and
//! the `talkback` command-line tool (feature `cli`).
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
//!
//! ```no_run
//! use futures::StreamExt;
//! use talkback::{HubConnectionBuilder, Protocol};
//!
//! # async fn demo() -> talkback::Result<()> {
//! let conn = HubConnectionBuilder::new("http://localhost:5000/hubs/chat")
//!     .with_automatic_reconnect()
//!     .with_protocol(Protocol::MessagePack)
//!     .build()?;
//! conn.on("ReceiveMessage", |(user, text): (String, String)| println!("{user}: {text}"));
//! conn.start().await?;
//! let sum: i64 = conn.invoke("Add", (1, 2)).await?;
//! conn.send("Send", ("me", "hi")).await?;
//! let mut items = conn.stream::<i64>("Counter", (10, 0)).await?;
//! while let Some(item) = items.next().await {
//!     println!("{}", item?);
//! }
//! conn.stop().await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "azure")]
pub mod azure;
mod handshake;
mod http;
pub mod reconnect;
mod runtime;
mod user_agent;
mod websocket;

#[cfg(test)]
mod io_tests;

pub use runtime::TokioRuntime;
pub use talkback_core::client::{
    BoxError, ConnectionError, Error, HandlerId, HubConnection, HubStream, Result, DISPATCH_QUEUE,
    MAX_CONCURRENT_CLIENT_RESULTS,
};
pub use user_agent::user_agent;

/// Builds a [`HubConnection`] on tokio ([`TokioRuntime`]); every setting has the reference
/// client's default.
///
/// ```no_run
/// # async fn demo() -> talkback::Result<()> {
/// use talkback::{HubConnectionBuilder, Protocol};
/// let conn = HubConnectionBuilder::new("http://localhost:5000/hubs/chat")
///     .with_automatic_reconnect()
///     .with_protocol(Protocol::MessagePack)
///     .build()?;
/// conn.start().await?;
/// let sum: i64 = conn.invoke("Add", (1, 2)).await?;
/// # Ok(()) }
/// ```
pub type HubConnectionBuilder = talkback_core::client::HubConnectionBuilder<TokioRuntime>;

pub use talkback_core::protocol::RawValue;
pub use talkback_core::{
    Protocol, ReconnectPolicy, RetryContext, State, TransportKind, TransportSet,
};
