//! [`FixtureConfig`]: every limit and timeout of the fixture, with the ASP.NET Core defaults.

use std::time::Duration;
use talkback_core::transport::TransportSet;

/// How the fixture listens and behaves. `Default` gives the server defaults of
/// docs/protocol/client.md, "Defaults".
///
/// **Slow consumers**: every connection has one bounded outbound queue of
/// [`outbound_queue_capacity`](Self::outbound_queue_capacity) messages. A message that finds the
/// queue full aborts that connection at once (its transport closes without a Close message and
/// the hub forgets it), so one slow peer never grows the server's memory nor slows other peers.
#[derive(Clone, Debug)]
pub struct FixtureConfig {
    /// Interface to bind (default `127.0.0.1`).
    pub host: String,
    /// Port to bind; 0 picks a free port (default 0).
    pub port: u16,
    /// How long a new transport may take to send its handshake (default 15 s).
    pub handshake_timeout: Duration,
    /// A Ping is sent after this long without sending anything (default 15 s).
    pub keep_alive_interval: Duration,
    /// A connection that sends nothing for this long is closed (default 30 s; not for long
    /// polling, whose polls are an inherent keep-alive).
    pub client_timeout: Duration,
    /// Close a connection whose client sent no message for this long (default `None`: never).
    /// Pings do not count, nor the stateful-reconnect Acks and Sequences: a client that only
    /// keeps its connection alive is idle. The Close message names the reason. An option that
    /// mimics the idle close often attributed to Azure SignalR (30 minutes), which no primary
    /// source documents (see docs/protocol/azure.md, "Limits and quotas").
    pub idle_timeout: Option<Duration>,
    /// The largest hub message accepted from a client, in bytes (default 32 KB).
    pub max_receive_message_size: usize,
    /// The largest HTTP POST body accepted for SSE and long polling sends (default 1 MiB; never
    /// less than `max_receive_message_size` plus framing). A larger body is read to its end
    /// and answered `413 Payload Too Large`.
    pub max_post_body: usize,
    /// How long a long poll waits for data before answering 200 empty (default 90 s).
    pub long_poll_timeout: Duration,
    /// Outbound queue bound per connection, in messages (default 1024); see the type docs.
    pub outbound_queue_capacity: usize,
    /// Whether negotiate may agree to stateful reconnect (default false, as ASP.NET Core).
    pub allow_stateful_reconnect: bool,
    /// How long a stateful-reconnect connection waits for its client to come back (default 30 s).
    pub reconnect_window: Duration,
    /// The most unacknowledged bytes kept for replay per connection (default 100 000).
    pub replay_buffer_bytes: usize,
    /// Whether unexpected hub errors carry their detail to the client (default false).
    pub detailed_errors: bool,
    /// The transports offered and accepted (default all three).
    pub transports: TransportSet,
    /// Lowest negotiate version accepted (default 0).
    pub min_negotiate_version: u32,
    /// A long-polling connection with no poll waiting for this long is gone (default 15 s, as
    /// ASP.NET Core's `DisconnectTimeout`).
    pub disconnect_timeout: Duration,
    /// How long an HTTP connection may take to send a request's headers, counted from when it
    /// is ready for one: after accept, and after each response on a keep-alive connection, so
    /// this is also the idle keep-alive timeout (default 30 s). A slowloris peer is cut here.
    pub header_read_timeout: Duration,
    /// A POST body that sends nothing for this long is refused with `408` and the connection's
    /// next POST is accepted (default 30 s).
    pub request_body_timeout: Duration,
    /// The most TCP connections served at once (default: the soft open-files limit less a
    /// reserve). A connection over the cap gets `503` to its first request, then is closed.
    pub max_connections: usize,
    /// Origins allowed by CORS on the hub routes, exactly as browsers send them
    /// (`https://app.example:8443`). Empty (the default): any origin except `null`; `null` is
    /// allowed only when listed. Admin routes never answer CORS.
    pub cors_origins: Vec<String>,
    /// Serve the admin (fault) endpoints under `/admin` (default true).
    pub admin_enabled: bool,
    /// When set, every admin request must carry `X-Talkback-Admin: <token>`; otherwise any
    /// non-empty `X-Talkback-Admin` value (default `None`). See the crate docs, "Admin".
    pub admin_token: Option<String>,
    /// Join a Redis backplane (scale-out across nodes, ASP.NET Core's protocol; default `None`:
    /// this node alone). See `docs/backplane.md`.
    pub redis: Option<crate::backplane::RedisConfig>,
    /// Azure SignalR Service mode (default `None`: off); see [`crate::AzureConfig`].
    pub azure: Option<crate::AzureConfig>,
    /// The folder holding the built npm package `talkback-signalr` that the browser demo at `/`
    /// loads (default `None`: `client-wasm/npm/dist` of this source tree; see `demo.rs`).
    pub demo_package_dir: Option<std::path::PathBuf>,
}

impl Default for FixtureConfig {
    fn default() -> Self {
        FixtureConfig {
            host: "127.0.0.1".into(),
            port: 0,
            handshake_timeout: Duration::from_secs(15),
            keep_alive_interval: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            idle_timeout: None,
            max_receive_message_size: 32 * 1024,
            max_post_body: 1024 * 1024,
            long_poll_timeout: Duration::from_secs(90),
            outbound_queue_capacity: 1024,
            allow_stateful_reconnect: false,
            reconnect_window: Duration::from_secs(30),
            replay_buffer_bytes: 100_000,
            detailed_errors: false,
            transports: TransportSet::ALL,
            min_negotiate_version: 0,
            disconnect_timeout: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(30),
            request_body_timeout: Duration::from_secs(30),
            max_connections: crate::serve::default_max_connections(),
            cors_origins: Vec::new(),
            admin_enabled: true,
            admin_token: None,
            redis: None,
            azure: None,
            demo_package_dir: None,
        }
    }
}
