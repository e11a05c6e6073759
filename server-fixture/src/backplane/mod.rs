//! Scale-out over Redis, speaking ASP.NET Core's backplane protocol
//! (`Microsoft.AspNetCore.SignalR.StackExchangeRedis`), so fixture nodes and ASP.NET Core
//! servers can share one Redis.
//!
//! * [`protocol`]: the envelopes (invocations, group commands, acks, client-result
//!   completions), pure and bounded.
//! * [`channels`]: the channel names, `{prefix}{Hub}:all` and the rest.
//! * `redis_fanout`: `RedisFanOut`, the `FanOut` (the fixture's fan-out seam) of a node in a cluster: it
//!   delivers to its own connections at once (through a wrapped `LocalFanOut`) and publishes
//!   every send that may concern other nodes; what other nodes publish reaches the local
//!   connections through one pattern subscription.
//!
//! Failure behaviour (docs/backplane.md): Redis unreachable at start is an error
//! ([`crate::spawn`] fails with `ConnectionRefused` and the reason); Redis lost while running
//! keeps local fan-out working, counts and logs every cross-node send that fails, and
//! reconnects the subscription with backoff (100 ms doubling to 5 s).

pub mod channels;
pub mod protocol;
mod redis_fanout;

pub(crate) use redis_fanout::{connect, Connected, RedisFanOut};

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How a fixture joins a Redis backplane ([`crate::Config::redis`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Prepended to every channel name as it is (StackExchange.Redis' `ChannelPrefix`;
    /// default empty).
    pub prefix: String,
    /// The channel name of a hub, by the hub's path name (`test` → `Contoso.TestHub`): ASP.NET
    /// Core names a hub's channels after its .NET type. A hub not listed uses its path name.
    pub hub_names: Vec<(String, String)>,
    /// How long adding or removing a connection held by another node waits for that node's
    /// ack (default 30 s, the reference's `AckHandler` threshold).
    pub ack_timeout: Duration,
    /// This node's server name, where acks and client results come back (default
    /// `{host}_{random hex}`, as the reference's `GenerateServerName`).
    pub server_name: Option<String>,
    /// The most publishes waiting for Redis (default 65 536); a send that finds the queue full
    /// still reaches local connections and is counted as dropped for other nodes.
    pub publish_queue: usize,
    /// How often this node writes its figures (connections, messages) to Redis and reads the
    /// other nodes' for the cluster gauges of `/metrics` (default 5 s); each node's figures
    /// expire after three intervals (at least 1 s), so a node that died drops out.
    pub report_interval: Duration,
}

impl RedisConfig {
    /// A backplane on the Redis at `url`, with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: String::new(),
            hub_names: Vec::new(),
            ack_timeout: Duration::from_secs(30),
            server_name: None,
            publish_queue: 65_536,
            report_interval: Duration::from_secs(5),
        }
    }

    /// Sets the channel prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Names the channels of hub `hub` (its path name) after `channel_name`.
    pub fn with_hub_name(
        mut self,
        hub: impl Into<String>,
        channel_name: impl Into<String>,
    ) -> Self {
        self.hub_names.push((hub.into(), channel_name.into()));
        self
    }

    /// Sets the ack timeout.
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets how often the node's figures are written to Redis and the cluster's read.
    pub fn with_report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = interval;
        self
    }

    /// Parses `hub=ChannelName` (the `--redis-hub-name` option).
    pub fn parse_hub_name(spec: &str) -> Result<(String, String), String> {
        match spec.split_once('=') {
            Some((hub, name)) if !hub.is_empty() && !name.is_empty() && !name.contains(':') => {
                Ok((hub.to_owned(), name.to_owned()))
            }
            _ => Err(format!(
                "'{spec}' is not HUB=CHANNEL_NAME (a non-empty name without ':')"
            )),
        }
    }

    /// The channel name of the hub whose path name is `hub`. A hub not listed uses its name,
    /// with `:` written as `/` (channel names split at `:`; the Azure service mode names its
    /// serverless hubs `azure:{hub}`, and no hub name holds a `/`, a URL path separator).
    pub(crate) fn channel_name<'a>(&'a self, hub: &'a str) -> Cow<'a, str> {
        match self
            .hub_names
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(hub))
        {
            Some((_, name)) => Cow::Borrowed(name),
            None if hub.contains(':') => Cow::Owned(hub.replace(':', "/")),
            None => Cow::Borrowed(hub),
        }
    }

    /// The hub path name whose channels are named `channel_name` (the inverse of
    /// [`Self::channel_name`]).
    pub(crate) fn hub_for<'a>(&'a self, channel_name: &'a str) -> Cow<'a, str> {
        match self.hub_names.iter().find(|(_, name)| name == channel_name) {
            Some((hub, _)) => Cow::Borrowed(hub),
            None if channel_name.contains('/') => Cow::Owned(channel_name.replace('/', ":")),
            None => Cow::Borrowed(channel_name),
        }
    }
}

/// Why a fixture could not join its backplane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The configuration is wrong (a bad URL): the operator's fault.
    #[error("invalid Redis URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis did not answer: the environment's fault.
    #[error("cannot reach Redis at {url}: {reason}")]
    Unreachable {
        /// The URL given.
        url: String,
        /// The client's error.
        reason: String,
    },
}

impl From<BackplaneError> for std::io::Error {
    fn from(e: BackplaneError) -> Self {
        let kind = match e {
            BackplaneError::InvalidUrl { .. } => std::io::ErrorKind::InvalidInput,
            BackplaneError::Unreachable { .. } => std::io::ErrorKind::ConnectionRefused,
        };
        std::io::Error::new(kind, e)
    }
}

/// A snapshot of a node's backplane counters ([`crate::Server::backplane_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// The subscription to Redis is up.
    pub connected: bool,
    /// Payloads published.
    pub published: u64,
    /// Publishes that Redis refused or that failed (Redis down).
    pub publish_failures: u64,
    /// Publishes dropped because the publish queue was full.
    pub publish_dropped: u64,
    /// Payloads received from other nodes on this node's channels (own echoes excluded).
    pub received: u64,
    /// Received payloads that were malformed (logged and dropped).
    pub malformed: u64,
    /// Times the subscription was lost.
    pub connection_losses: u64,
    /// Times the subscription was restored after a loss.
    pub reconnects: u64,
    /// Group changes for connections on other nodes that no node acknowledged in time.
    pub ack_timeouts: u64,
    /// Nodes whose figures this node read from Redis last time (itself included; 0 before
    /// the first read).
    pub cluster_nodes: u64,
    /// Live connections across those nodes.
    pub cluster_connections: u64,
}

/// One node's figures, as it writes them to Redis (JSON in `{prefix}talkback:node:{server}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct NodeFigures {
    /// The node's server name (taken from the key when read).
    #[serde(skip)]
    pub server: String,
    /// Live connections that finished the handshake.
    pub connections: u64,
    /// Hub messages received from clients.
    pub messages_received: u64,
    /// Hub messages sent to clients.
    pub messages_sent: u64,
}

/// The live counters behind [`BackplaneStats`]; every change wakes the waiters.
#[derive(Debug)]
pub(crate) struct Stats {
    connected: AtomicBool,
    published: AtomicU64,
    publish_failures: AtomicU64,
    publish_dropped: AtomicU64,
    received: AtomicU64,
    malformed: AtomicU64,
    connection_losses: AtomicU64,
    reconnects: AtomicU64,
    ack_timeouts: AtomicU64,
    /// The figures of every node read last time, sorted by server name.
    cluster: parking_lot::Mutex<Vec<NodeFigures>>,
    changes: tokio::sync::watch::Sender<u64>,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Published,
    PublishFailure,
    PublishDropped,
    Received,
    Malformed,
    ConnectionLoss,
    Reconnect,
    AckTimeout,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            connected: AtomicBool::new(false),
            published: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            publish_dropped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            connection_losses: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            ack_timeouts: AtomicU64::new(0),
            cluster: parking_lot::Mutex::new(Vec::new()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Stats {
    pub(crate) fn bump(&self, counter: Counter) {
        let cell = match counter {
            Counter::Published => &self.published,
            Counter::PublishFailure => &self.publish_failures,
            Counter::PublishDropped => &self.publish_dropped,
            Counter::Received => &self.received,
            Counter::Malformed => &self.malformed,
            Counter::ConnectionLoss => &self.connection_losses,
            Counter::Reconnect => &self.reconnects,
            Counter::AckTimeout => &self.ack_timeouts,
        };
        cell.fetch_add(1, Ordering::Relaxed);
        self.changed();
    }

    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
        self.changed();
    }

    /// Replaces the cluster's figures (waking waiters only when they changed).
    pub(crate) fn set_cluster(&self, mut nodes: Vec<NodeFigures>) {
        nodes.sort_by(|a, b| a.server.cmp(&b.server));
        let mut cluster = self.cluster.lock();
        if *cluster != nodes {
            *cluster = nodes;
            drop(cluster);
            self.changed();
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn snapshot(&self) -> BackplaneStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (cluster_nodes, cluster_connections) = {
            let cluster = self.cluster.lock();
            (
                cluster.len() as u64,
                cluster.iter().map(|n| n.connections).sum(),
            )
        };
        BackplaneStats {
            connected: self.connected.load(Ordering::SeqCst),
            published: get(&self.published),
            publish_failures: get(&self.publish_failures),
            publish_dropped: get(&self.publish_dropped),
            received: get(&self.received),
            malformed: get(&self.malformed),
            connection_losses: get(&self.connection_losses),
            reconnects: get(&self.reconnects),
            ack_timeouts: get(&self.ack_timeouts),
            cluster_nodes,
            cluster_connections,
        }
    }

    /// The counters in the Prometheus text format, appended to `/metrics`.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = self.snapshot();
        let _ = write!(
            out,
            "# HELP talkback_backplane_connected Whether this node's Redis subscription is up.\n\
             # TYPE talkback_backplane_connected gauge\ntalkback_backplane_connected {}\n",
            u8::from(s.connected)
        );
        let counters = [
            ("published", "Payloads published to Redis.", s.published),
            (
                "publish_failures",
                "Publishes that failed (cross-node sends lost while Redis is down).",
                s.publish_failures,
            ),
            (
                "publish_dropped",
                "Publishes dropped because the publish queue was full.",
                s.publish_dropped,
            ),
            (
                "received",
                "Payloads received from other nodes.",
                s.received,
            ),
            (
                "malformed",
                "Received payloads that were malformed and dropped.",
                s.malformed,
            ),
            (
                "connection_losses",
                "Times the Redis subscription was lost.",
                s.connection_losses,
            ),
            (
                "reconnects",
                "Times the Redis subscription was restored.",
                s.reconnects,
            ),
            (
                "ack_timeouts",
                "Group changes on other nodes not acknowledged in time.",
                s.ack_timeouts,
            ),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP talkback_backplane_{name}_total {help}\n\
                 # TYPE talkback_backplane_{name}_total counter\n\
                 talkback_backplane_{name}_total {value}\n"
            );
        }
        self.render_cluster(out);
    }

    /// The cluster gauges: totals over every node seen in Redis, then each node's figures
    /// (labelled with its server name).
    fn render_cluster(&self, out: &mut String) {
        use std::fmt::Write as _;
        let nodes = self.cluster.lock().clone();
        let sum = |f: fn(&NodeFigures) -> u64| nodes.iter().map(f).sum::<u64>();
        let totals = [
            (
                "nodes",
                "Nodes of the cluster whose figures are in Redis (this one included).",
                nodes.len() as u64,
            ),
            (
                "connections",
                "Live connections across the cluster.",
                sum(|n| n.connections),
            ),
            (
                "messages_received",
                "Hub messages received from clients across the cluster (the nodes' counters summed).",
                sum(|n| n.messages_received),
            ),
            (
                "messages_sent",
                "Hub messages sent to clients across the cluster (the nodes' counters summed).",
                sum(|n| n.messages_sent),
            ),
        ];
        for (name, help, value) in totals {
            let _ = write!(
                out,
                "# HELP talkback_cluster_{name} {help}\n\
                 # TYPE talkback_cluster_{name} gauge\n\
                 talkback_cluster_{name} {value}\n"
            );
        }
        let per_node: [(&str, &str, Figure); 3] = [
            ("connections", "Live connections of each node.", |n| {
                n.connections
            }),
            (
                "messages_received",
                "Hub messages each node received from clients.",
                |n| n.messages_received,
            ),
            (
                "messages_sent",
                "Hub messages each node sent to clients.",
                |n| n.messages_sent,
            ),
        ];
        for (name, help, value) in per_node {
            let _ = write!(
                out,
                "# HELP talkback_cluster_node_{name} {help}\n\
                 # TYPE talkback_cluster_node_{name} gauge\n"
            );
            for node in &nodes {
                let _ = writeln!(
                    out,
                    "talkback_cluster_node_{name}{{node=\"{}\"}} {}",
                    label_value(&node.server),
                    value(node)
                );
            }
        }
    }
}

/// Reads one figure of a node.
type Figure = fn(&NodeFigures) -> u64;

/// A Prometheus label value: backslash, double quote and line feed escaped.
fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names_map_to_channel_names_and_back_with_colons_as_slashes() {
        let config = RedisConfig::new("redis://x").with_hub_name("test", "Contoso.TestHub");
        for (hub, channel) in [
            ("test", "Contoso.TestHub"),
            ("chat", "chat"),
            ("azure:feed", "azure/feed"),
        ] {
            assert_eq!(config.channel_name(hub), channel);
            assert_eq!(config.hub_for(channel), hub);
        }
        assert_eq!(config.channel_name("TEST"), "Contoso.TestHub");
    }
}
