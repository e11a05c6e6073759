//! `talkback-core`: the sans-IO SignalR protocol engine.
//!
//! No sockets, no clock, no runtime, no randomness of its own. A shell (native tokio, browser)
//! feeds it inputs carrying the current time and drains its outputs:
//!
//! - inputs: [`Connection::start`], [`Connection::handle_http`], [`Connection::handle_websocket`],
//!   [`Connection::handle_access_token`], [`Connection::handle_timeout`], user commands such as
//!   [`Connection::invoke`];
//! - outputs, drained after every input until both are empty: [`Connection::poll_transmit`]
//!   (HTTP requests, WebSocket operations, token fetches) and [`Connection::poll_event`] (state
//!   changes, server invocations, call results); then [`Connection::poll_timeout`] (the next
//!   deadline).
//!
//! [`Connection`] spells out the run-loop contract with an example; `docs/architecture.md`
//! shows how the crates fit together.
//!
//! The wire format ([`protocol`]) and negotiate types ([`negotiate`]) are also what the
//! `talkback-fixture` server speaks, so there is one implementation of the format.

#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "client")]
pub mod client;
pub mod connection;
pub mod error;
pub mod http_status;
pub mod hub_url;
pub(crate) mod json_text;
pub mod negotiate;
pub mod protocol;
pub mod reconnect;
pub mod sse;
pub mod stateful;
pub mod transport;

pub use connection::{
    ClientResult, Config, Connection, Event, HttpEvent, HttpMethod, HttpRequest, RequestId, State,
    Transmit, WebSocketEvent,
};
pub use error::Error;
pub use protocol::{HubMessage, Protocol, RawValue, TransferFormat};
pub use reconnect::{ReconnectPolicy, RetryContext};
pub use transport::{TransportKind, TransportSet};
pub use web_time::{Duration, Instant};

// The unit tests also run in headless Chromium (`cargo test --target wasm32-unknown-unknown`).
#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
