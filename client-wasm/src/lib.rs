//! `talkback-wasm`: the browser shell of Talkback (WebSocket, fetch and timers from the
//! browser driving the `talkback-core` engine). Its shell and the npm package `talkback-signalr`
//! come with the browser work; today this crate only proves that the core builds for
//! `wasm32-unknown-unknown` alongside it.

pub use talkback_core as core;
