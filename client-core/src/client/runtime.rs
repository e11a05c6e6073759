//! What a client shell supplies: the [`Runtime`] trait.
//!
//! The client layer above the engine (builder, `HubConnection`, handlers, streams, the loop that
//! feeds the engine and drains it) is written once against this trait. The tokio shell
//! (`talkback`) implements it with tokio, tokio-tungstenite and reqwest; the browser shell
//! (`talkback-wasm`) with web-sys `WebSocket`, `fetch` and timers. A shell implements this (and
//! [`Shell`], its defaults for the builder) and nothing else, plus its command-line tool or
//! JavaScript bindings.
//!
//! One clock: the client reads time only through [`Runtime::now`] and waits only through
//! [`Runtime::sleep_until`], so a runtime with virtual time (tokio's paused clock) drives the
//! whole client in virtual time.
//!
//! Futures and streams are `Send` on native targets (a `HubConnection` moves between threads)
//! and need not be on `wasm32` (browser objects are not `Send`): see [`MaybeSend`].

use crate::connection::{Config, HttpEvent, HttpRequest, WebSocketEvent};
use crate::protocol::TransferFormat;
use crate::Instant;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// `Send` on native targets; nothing on `wasm32`, where browser objects are single-threaded.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}

/// `Send` on native targets; nothing on `wasm32`, where browser objects are single-threaded.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` on native targets; nothing on `wasm32`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}

/// `Sync` on native targets; nothing on `wasm32`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// A boxed future the runtime can run (`Send` on native targets).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// A boxed future the runtime can run (`Send` on native targets).
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// A boxed stream of events (`Send` on native targets).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxStream<T> = Pin<Box<dyn futures_core::Stream<Item = T> + Send + 'static>>;
/// A boxed stream of events (`Send` on native targets).
#[cfg(target_arch = "wasm32")]
pub type BoxStream<T> = Pin<Box<dyn futures_core::Stream<Item = T> + 'static>>;

/// A boxed sink of frames for one WebSocket (`Send` on native targets).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxSink<T> = Pin<Box<dyn futures_sink::Sink<T, Error = SocketClosed> + Send + 'static>>;
/// A boxed sink of frames for one WebSocket (`Send` on native targets).
#[cfg(target_arch = "wasm32")]
pub type BoxSink<T> = Pin<Box<dyn futures_sink::Sink<T, Error = SocketClosed> + 'static>>;

/// A WebSocket to open ([`crate::Transmit::OpenWebSocket`] plus the client's limits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSocketRequest {
    /// The `ws://` or `wss://` URL.
    pub url: String,
    /// Headers for the upgrade request (empty in browsers, which cannot set them).
    pub headers: Vec<(String, String)>,
    /// The largest message to accept; a larger one closes the socket with an error.
    pub max_message_size: usize,
}

/// One thing to write on a WebSocket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// One message: a text frame for [`TransferFormat::Text`], binary otherwise.
    Frame(Bytes, TransferFormat),
    /// A normal-closure (1000) close frame; the socket then reports
    /// [`WebSocketEvent::Closed`] once the close completes (or after a bounded wait).
    Close,
}

/// The socket is gone: nothing more can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the WebSocket is closed")]
pub struct SocketClosed;

/// An open (or opening) WebSocket: its events, and a sink for what to send.
///
/// Dropping both ends closes the socket without ceremony (no close frame needed).
pub struct WebSocket {
    /// `Opened` or `Failed` first; after `Opened`, `Message`s, then one `Closed`. The stream
    /// ends after `Failed` or `Closed`.
    pub events: BoxStream<WebSocketEvent>,
    /// Frames to send, in order. `poll_ready` is the backpressure: it is pending while the
    /// socket's writer is behind. Frames sent before `Opened` wait for the socket to open.
    pub frames: BoxSink<Outgoing>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").finish_non_exhaustive()
    }
}

/// The IO and time a client shell provides.
pub trait Runtime: MaybeSend + MaybeSync + 'static {
    /// Runs `task` in the background to its end (the client's driver, its handler dispatcher,
    /// client-result handlers, access-token factories).
    fn spawn(&self, task: BoxFuture<()>);

    /// Now, on the runtime's clock.
    fn now(&self) -> Instant;

    /// Resolves once [`Runtime::now`] reaches `deadline` (at once if it has).
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;

    /// Performs `request` and yields its outcome: one [`HttpEvent::Response`] or
    /// [`HttpEvent::Failed`]; or, for a `streaming` request, [`HttpEvent::Head`], then
    /// [`HttpEvent::Chunk`]s, then one [`HttpEvent::End`] (or `Failed` before the head). The
    /// stream ends after the last event. Dropping the stream aborts the request.
    ///
    /// The runtime enforces [`HttpRequest::timeout`] and reports it as `Failed { timed_out:
    /// true, .. }`, and only it: any other failure, whatever the network said, has
    /// `timed_out: false`. Response bodies are bounded by the runtime (a body larger than it
    /// accepts is a `Failed`).
    fn http(&self, request: HttpRequest) -> BoxStream<HttpEvent>;

    /// Opens a WebSocket.
    fn websocket(&self, request: WebSocketRequest) -> WebSocket;

    /// Whether [`Runtime::spawn`] can run a task from the calling context now; the error text
    /// says why not. A connection checks it before spawning its tasks at its first call, and
    /// fails that call with [`crate::client::Error::Runtime`] instead of panicking (the tokio
    /// shell: no tokio runtime is running). The default says yes.
    fn can_spawn(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A shell's defaults for [`crate::client::HubConnectionBuilder`]: the runtime connections run
/// on, and the settings that differ by platform (user agent and where it goes, whether headers
/// reach the WebSocket upgrade, where the access token goes).
///
/// Implemented on a marker type; `HubConnectionBuilder<Shell>` then builds connections for that
/// shell (the tokio shell exports `type HubConnectionBuilder = ...<TokioRuntime>`).
pub trait Shell: 'static {
    /// The runtime a new connection runs on (unless the builder is given another one).
    fn runtime() -> Arc<dyn Runtime>;

    /// Sets the shell's defaults on a new connection's configuration (default: none).
    fn configure(config: &mut Config) {
        let _ = config;
    }
}
