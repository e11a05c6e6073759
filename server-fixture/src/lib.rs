//! `talkback-fixture`: a full SignalR service for tests.
//!
//! Hubs at `/hubs/{name}` over WebSockets, Server-Sent Events and long polling, with the JSON and
//! MessagePack hub protocols, streams both ways, client results, groups, users, stateful
//! reconnect and fault injection. It reuses `talkback-core`'s wire format, so there is one
//! implementation of the protocol on both sides.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = talkback_fixture::spawn(talkback_fixture::Config::default()).await?;
//! println!("test hub at {}", server.hub_url("test"));
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! **Users** come from the access token (`Authorization: Bearer` or the `access_token` query; the
//! header wins), read by [`user_from_token`] without checking signatures.
//!
//! **Slow consumers**: see [`Config`]: a connection whose bounded outbound queue is full is
//! aborted, so a client that does not read never grows the server's memory.
//!
//! **Faults**: server-wide through [`Server::faults`] (refuse transports or new connections,
//! stop pings), per connection through [`Server::connection_faults`] (drop or abort the
//! transport, drop after `n` messages, stop pings, delay messages).
//!
//! **Admin**: the same faults over HTTP under `/admin` (see the README). Every admin request
//! needs the `X-Talkback-Admin` header (with [`Config::admin_token`], that token) and a local
//! `Host`; admin routes answer no CORS, so a web page cannot use them; [`Config::admin_enabled`]
//! turns them off.

mod azure;
pub mod backplane;
mod config;
mod context;
mod demo;
mod fanout;
mod faults;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hub;
mod metrics;
mod queue;
mod registry;
mod routes;
mod serve;
mod session;
mod test_hub;
pub mod wire;

pub use azure::{generate_access_key, AzureConfig, NoUpstream, ServiceMode, UpstreamRule};
pub use backplane::{BackplaneError, BackplaneStats, RedisConfig};
pub use config::FixtureConfig as Config;
pub use context::{HubContext, StreamSender, UploadStream};
pub use faults::Faults;
pub use hub::{Hub, HubBuilder, HubError};
pub use registry::{user_from_token, RequestInfo};
pub use test_hub::{chat_hub, test_hub};

use registry::Shared;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use talkback_core::protocol::Protocol;
use talkback_core::transport::TransportKind;

/// What the fixture knows about one live connection (for tests; see
/// [`Server::connection_info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The public connection id.
    pub id: String,
    /// The hub's name, as registered.
    pub hub: String,
    /// The transport, once a transport request attached (`None` right after negotiate).
    pub transport: Option<TransportKind>,
    /// The hub protocol, once the handshake chose one.
    pub protocol: Option<Protocol>,
    /// The `version` of the client's handshake request, once the handshake succeeded.
    pub handshake_version: Option<u32>,
    /// Ping messages received from the client.
    pub pings_received: u64,
    /// Hub messages received from the client, Pings included.
    pub messages_received: u64,
    /// The user id from the access token, if any.
    pub user: Option<String>,
    /// A long poll of this connection is waiting for data right now (long polling only).
    pub long_poll_waiting: bool,
}

impl ConnectionInfo {
    fn of(conn: &registry::Conn) -> Self {
        ConnectionInfo {
            id: conn.id.clone(),
            hub: conn.hub.to_string(),
            transport: conn.transport.get().copied(),
            protocol: conn.protocol.get().copied(),
            handshake_version: conn.handshake_version.get().copied(),
            pings_received: conn.pings_received.load(Ordering::Relaxed),
            messages_received: conn.messages_received.load(Ordering::Relaxed),
            user: conn.user.clone(),
            long_poll_waiting: conn.poll_waiting.load(Ordering::SeqCst),
        }
    }
}

/// A running fixture; dropping it does not stop it, [`Server::shutdown`] does.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a fixture with the `test` and `chat` hubs.
pub async fn spawn(config: Config) -> std::io::Result<Server> {
    spawn_with_hubs(config, vec![test_hub(), chat_hub()]).await
}

/// Starts a fixture serving `hubs`.
pub async fn spawn_with_hubs(config: Config, hubs: Vec<Hub>) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port)).await?;
    let addr = listener.local_addr()?;
    // Redis unreachable at start is an error: a node that cannot join its cluster does not serve.
    let backplane = match &config.redis {
        Some(redis) => Some(backplane::connect(redis).await?),
        None => None,
    };
    let shared = Arc::new(Shared::with_backplane(config, hubs, backplane));
    let app = routes::router(shared.clone());
    tokio::spawn(registry::reap(
        Arc::downgrade(&shared),
        shared.reaper_wake.clone(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = shared.config.clone();
    let task = tokio::spawn(async move { serve::serve(listener, app, &config, stopped).await });
    Ok(Server {
        addr,
        shared,
        stop,
        task,
    })
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConnectionFaultsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionFaultsHandle")
            .field("connection_id", &self.conn.id)
            .finish()
    }
}

impl Server {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of a hub, `http://127.0.0.1:PORT/hubs/{name}`.
    pub fn hub_url(&self, name: &str) -> String {
        format!("{}/hubs/{name}", self.url())
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Server-wide faults (refuse transports, refuse new connections, stop all pings).
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The ids of the live connections of `hub` (every hub for `None`), sorted.
    pub fn connection_ids(&self, hub: Option<&str>) -> Vec<String> {
        let mut ids: Vec<String> = self.shared.all(hub).iter().map(|c| c.id.clone()).collect();
        ids.sort();
        ids
    }

    /// What the fixture knows about a live connection (by its public id).
    pub fn connection_info(&self, connection_id: &str) -> Option<ConnectionInfo> {
        self.shared
            .by_id(connection_id)
            .map(|conn| ConnectionInfo::of(&conn))
    }

    /// The live connections of `hub` (every hub for `None`), sorted by id.
    pub fn connections(&self, hub: Option<&str>) -> Vec<ConnectionInfo> {
        let mut all: Vec<ConnectionInfo> = self
            .shared
            .all(hub)
            .iter()
            .map(|conn| ConnectionInfo::of(conn))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Resolves once at least `n` live connections of `hub` (every hub for `None`) have
    /// completed their handshake. Woken by the fixture's own events, never by a timer: wrap
    /// it in a timeout.
    pub async fn wait_for_connections(&self, hub: Option<&str>, n: usize) -> Vec<ConnectionInfo> {
        let mut changes = self.shared.changes.subscribe();
        loop {
            changes.borrow_and_update();
            let ready: Vec<ConnectionInfo> = self
                .connections(hub)
                .into_iter()
                .filter(|c| c.handshake_version.is_some())
                .collect();
            if ready.len() >= n {
                return ready;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves with the connection's info once `ready` holds for it, woken by the
    /// connection's own events (a message received, a long poll starting or ending, the
    /// handshake); `None` if the connection is (or becomes) gone first.
    pub async fn wait_for_connection(
        &self,
        id: &str,
        ready: impl Fn(&ConnectionInfo) -> bool,
    ) -> Option<ConnectionInfo> {
        let conn = self.shared.by_id(id)?;
        let mut changes = conn.changes.subscribe();
        let mut gone = self.shared.changes.subscribe();
        loop {
            changes.borrow_and_update();
            gone.borrow_and_update();
            self.shared.by_id(id)?;
            let info = ConnectionInfo::of(&conn);
            if ready(&info) {
                return Some(info);
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = gone.changed() => {}
            }
        }
    }

    /// Resolves once the connection `id` is no longer live (at once if it never was).
    pub async fn wait_for_connection_gone(&self, id: &str) {
        let mut changes = self.shared.changes.subscribe();
        loop {
            changes.borrow_and_update();
            if self.shared.by_id(id).is_none() {
                return;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The faults of one connection, if it is live.
    pub fn connection_faults(&self, connection_id: &str) -> Option<ConnectionFaultsHandle> {
        self.shared
            .by_id(connection_id)
            .map(|conn| ConnectionFaultsHandle { conn })
    }

    /// Accepts only these access tokens from now on (`None`: any request); every other request
    /// to a hub gets 401, as when a token expires.
    pub fn set_valid_tokens(&self, tokens: Option<Vec<String>>) {
        *self.shared.valid_tokens.lock() = tokens.map(|t| t.into_iter().collect());
    }

    /// Stops gracefully: live connections get a Close message (with `allowReconnect`).
    pub async fn shutdown(self) {
        self.shared.shutdown.notify_waiters();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
        if let Some(backplane) = &self.shared.backplane {
            backplane.close().await;
        }
    }

    /// The Redis backplane's counters, when this node is in a cluster.
    pub fn backplane_stats(&self) -> Option<BackplaneStats> {
        self.shared.backplane.as_ref().map(|b| b.stats.snapshot())
    }

    /// This node's server name on the backplane (where its acks come back), if any.
    pub fn backplane_server_name(&self) -> Option<String> {
        self.shared
            .backplane
            .as_ref()
            .map(|b| b.server_name().to_owned())
    }

    /// Resolves once `ready` holds for the backplane's counters, woken by their changes (never
    /// by a timer: wrap it in a timeout); at once with `None` without a backplane.
    pub async fn wait_for_backplane(
        &self,
        ready: impl Fn(&BackplaneStats) -> bool,
    ) -> Option<BackplaneStats> {
        let backplane = self.shared.backplane.as_ref()?;
        let mut changes = backplane.stats.subscribe();
        loop {
            changes.borrow_and_update();
            let stats = backplane.stats.snapshot();
            if ready(&stats) {
                return Some(stats);
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Adds a connection of `hub` to `group`, wherever it is: with a backplane, a connection on
    /// another node is added by that node, and this returns once it acknowledged (or fails
    /// after the ack timeout), as ASP.NET Core's `Groups.AddToGroupAsync`.
    pub async fn add_to_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<(), HubError> {
        match &self.shared.backplane {
            Some(b) => b.add_to_group(hub, group, connection_id).await,
            None => {
                self.shared.fan_out.join(hub, group, connection_id);
                Ok(())
            }
        }
    }

    /// Removes a connection of `hub` from `group`, wherever it is (see [`Self::add_to_group`]).
    pub async fn remove_from_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<(), HubError> {
        match &self.shared.backplane {
            Some(b) => b.remove_from_group(hub, group, connection_id).await,
            None => {
                self.shared.fan_out.leave(hub, group, connection_id);
                Ok(())
            }
        }
    }
}

/// Faults of one live connection.
pub struct ConnectionFaultsHandle {
    conn: Arc<registry::Conn>,
}

impl ConnectionFaultsHandle {
    /// Drops the transport without a Close message (a stateful connection may re-attach).
    pub fn drop_transport(&self) {
        self.conn.drop_transport();
    }

    /// Ends the connection at once, without a Close message.
    pub fn abort(&self) {
        self.conn.abort();
    }

    /// Drops the transport after `n` more outgoing messages.
    pub fn drop_after(&self, n: u64) {
        self.conn.faults.drop_after(n);
    }

    /// Stops or resumes keep-alive Pings.
    pub fn stop_pings(&self, stop: bool) {
        self.conn.faults.stop_pings(stop);
    }

    /// Delays every outgoing message.
    pub fn delay_messages(&self, delay: std::time::Duration) {
        self.conn.faults.delay_messages(delay);
    }
}
