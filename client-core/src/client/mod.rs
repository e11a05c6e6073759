//! The runtime-agnostic client: what the tokio and browser shells share above the engine.
//!
//! Written once against [`Runtime`]; a shell supplies the runtime and nothing else.

pub mod runtime;

pub use runtime::{
    BoxFuture, BoxSink, BoxStream, MaybeSend, MaybeSync, Outgoing, Runtime, SocketClosed,
    WebSocket, WebSocketRequest,
};
