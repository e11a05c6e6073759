//! `talkback-wasm`: the browser shell of Talkback.
//!
//! `BrowserRuntime` implements `talkback_core::client::Runtime` with what a browser (a page
//! or a Web Worker) provides: `WebSocket`, `fetch` with `AbortController`, `setTimeout` and the
//! JavaScript event loop. The client layer of `talkback-core` (builder, `HubConnection`, the
//! driver loop) runs on top of it, exactly as it runs on tokio in the native shell.
//!
//! The runtime exists only when compiling for `wasm32`; on other targets this crate is just
//! the re-export of the core.
//!
//! Browser rules the runtime follows:
//! - `WebSocket` and `fetch` are looked up on the global object (`globalThis`) each time a
//!   socket or request is made, never captured when the module loads, so applications and
//!   tests can wrap or polyfill them, and so the runtime works in a Web Worker (no `window`).
//! - A browser cannot set headers on a WebSocket; the engine puts the access token in the
//!   query for browsers, and the runtime ignores `WebSocketRequest::headers`.
//! - Cookies go along with every HTTP request by default (`credentials: "include"`, the
//!   official client's `withCredentials: true`); see `BrowserRuntime::with_credentials`.

pub use talkback_core as core;

#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod runtime;
#[cfg(target_arch = "wasm32")]
mod websocket;

#[cfg(target_arch = "wasm32")]
pub use http::MAX_RESPONSE_BODY;
#[cfg(target_arch = "wasm32")]
pub use runtime::BrowserRuntime;
