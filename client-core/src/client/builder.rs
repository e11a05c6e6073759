//! [`HubConnectionBuilder`]: the settings of a connection.

use super::connection::HubConnection;
use super::error::{BoxError, Error, Result};
use super::runtime::{BoxFuture, MaybeSend, MaybeSync, Runtime, Shell};
use super::transmit::TokenFactory;
use crate::reconnect::ListReconnectPolicy;
use crate::{Config, Duration, Protocol, ReconnectPolicy, TransportKind, TransportSet};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

/// Builds a [`HubConnection`] for the shell `S`; every setting has the reference client's
/// default, then the shell's ([`Shell::configure`]).
///
/// A shell exports it with its own shell filled in (the tokio shell as
/// `talkback::HubConnectionBuilder`):
///
/// ```
/// use talkback_core::client::{HubConnectionBuilder, Shell};
/// use talkback_core::Protocol;
///
/// fn chat<S: Shell>() -> HubConnectionBuilder<S> {
///     HubConnectionBuilder::<S>::new("http://localhost:5000/hubs/chat")
///         .with_automatic_reconnect()
///         .with_protocol(Protocol::MessagePack)
/// }
/// ```
pub struct HubConnectionBuilder<S> {
    config: Config,
    reconnect_policy_set: bool,
    errors: Vec<String>,
    token_factory: Option<TokenFactory>,
    log_message_content: bool,
    runtime: Option<Arc<dyn Runtime>>,
    shell: PhantomData<fn() -> S>,
}

impl<S> std::fmt::Debug for HubConnectionBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnectionBuilder")
            .field("config", &self.config)
            .field("errors", &self.errors)
            .field("token_factory", &self.token_factory.is_some())
            .field("log_message_content", &self.log_message_content)
            .finish_non_exhaustive()
    }
}

impl<S: Shell> HubConnectionBuilder<S> {
    /// A builder for the hub at `url` (`http(s)://host/path`; `ws(s)://` with
    /// [`HubConnectionBuilder::skip_negotiation`]).
    pub fn new(url: impl Into<String>) -> Self {
        let mut config = Config::new(url);
        S::configure(&mut config);
        HubConnectionBuilder {
            config,
            reconnect_policy_set: false,
            errors: Vec::new(),
            token_factory: None,
            log_message_content: false,
            runtime: None,
            shell: PhantomData,
        }
    }

    /// Runs the connection on `runtime` instead of the shell's ([`Shell::runtime`]): a test's
    /// scripted runtime, say.
    pub fn with_runtime(mut self, runtime: Arc<dyn Runtime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    fn set_policy(mut self, policy: Box<dyn ReconnectPolicy>) -> Self {
        if self.reconnect_policy_set {
            self.errors
                .push("A reconnectPolicy has already been set.".into());
        }
        self.reconnect_policy_set = true;
        self.config.reconnect_policy = Some(policy);
        self
    }

    /// Reconnects automatically after 0, 2, 10 and 30 seconds, then gives up.
    pub fn with_automatic_reconnect(self) -> Self {
        self.set_policy(Box::new(ListReconnectPolicy::default()))
    }

    /// Reconnects automatically after each of `delays`, then gives up.
    pub fn with_automatic_reconnect_delays(self, delays: Vec<Duration>) -> Self {
        self.set_policy(Box::new(ListReconnectPolicy::new(delays)))
    }

    /// Reconnects automatically as `policy` decides (a closure `|context| Some(delay)` works,
    /// and so do the policies of [`crate::reconnect`]).
    pub fn with_reconnect_policy(self, policy: impl ReconnectPolicy) -> Self {
        self.set_policy(Box::new(policy))
    }

    /// Asks for stateful reconnect: a dropped WebSocket is reopened transparently and no
    /// message is lost or duplicated.
    pub fn with_stateful_reconnect(mut self) -> Self {
        self.config.stateful_reconnect = true;
        self
    }

    /// Stateful reconnect with a buffer of `bytes` unacknowledged bytes (default 100,000).
    pub fn with_stateful_reconnect_buffer_size(mut self, bytes: usize) -> Self {
        self.config.stateful_reconnect = true;
        self.config.stateful_reconnect_buffer_size = bytes;
        self
    }

    /// Calls `factory` for a bearer token before every negotiate (and after a 401).
    ///
    /// The factory and its futures need not be `Send` on `wasm32`.
    ///
    /// ```
    /// # use talkback_core::client::{HubConnectionBuilder, Shell};
    /// fn with_token<S: Shell>(builder: HubConnectionBuilder<S>) -> HubConnectionBuilder<S> {
    ///     builder.with_access_token_factory(|| async { Ok("token".to_string()) })
    /// }
    /// ```
    pub fn with_access_token_factory<F, Fut>(mut self, factory: F) -> Self
    where
        F: Fn() -> Fut + MaybeSend + MaybeSync + 'static,
        Fut: Future<Output = std::result::Result<String, BoxError>> + MaybeSend + 'static,
    {
        let factory: TokenFactory = Arc::new(move || -> BoxFuture<_> {
            let fut = factory();
            Box::pin(async move { fut.await.map(Some).map_err(|e| e.to_string()) })
        });
        self.token_factory = Some(factory);
        self.config.has_access_token_factory = true;
        self
    }

    /// The hub protocol (default JSON).
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// The transports the client may use (default all, in the server's order).
    pub fn with_transports(mut self, transports: TransportSet) -> Self {
        self.config.transports = transports;
        self
    }

    /// Connects straight over WebSockets without negotiating (requires WebSockets as the only
    /// transport; the connection id is then unknown).
    pub fn skip_negotiation(mut self, skip: bool) -> Self {
        self.config.skip_negotiation = skip;
        self
    }

    /// A header sent on every HTTP request and on the WebSocket upgrade.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.push((name.into(), value.into()));
        self
    }

    /// Send a Ping after this long without sending (default 15 s).
    pub fn with_keep_alive_interval(mut self, interval: Duration) -> Self {
        self.config.keep_alive_interval = interval;
        self
    }

    /// Close when nothing arrives from the server for this long (default 30 s).
    pub fn with_server_timeout(mut self, timeout: Duration) -> Self {
        self.config.server_timeout = timeout;
        self
    }

    /// The timeout of negotiate, POST send and DELETE requests (default 100 s).
    pub fn with_http_timeout(mut self, timeout: Duration) -> Self {
        self.config.http_timeout = timeout;
        self
    }

    /// How long opening a transport and the handshake may take before the client closes it and
    /// tries the next transport (default 15 s; `start` then fails once every transport did).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// The largest message accepted from the server, in bytes (default 1 MiB).
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Whether trace logs include message payloads (default off).
    pub fn log_message_content(mut self, enabled: bool) -> Self {
        self.log_message_content = enabled;
        self
    }

    /// Checks the settings and makes the connection (in the Disconnected state).
    pub fn build(self) -> Result<HubConnection> {
        if let Some(e) = self.errors.first() {
            return Err(Error::Config(e.clone()));
        }
        let url = crate::hub_url::normalize(&self.config.url)
            .and_then(|url| crate::hub_url::split(&url).map(|parts| parts.scheme()))
            .map_err(|e| Error::Config(format!("Cannot resolve '{}': {e}", self.config.url)))?;
        match url.as_str() {
            "http" | "https" => {}
            "ws" | "wss" if self.config.skip_negotiation => {}
            "ws" | "wss" => {
                return Err(Error::Config(
                    "a ws:// or wss:// URL needs skip_negotiation(true)".into(),
                ))
            }
            other => {
                return Err(Error::Config(format!(
                    "unsupported URL scheme '{other}' (use http, https, ws or wss)"
                )))
            }
        }
        if self.config.skip_negotiation
            && self.config.transports != TransportSet::only(TransportKind::WebSockets)
        {
            return Err(Error::Config(
                crate::negotiate::SKIP_NEGOTIATION_REQUIRES_WEBSOCKETS.into(),
            ));
        }
        if self.config.transports.0 & TransportSet::ALL.0 == 0 {
            return Err(Error::Config("no transport is enabled".into()));
        }
        for (name, value) in &self.config.headers {
            if !is_header_name(name) || !is_header_value(value) {
                return Err(Error::Config(format!("invalid header '{name}'")));
            }
        }
        let runtime = self.runtime.unwrap_or_else(S::runtime);
        Ok(HubConnection::new(
            runtime,
            self.config,
            self.token_factory,
            self.log_message_content,
        ))
    }
}

/// An HTTP header name: one or more token characters (RFC 9110, section 5.6.2).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header value: no control characters but tab (what the `http` crate accepts).
fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t')
}
