//! `talkback`: the SignalR client for tokio.
//!
//! It speaks the ASP.NET Core SignalR protocol over WebSockets, Server-Sent Events and long
//! polling, with the JSON and MessagePack hub protocols, automatic and stateful reconnect,
//! streams both ways and client results. All protocol logic lives in the sans-IO
//! [`talkback_core`] engine; this crate moves bytes and runs timers: one driver task per
//! connection performs the engine's HTTP requests (reqwest, rustls), WebSocket operations
//! (tokio-tungstenite) and deadlines, and the async API talks to it over channels.
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

mod builder;
mod connection;
mod driver;
mod error;
mod handlers;
mod http;
pub mod reconnect;
mod stream;
mod user_agent;
mod websocket;

#[cfg(test)]
mod io_tests;

pub use builder::HubConnectionBuilder;
pub use connection::HubConnection;
pub use error::{BoxError, ConnectionError, Error, Result};
pub use handlers::{HandlerId, DISPATCH_QUEUE, MAX_CONCURRENT_CLIENT_RESULTS};
pub use stream::HubStream;
pub use user_agent::user_agent;

pub use talkback_core::protocol::RawValue;
pub use talkback_core::{
    Protocol, ReconnectPolicy, RetryContext, State, TransportKind, TransportSet,
};
