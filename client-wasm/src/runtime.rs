//! [`BrowserRuntime`]: the `Runtime` of the browser shell.

use crate::js;
use talkback_core::client::{BoxFuture, BoxStream, Runtime, WebSocket, WebSocketRequest};
use talkback_core::{HttpEvent, HttpRequest, Instant};

/// The IO and time of a browser page or Web Worker, for the client layer of `talkback-core`.
///
/// - tasks run on the JavaScript event loop (`wasm_bindgen_futures::spawn_local`);
/// - the clock is `performance.now()` (`web_time::Instant`), timers are `setTimeout`;
/// - WebSockets are the global `WebSocket` (`binaryType = "arraybuffer"`);
/// - HTTP is the global `fetch` with an `AbortController`, streamed for Server-Sent Events.
///
/// It holds no connection state: a clone, or a new one, behaves the same.
#[derive(Clone, Debug)]
pub struct BrowserRuntime {
    credentials: bool,
}

impl Default for BrowserRuntime {
    fn default() -> Self {
        BrowserRuntime { credentials: true }
    }
}

impl BrowserRuntime {
    /// A runtime that sends cookies with every request (`credentials: "include"`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether HTTP requests carry the browser's cookies and HTTP authentication to other
    /// origins: `true` (the default) sends them with `credentials: "include"`, `false` with
    /// `"same-origin"`. This is the official JavaScript client's `withCredentials` option. (A
    /// WebSocket always carries the cookies of its own origin; browsers offer no choice.)
    pub fn with_credentials(mut self, include: bool) -> Self {
        self.credentials = include;
        self
    }

    /// See [`BrowserRuntime::with_credentials`].
    pub fn credentials(&self) -> bool {
        self.credentials
    }
}

impl Runtime for BrowserRuntime {
    fn spawn(&self, task: BoxFuture<()>) {
        wasm_bindgen_futures::spawn_local(task);
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            // `setTimeout` and `performance.now()` are separate clocks with coarse resolution:
            // check the deadline again after the timer and wait for the rest if it is early.
            loop {
                let now = Instant::now();
                if now >= deadline {
                    return;
                }
                js::sleep(deadline - now).await;
            }
        })
    }

    fn http(&self, request: HttpRequest) -> BoxStream<HttpEvent> {
        crate::http::perform(request, self.credentials)
    }

    fn websocket(&self, request: WebSocketRequest) -> WebSocket {
        crate::websocket::open(request)
    }
}
