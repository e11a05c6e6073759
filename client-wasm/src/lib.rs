//! `talkback-wasm`: the browser shell of Talkback.
//!
//! `BrowserRuntime` implements `talkback_core::client::Runtime` with what a browser (a page
//! or a Web Worker) provides: `WebSocket`, `fetch` with `AbortController`, `setTimeout` and the
//! JavaScript event loop. The client layer of `talkback-core` (builder, `HubConnection`, the
//! driver loop) runs on top of it, exactly as it runs on tokio in the native shell.
//!
//! On `wasm32`, `BrowserRuntime` is also a `Shell`, so `HubConnectionBuilder` (the core's
//! builder with the browser's defaults) gives the API of the native `talkback` crate in the
//! browser: `on`, `on_result`, `invoke`, `send`, `stream`, uploads from any `Stream`,
//! `on_close`/`on_reconnecting`/`on_reconnected`, automatic and stateful reconnect, an access
//! token factory. A Leptos, Yew or Dioxus front end uses it directly:
//!
//! ```ignore
//! use talkback_wasm::{HubConnectionBuilder, HubConnectionBuilderExt, Protocol};
//!
//! let conn = HubConnectionBuilder::new("/hubs/chat") // resolved against the page
//!     .with_automatic_reconnect()
//!     .with_protocol(Protocol::MessagePack)
//!     .with_credentials(true)
//!     .build()?;
//! conn.on("ReceiveMessage", |(user, text): (String, String)| log(&user, &text));
//! conn.start().await?;
//! let sum: i64 = conn.invoke("Add", (1, 2)).await?;
//! ```
//!
//! The runtime, the shell and the builder exist only when compiling for `wasm32`; on other
//! targets this crate is the re-export of the core and of its client types.
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

#[cfg(all(target_arch = "wasm32", feature = "js-api"))]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod runtime;
#[cfg(target_arch = "wasm32")]
mod shell;
mod user_agent;
#[cfg(target_arch = "wasm32")]
mod websocket;

#[cfg(target_arch = "wasm32")]
pub use http::MAX_RESPONSE_BODY;
#[cfg(target_arch = "wasm32")]
pub use runtime::BrowserRuntime;
#[cfg(target_arch = "wasm32")]
pub use shell::HubConnectionBuilderExt;
pub use user_agent::{node_user_agent, user_agent};

/// Builds a [`HubConnection`] in the browser ([`BrowserRuntime`] and its defaults: see the
/// `Shell` implementation); every other setting has the reference client's default.
#[cfg(target_arch = "wasm32")]
pub type HubConnectionBuilder = talkback_core::client::HubConnectionBuilder<BrowserRuntime>;

pub use talkback_core::client::{
    BoxError, ConnectionError, Error, HandlerId, HubConnection, HubStream, Result, DISPATCH_QUEUE,
    MAX_CONCURRENT_CLIENT_RESULTS,
};
pub use talkback_core::protocol::RawValue;
pub use talkback_core::{
    Protocol, ReconnectPolicy, RetryContext, State, TransportKind, TransportSet,
};

/// Reconnect policies (re-exported from `talkback_core::reconnect`): the reference client's
/// delay list, custom lists, closures `|context| Some(delay)`, and exponential backoff with
/// seeded jitter.
pub mod reconnect {
    pub use talkback_core::reconnect::*;
}
