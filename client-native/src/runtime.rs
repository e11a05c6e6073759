//! [`TokioRuntime`]: the [`Runtime`] and [`Shell`] of the tokio client.

use crate::{http, websocket};
use std::sync::{Arc, OnceLock};
use talkback_core::client::{BoxFuture, BoxStream, Runtime, Shell, WebSocket, WebSocketRequest};
use talkback_core::{Config, HttpEvent, HttpRequest, Instant};

/// The tokio runtime as a [`Runtime`]: tasks with `tokio::spawn` on the runtime current when a
/// connection makes its first call, tokio's clock and timers (so tokio's paused clock drives a
/// whole connection in virtual time), HTTP with reqwest (rustls, one shared client), WebSockets
/// with tokio-tungstenite.
///
/// As a [`Shell`] it gives connections the native defaults: the `User-Agent` header
/// ([`crate::user_agent`]), headers on the WebSocket upgrade, the access token in the
/// `Authorization` header.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn spawn(&self, task: BoxFuture<()>) {
        tokio::spawn(task);
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    }

    fn http(&self, request: HttpRequest) -> BoxStream<HttpEvent> {
        http::perform(request)
    }

    fn websocket(&self, request: WebSocketRequest) -> WebSocket {
        websocket::open(request)
    }

    fn can_spawn(&self) -> Result<(), String> {
        tokio::runtime::Handle::try_current()
            .map(|_| ())
            .map_err(|_| "no tokio runtime is running".into())
    }
}

impl Shell for TokioRuntime {
    fn runtime() -> Arc<dyn Runtime> {
        static SHARED: OnceLock<Arc<dyn Runtime>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(TokioRuntime)).clone()
    }

    fn configure(config: &mut Config) {
        config.user_agent = crate::user_agent::user_agent();
        config.user_agent_header = "User-Agent".into();
        config.headers_on_websocket = true;
        config.access_token_in_query = false;
    }
}
