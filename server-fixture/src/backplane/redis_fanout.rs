//! [`RedisFanOut`]: the fan-out of a node that shares a Redis with other nodes.
//!
//! **Sending.** A send to the hub, a group or a user is delivered to this node's connections at
//! once (by the wrapped [`LocalFanOut`]) and published on the audience's channel as an
//! [`Invocation`] envelope holding the message in both hub protocols, the way ASP.NET Core's
//! server writes them (`crate::wire`). A send to one connection of this node never touches
//! Redis (as the reference, which needs sticky connections); to a connection elsewhere it is
//! published on `:connection:{id}`. Publishes go through one bounded queue to a publisher task,
//! so [`FanOut::send`] never waits.
//!
//! **Receiving.** One `PSUBSCRIBE {prefix}*` serves every hub, so joining a group needs no
//! subscription and is complete when `join` returns. This node's own publications come back
//! through it; they are recognised (by channel and payload, remembered until they come back,
//! at most 30 s) and dropped, since their local delivery already happened. Everything else is
//! decoded (a malformed payload is logged, counted and dropped) and handed to the
//! [`LocalFanOut`] with the envelope's excluded ids. The reference subscribes per group, user
//! and connection instead; the wire format is the same, only this node receives more traffic
//! than it needs (the fixture is a test server, not a 100-node cluster).
//!
//! **Groups across nodes.** Adding or removing a connection this node does not hold publishes a
//! group command on `:internal:groups`; the node that holds it applies it and publishes an ack
//! on the sender's `:internal:ack:{server}`, and [`RedisFanOut::add_to_group`] returns once the
//! ack arrived, or fails after [`super::RedisConfig::ack_timeout`].
//!
//! **User-level groups (ours).** ASP.NET Core's backplane has no message for the Azure REST
//! API's user groups: a change is applied here and published on `:talkback:user-groups`
//! ([`protocol::UserGroupCommand`], with the `ttl` as milliseconds left), and every other node
//! applies it to its own connections of that user, expiring it on its own clock.
//!
//! **Cluster figures (ours).** Every [`super::RedisConfig::report_interval`] the node writes its
//! figures to `{prefix}talkback:node:{server}` (JSON, expiring after three intervals) and reads
//! every node's, for the `talkback_cluster_*` gauges of `/metrics`.
//!
//! **Redis lost.** The publisher counts and logs each failed publish (its local delivery has
//! happened already); the subscriber notices the end of its connection, counts it, and
//! reconnects with backoff (100 ms doubling to 5 s), subscribing again.

use super::channels::{self, Channels, Route};
use super::protocol::{
    self, CompletionEnvelope, GroupAction, GroupCommand, Invocation, ReturnAddress,
    UserGroupCommand,
};
use super::{BackplaneError, Counter, NodeFigures, RedisConfig, Stats};
use crate::fanout::{Audience, FanOut, LocalFanOut, Outgoing};
use crate::hub::HubError;
use crate::metrics::Metrics;
use crate::registry::{Command, Connections};
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use talkback_core::protocol::{
    Completion, CompletionResult, Decoded, HubMessage, Protocol, RawValue,
};
use tokio::sync::{mpsc, oneshot, watch};

/// The protocols every envelope carries (every protocol the fixture speaks).
const PROTOCOLS: [Protocol; 2] = [Protocol::Json, Protocol::MessagePack];
/// The largest serialized hub message taken from an envelope.
const MAX_MESSAGE_BYTES: usize = protocol::MAX_ENVELOPE_BYTES;
/// How long an own publication is remembered while it comes back from Redis.
const ECHO_WINDOW: Duration = Duration::from_secs(30);
/// The most own publications remembered at once.
const ECHO_CAPACITY: usize = 1 << 16;
/// Connecting and each command to Redis give up after this long.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection of this node may take to answer another node's client result.
const CLIENT_RESULT_LIMIT: Duration = Duration::from_secs(600);
/// Reconnect backoff of the subscription.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The most nodes read for the cluster figures.
const MAX_NODES: usize = 1000;
/// The largest figures value read (bytes); the longest server name taken from a key.
const MAX_FIGURES_BYTES: usize = 4096;
const MAX_SERVER_NAME: usize = 256;

/// A connected backplane that has not started its tasks yet (see [`connect`]).
pub(crate) struct Connected {
    config: RedisConfig,
    server: String,
    client: redis::Client,
    manager: redis::aio::ConnectionManager,
    pubsub: redis::aio::PubSub,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("url", &self.config.url)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Connects to Redis and subscribes, so that nothing published after this returns is missed.
/// Fails when Redis cannot be reached (the fixture then does not start).
pub(crate) async fn connect(config: &RedisConfig) -> Result<Connected, BackplaneError> {
    let client =
        redis::Client::open(config.url.as_str()).map_err(|e| BackplaneError::InvalidUrl {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
    let unreachable = |reason: String| BackplaneError::Unreachable {
        url: config.url.clone(),
        reason,
    };
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_response_timeout(REDIS_TIMEOUT)
        .set_number_of_retries(2)
        .set_max_delay(1000);
    let manager = tokio::time::timeout(
        REDIS_TIMEOUT * 2,
        client.get_connection_manager_with_config(manager_config),
    )
    .await
    .map_err(|_| unreachable("timed out".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    let pubsub = subscribe(&client, &config.prefix)
        .await
        .map_err(unreachable)?;
    let server = config.server_name.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "talkback".into());
        format!("{host}_{}", uuid::Uuid::new_v4().simple())
    });
    Ok(Connected {
        config: config.clone(),
        server,
        client,
        manager,
        pubsub,
    })
}

/// A new pub/sub connection subscribed to every channel under `prefix`.
async fn subscribe(client: &redis::Client, prefix: &str) -> Result<redis::aio::PubSub, String> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(channels::pattern(prefix)).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(REDIS_TIMEOUT, attempt).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

impl Connected {
    /// Starts the publisher and subscriber tasks over this node's connection store.
    pub(crate) fn start(self, connections: Arc<Connections>) -> Arc<RedisFanOut> {
        let (outbox, queue) = mpsc::channel(self.config.publish_queue.max(1));
        let (closed, _) = watch::channel(false);
        let fan = Arc::new_cyclic(|me| RedisFanOut {
            me: me.clone(),
            local: LocalFanOut::new(connections.clone()),
            connections,
            config: self.config,
            server: self.server,
            outbox,
            echoes: Mutex::new(Echoes::default()),
            acks: Mutex::new(HashMap::new()),
            next_id: AtomicI32::new(0),
            results: Mutex::new(HashMap::new()),
            next_invocation: AtomicU64::new(0),
            stats: Stats::default(),
            metrics: OnceLock::new(),
            closed,
            tasks: Mutex::new(Vec::new()),
        });
        fan.stats.set_connected(true);
        tracing::info!(server = %fan.server, url = %fan.config.url, "joined the Redis backplane");
        let publisher = tokio::spawn(publish_loop(
            fan.clone(),
            self.manager.clone(),
            queue,
            fan.closed.subscribe(),
        ));
        let subscriber = tokio::spawn(subscribe_loop(
            fan.clone(),
            self.client,
            self.manager.clone(),
            self.pubsub,
            fan.closed.subscribe(),
        ));
        let reporter = tokio::spawn(report_loop(
            fan.clone(),
            self.manager.clone(),
            fan.closed.subscribe(),
        ));
        fan.tasks.lock().extend([publisher, subscriber, reporter]);
        fan
    }
}

/// The fan-out of a node in a Redis cluster (see the module docs).
pub(crate) struct RedisFanOut {
    /// Itself, for the tasks it spawns.
    me: Weak<RedisFanOut>,
    local: LocalFanOut,
    connections: Arc<Connections>,
    config: RedisConfig,
    server: String,
    outbox: mpsc::Sender<(String, Vec<u8>)>,
    echoes: Mutex<Echoes>,
    acks: Mutex<HashMap<i32, oneshot::Sender<()>>>,
    next_id: AtomicI32,
    /// Client results this node invoked on connections of other nodes, by invocation id.
    results: Mutex<HashMap<String, oneshot::Sender<CompletionResult>>>,
    next_invocation: AtomicU64,
    pub(crate) stats: Stats,
    /// The node's metrics, for the figures it writes to Redis (see [`Self::attach_metrics`]).
    metrics: OnceLock<Weak<Metrics>>,
    closed: watch::Sender<bool>,
    /// The publisher and subscriber tasks, awaited by [`Self::close`].
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl RedisFanOut {
    /// This node's server name.
    pub(crate) fn server_name(&self) -> &str {
        &self.server
    }

    /// Stops the backplane's tasks and returns once they ended: the node leaves the cluster
    /// (its pattern subscription is dropped with a `PUNSUBSCRIBE`, at most 2 s).
    pub(crate) async fn close(&self) {
        self.closed.send_replace(true);
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            let _ = tokio::time::timeout(REDIS_TIMEOUT, task).await;
        }
        self.stats.set_connected(false);
    }

    /// Gives the node's metrics to the backplane, for the message counts it writes to Redis.
    pub(crate) fn attach_metrics(&self, metrics: &Arc<Metrics>) {
        let _ = self.metrics.set(Arc::downgrade(metrics));
    }

    /// This node's own figures now.
    fn own_figures(&self) -> NodeFigures {
        let conns = self.connections.all(None);
        let (messages_received, messages_sent) = self
            .metrics
            .get()
            .and_then(Weak::upgrade)
            .map(|m| m.message_totals())
            .unwrap_or_default();
        NodeFigures {
            server: self.server.clone(),
            connections: conns
                .iter()
                .filter(|c| c.handshake_version.get().is_some() && !c.is_closed())
                .count() as u64,
            messages_received,
            messages_sent,
        }
    }

    /// Publishes a user-level group change for the other nodes (our extension).
    fn publish_user_group(
        &self,
        hub: &str,
        action: GroupAction,
        group: Option<&str>,
        user: &str,
        expires: Option<Instant>,
    ) {
        let ttl_ms = expires.map(|at| {
            u64::try_from(at.saturating_duration_since(Instant::now()).as_millis())
                .unwrap_or(u64::MAX)
        });
        let payload = protocol::encode_user_group_command(&UserGroupCommand {
            server: self.server.clone(),
            action,
            group: group.map(str::to_owned),
            user: user.to_owned(),
            ttl_ms,
        });
        self.publish(self.channels(hub).user_groups(), payload, false);
    }

    /// Applies another node's user-level group change to this node's connections.
    fn apply_user_group(&self, hub: &str, command: UserGroupCommand) -> Result<(), String> {
        match (command.action, command.group) {
            (GroupAction::Add, Some(group)) => {
                // A ttl too far away to represent is no expiry, as the REST API reads it.
                let expires = command
                    .ttl_ms
                    .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
                self.local.join_user(hub, &group, &command.user, expires);
                Ok(())
            }
            (GroupAction::Add, None) => Err("adding a user to no group".into()),
            (GroupAction::Remove, group) => {
                self.local.leave_user(hub, group.as_deref(), &command.user);
                Ok(())
            }
            (GroupAction::Other(b), _) => Err(format!("unknown user-group action {b}")),
        }
    }

    fn channels(&self, hub: &str) -> Channels {
        Channels::new(&self.config.prefix, &self.config.channel_name(hub))
    }

    fn is_local(&self, hub: &str, connection_id: &str) -> bool {
        self.connections
            .get(connection_id)
            .is_some_and(|c| c.hub.eq_ignore_ascii_case(hub))
    }

    /// Queues a publish; `echo` remembers it so that its return from Redis is dropped.
    fn publish(&self, channel: String, payload: Vec<u8>, echo: bool) {
        let key = echo.then(|| echo_key(&channel, &payload));
        if let Some(key) = key {
            self.echoes.lock().expect(key);
        }
        if let Err(e) = self.outbox.try_send((channel, payload)) {
            if let Some(key) = key {
                self.echoes.lock().forget(key);
            }
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                self.stats.bump(Counter::PublishDropped);
                tracing::warn!("backplane publish queue full: a cross-node send was dropped");
            }
        }
    }

    /// Adds a connection of `hub`, on this node or another, to `group`. For a connection
    /// elsewhere this returns once its node acknowledged, as the reference's
    /// `AddToGroupAsync`, or fails after the ack timeout.
    pub(crate) async fn add_to_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<(), HubError> {
        self.group_action(hub, group, connection_id, GroupAction::Add)
            .await
    }

    /// Removes a connection of `hub`, on this node or another, from `group` (see
    /// [`Self::add_to_group`]).
    pub(crate) async fn remove_from_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<(), HubError> {
        self.group_action(hub, group, connection_id, GroupAction::Remove)
            .await
    }

    async fn group_action(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
        action: GroupAction,
    ) -> Result<(), HubError> {
        if self.is_local(hub, connection_id) {
            match action {
                GroupAction::Remove => self.local.leave(hub, group, connection_id),
                _ => self.local.join(hub, group, connection_id),
            }
            return Ok(());
        }
        let (id, ack) = self.send_group_command(hub, group, connection_id, action);
        match tokio::time::timeout(self.config.ack_timeout, ack).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.acks.lock().remove(&id);
                self.stats.bump(Counter::AckTimeout);
                Err(HubError::Unexpected(format!(
                    "no node acknowledged the group change of connection '{connection_id}' \
                     (group '{group}') within {:?}",
                    self.config.ack_timeout
                )))
            }
        }
    }

    /// Publishes a group command; returns its id and the receiver of its ack.
    fn send_group_command(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
        action: GroupAction,
    ) -> (i32, oneshot::Receiver<()>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let (tx, rx) = oneshot::channel();
        self.acks.lock().insert(id, tx);
        let payload = protocol::encode_group_command(&GroupCommand {
            id,
            server: self.server.clone(),
            action,
            group: group.to_owned(),
            connection_id: connection_id.to_owned(),
        });
        self.publish(self.channels(hub).group_management(), payload, false);
        (id, rx)
    }

    /// Invokes `message` on a connection of another node and waits for the client's answer (a
    /// client result across nodes): a client-result invocation on the connection's channel,
    /// answered by its node on this node's return channel. A connection that no node holds
    /// gives no answer: the call fails after `timeout`.
    pub(crate) async fn invoke_remote(
        &self,
        hub: &str,
        connection_id: &str,
        message: &Outgoing,
        timeout: Duration,
    ) -> Result<Option<RawValue>, HubError> {
        let n = self.next_invocation.fetch_add(1, Ordering::Relaxed) + 1;
        let invocation_id = format!("{}_{n}", self.server);
        let channels = self.channels(hub);
        let address = ReturnAddress {
            invocation_id: invocation_id.clone(),
            channel: channels.return_results(&self.server),
        };
        let payload = envelope_to(message, &[], Some(address))?;
        let (tx, rx) = oneshot::channel();
        self.results.lock().insert(invocation_id.clone(), tx);
        self.publish(channels.connection(connection_id), payload, true);
        let outcome = tokio::time::timeout(timeout, rx).await;
        self.results.lock().remove(&invocation_id);
        match outcome {
            Ok(Ok(CompletionResult::Value(value))) => Ok(Some(value)),
            Ok(Ok(CompletionResult::Void)) => Ok(None),
            Ok(Ok(CompletionResult::Error(text))) => Err(HubError::Hub(text)),
            Ok(Err(_)) => Err(HubError::Hub("The backplane closed.".into())),
            Err(_) => Err(HubError::Hub("The client did not answer in time.".into())),
        }
    }

    /// Invokes a client result that another node asked for on a connection of this node, and
    /// publishes the client's Completion (in the connection's protocol) to the return channel.
    fn invoke_local(&self, hub: &str, connection_id: &str, message: &Outgoing, to: ReturnAddress) {
        let Some(conn) = self
            .connections
            .get(connection_id)
            .filter(|c| c.hub.eq_ignore_ascii_case(hub))
        else {
            return;
        };
        let protocol = conn.protocol();
        let mut invocation = match message.invocation(protocol) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "a client result from another node did not encode");
                return;
            }
        };
        if let HubMessage::Invocation(inv) = &mut invocation {
            inv.invocation_id = Some(to.invocation_id.clone());
        }
        let (tx, rx) = oneshot::channel();
        conn.client_results
            .lock()
            .insert(to.invocation_id.clone(), tx);
        let answered = if conn.push(Command::Message(Box::new(invocation))) {
            None
        } else {
            conn.client_results.lock().remove(&to.invocation_id);
            Some(CompletionResult::Error("Connection disconnected.".into()))
        };
        let me = self.me.clone();
        tokio::spawn(async move {
            let result = match answered {
                Some(result) => result,
                None => match tokio::time::timeout(CLIENT_RESULT_LIMIT, rx).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => CompletionResult::Error("Connection disconnected.".into()),
                    Err(_) => {
                        conn.client_results.lock().remove(&to.invocation_id);
                        CompletionResult::Error("The client did not answer in time.".into())
                    }
                },
            };
            let completion = HubMessage::Completion(Completion {
                invocation_id: to.invocation_id,
                result,
                headers: Default::default(),
            });
            let mut serialized = Vec::new();
            crate::wire::encode_server_message(protocol, &completion, &mut serialized);
            let payload = protocol::encode_completion(&CompletionEnvelope {
                protocol: protocol.name().to_owned(),
                completion: serialized,
            });
            if let Some(fan) = me.upgrade() {
                fan.publish(to.channel, payload, false);
            }
        });
    }

    /// A Completion from another node's connection, for a client result this node invoked.
    fn complete_remote(&self, payload: &[u8]) -> Result<(), String> {
        let envelope = protocol::decode_completion(payload).map_err(|e| e.to_string())?;
        let protocol = Protocol::from_name(&envelope.protocol)
            .ok_or_else(|| format!("unknown protocol '{}'", envelope.protocol))?;
        let mut framer = protocol.framer(MAX_MESSAGE_BYTES);
        framer.push(&envelope.completion);
        let record = framer
            .next_record()
            .map_err(|e| e.to_string())?
            .ok_or("an incomplete serialized Completion")?;
        match protocol.decode(&record).map_err(|e| e.to_string())? {
            Decoded::Message(HubMessage::Completion(c)) => {
                if let Some(waiter) = self.results.lock().remove(&c.invocation_id) {
                    let _ = waiter.send(c.result);
                }
                Ok(())
            }
            _ => Err("not a Completion".into()),
        }
    }

    /// Handles one message from the subscription.
    fn on_message(&self, channel: &str, payload: &[u8]) {
        let Some((hub_channel_name, route)) = channels::parse(&self.config.prefix, channel) else {
            return;
        };
        let hub = self.config.hub_for(hub_channel_name).into_owned();
        match route {
            Route::All | Route::Group(_) | Route::Connection(_) | Route::User(_) => {
                if self.echoes.lock().take(echo_key(channel, payload)) {
                    return;
                }
                self.stats.bump(Counter::Received);
                if let Err(e) = self.deliver(&hub, route, payload) {
                    self.stats.bump(Counter::Malformed);
                    tracing::warn!(channel, error = %e, "dropped a malformed backplane message");
                }
            }
            Route::GroupManagement => match protocol::decode_group_command(payload) {
                Ok(command) => {
                    if self.is_local(&hub, &command.connection_id) {
                        self.stats.bump(Counter::Received);
                        match command.action {
                            GroupAction::Add => {
                                self.local
                                    .join(&hub, &command.group, &command.connection_id)
                            }
                            GroupAction::Remove => {
                                self.local
                                    .leave(&hub, &command.group, &command.connection_id)
                            }
                            GroupAction::Other(_) => {}
                        }
                        let ack = protocol::encode_ack(command.id);
                        self.publish(self.channels(&hub).ack(&command.server), ack, false);
                    }
                }
                Err(e) => {
                    self.stats.bump(Counter::Malformed);
                    tracing::warn!(channel, error = %e, "dropped a malformed group command");
                }
            },
            Route::Ack(server) if server == self.server => match protocol::decode_ack(payload) {
                Ok(id) => {
                    self.stats.bump(Counter::Received);
                    if let Some(waiter) = self.acks.lock().remove(&id) {
                        let _ = waiter.send(());
                    }
                }
                Err(e) => {
                    self.stats.bump(Counter::Malformed);
                    tracing::warn!(channel, error = %e, "dropped a malformed ack");
                }
            },
            Route::Return(server) if server == self.server => {
                if let Err(e) = self.complete_remote(payload) {
                    self.stats.bump(Counter::Malformed);
                    tracing::warn!(channel, error = %e, "dropped a malformed client-result completion");
                } else {
                    self.stats.bump(Counter::Received);
                }
            }
            Route::Ack(_) | Route::Return(_) => {}
            Route::UserGroups => match protocol::decode_user_group_command(payload) {
                Ok(command) if command.server == self.server => {}
                Ok(command) => match self.apply_user_group(&hub, command) {
                    Ok(()) => self.stats.bump(Counter::Received),
                    Err(e) => {
                        self.stats.bump(Counter::Malformed);
                        tracing::warn!(channel, error = %e, "dropped a malformed user-group change");
                    }
                },
                Err(e) => {
                    self.stats.bump(Counter::Malformed);
                    tracing::warn!(channel, error = %e, "dropped a malformed user-group change");
                }
            },
        }
    }

    /// Decodes an invocation envelope and hands it to the local connections it is meant for.
    fn deliver(&self, hub: &str, route: Route<'_>, payload: &[u8]) -> Result<(), String> {
        let invocation = protocol::decode_invocation(payload).map_err(|e| e.to_string())?;
        let message = outgoing_from(&invocation)?;
        if let Some(address) = invocation.return_to {
            let Route::Connection(id) = route else {
                return Err(
                    "a client-result invocation on a channel other than a connection's".into(),
                );
            };
            self.invoke_local(hub, id, &message, address);
            return Ok(());
        }
        let excluded: Vec<&str> = invocation.excluded.iter().map(String::as_str).collect();
        let audience = match route {
            Route::All => Audience::All {
                excluded: &excluded,
            },
            Route::Group(group) => Audience::Group {
                group,
                excluded: &excluded,
            },
            Route::Connection(id) => Audience::Connection(id),
            Route::User(user) => Audience::User(user),
            _ => return Ok(()),
        };
        self.local
            .send(hub, audience, &message)
            .map_err(|e| e.to_string())
    }
}

/// The envelope for `message` in every protocol it encodes in.
fn envelope(message: &Outgoing, excluded: &[&str]) -> Result<Vec<u8>, HubError> {
    envelope_to(message, excluded, None)
}

/// The envelope for `message`; with a return address, a client-result invocation carrying its
/// invocation id (in the serialized messages too).
fn envelope_to(
    message: &Outgoing,
    excluded: &[&str],
    return_to: Option<ReturnAddress>,
) -> Result<Vec<u8>, HubError> {
    let mut messages = Vec::with_capacity(PROTOCOLS.len());
    let mut last_error = None;
    for protocol in PROTOCOLS {
        match message.invocation(protocol) {
            Ok(mut hub_message) => {
                if let (HubMessage::Invocation(inv), Some(address)) = (&mut hub_message, &return_to)
                {
                    inv.invocation_id = Some(address.invocation_id.clone());
                }
                let mut bytes = Vec::new();
                crate::wire::encode_server_message(protocol, &hub_message, &mut bytes);
                messages.push((protocol.name().to_owned(), bytes));
            }
            Err(e) => last_error = Some(e),
        }
    }
    if messages.is_empty() {
        return Err(last_error.unwrap_or_else(|| HubError::Unexpected("nothing to send".into())));
    }
    Ok(protocol::encode_invocation(&Invocation {
        excluded: excluded.iter().map(|s| (*s).to_owned()).collect(),
        messages,
        return_to,
    }))
}

/// The target and arguments of one serialized Invocation (framing included).
fn decode_serialized(protocol: Protocol, bytes: &[u8]) -> Result<(String, Vec<RawValue>), String> {
    let mut framer = protocol.framer(MAX_MESSAGE_BYTES);
    framer.push(bytes);
    let record = framer
        .next_record()
        .map_err(|e| e.to_string())?
        .ok_or("an incomplete serialized message")?;
    match protocol.decode(&record).map_err(|e| e.to_string())? {
        Decoded::Message(HubMessage::Invocation(invocation)) => {
            Ok((invocation.target, invocation.arguments))
        }
        Decoded::Message(other) => Err(format!(
            "a hub message of type {} where an Invocation must be",
            other.type_id()
        )),
        Decoded::Unknown { type_id } => Err(format!("an unknown hub message type {type_id}")),
    }
}

/// Rebuilds the message of an envelope: its arguments in each protocol, transcoded from the
/// other one when the sender did not include a protocol.
fn outgoing_from(invocation: &Invocation) -> Result<Outgoing, String> {
    let mut target = None;
    let mut encoded: [Option<Vec<RawValue>>; 2] = [None, None];
    for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
        if let Some(bytes) = invocation.message(protocol.name()) {
            let (t, arguments) = decode_serialized(protocol, bytes)?;
            target.get_or_insert(t);
            encoded[i] = Some(arguments);
        }
    }
    let target = target.ok_or("no serialized message in a protocol the fixture speaks")?;
    let transcode = |from: &Option<Vec<RawValue>>, to: Protocol| -> Result<Vec<RawValue>, String> {
        from.as_ref()
            .ok_or_else(|| "missing".to_owned())?
            .iter()
            .map(|v| v.to_protocol(to).map_err(|e| e.to_string()))
            .collect()
    };
    let [json, msgpack] = encoded;
    let json_args = match &json {
        Some(args) => Ok(args.clone()),
        None => transcode(&msgpack, Protocol::Json),
    };
    let msgpack_args = match msgpack {
        Some(args) => Ok(args),
        None => transcode(&json, Protocol::MessagePack),
    };
    Ok(Outgoing::from_encoded(target, json_args, msgpack_args))
}

impl FanOut for RedisFanOut {
    fn send(&self, hub: &str, audience: Audience<'_>, message: &Outgoing) -> Result<(), HubError> {
        let channels = self.channels(hub);
        let (channel, excluded): (String, &[&str]) = match audience {
            Audience::Connection(id) => {
                if self.is_local(hub, id) {
                    return self.local.send(hub, audience, message);
                }
                (channels.connection(id), &[])
            }
            Audience::All { excluded } => (channels.all(), excluded),
            Audience::Group { group, excluded } => (channels.group(group), excluded),
            Audience::User(user) => (channels.user(user), &[]),
        };
        let local = match audience {
            Audience::Connection(_) => Ok(()),
            _ => self.local.send(hub, audience, message),
        };
        match envelope(message, excluded) {
            Ok(payload) => self.publish(channel, payload, true),
            Err(e) => return local.and(Err(e)),
        }
        local
    }

    fn join(&self, hub: &str, group: &str, connection_id: &str) {
        if self.is_local(hub, connection_id) {
            self.local.join(hub, group, connection_id);
        } else {
            // Nobody waits here: the ack, if any, finds no waiter and is dropped.
            let (id, _) = self.send_group_command(hub, group, connection_id, GroupAction::Add);
            self.acks.lock().remove(&id);
        }
    }

    fn leave(&self, hub: &str, group: &str, connection_id: &str) {
        if self.is_local(hub, connection_id) {
            self.local.leave(hub, group, connection_id);
        } else {
            let (id, _) = self.send_group_command(hub, group, connection_id, GroupAction::Remove);
            self.acks.lock().remove(&id);
        }
    }

    fn disconnected(&self, hub: &str, connection_id: &str) {
        self.local.disconnected(hub, connection_id);
    }

    // User-level groups (the Azure REST API) have no message in ASP.NET Core's backplane
    // protocol: they go to the other nodes through our own channel (`:talkback:user-groups`).

    fn join_user(&self, hub: &str, group: &str, user: &str, expires: Option<Instant>) {
        self.local.join_user(hub, group, user, expires);
        self.publish_user_group(hub, GroupAction::Add, Some(group), user, expires);
    }

    fn leave_user(&self, hub: &str, group: Option<&str>, user: &str) {
        self.local.leave_user(hub, group, user);
        self.publish_user_group(hub, GroupAction::Remove, group, user, None);
    }

    fn user_in_group(&self, hub: &str, group: &str, user: &str) -> bool {
        self.local.user_in_group(hub, group, user)
    }

    fn group_connections(&self, hub: &str, group: &str) -> Vec<String> {
        self.local.group_connections(hub, group)
    }
}

/// Publishes what the fan-out queued, one at a time, until the backplane closes.
async fn publish_loop(
    fan: Arc<RedisFanOut>,
    mut manager: redis::aio::ConnectionManager,
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
    mut closed: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        let (channel, payload) = tokio::select! {
            next = queue.recv() => match next {
                Some(item) => item,
                None => return,
            },
            _ = closed.wait_for(|c| *c) => return,
        };
        let key = echo_key(&channel, &payload);
        let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(&mut manager)
            .await;
        match result {
            Ok(_) => {
                fan.stats.bump(Counter::Published);
                if failing {
                    failing = false;
                    tracing::info!("backplane publishing works again");
                }
            }
            Err(e) => {
                fan.echoes.lock().forget(key);
                fan.stats.bump(Counter::PublishFailure);
                if !failing {
                    failing = true;
                    tracing::warn!(error = %e, channel, "backplane publish failed: cross-node sends are lost until Redis is back (local sends still work)");
                } else {
                    tracing::debug!(error = %e, channel, "backplane publish failed");
                }
            }
        }
    }
}

/// Subscribes again and checks that publishing works too (a `PING` through the publisher's
/// connection manager, which reconnects it): the node counts as reconnected only then.
async fn resubscribe(
    client: &redis::Client,
    manager: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> Result<redis::aio::PubSub, String> {
    let pubsub = subscribe(client, prefix).await?;
    let ping = redis::cmd("PING");
    match tokio::time::timeout(REDIS_TIMEOUT, ping.query_async::<String>(manager)).await {
        Ok(Ok(_)) => Ok(pubsub),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("PING timed out".into()),
    }
}

/// Reads the subscription; when it ends, reconnects with backoff and subscribes again.
async fn subscribe_loop(
    fan: Arc<RedisFanOut>,
    client: redis::Client,
    mut manager: redis::aio::ConnectionManager,
    first: redis::aio::PubSub,
    mut closed: watch::Receiver<bool>,
) {
    let mut pubsub = Some(first);
    let mut backoff = BACKOFF_MIN;
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => {
                let attempt = tokio::select! {
                    r = resubscribe(&client, &mut manager, &fan.config.prefix) => r,
                    _ = closed.wait_for(|c| *c) => return,
                };
                match attempt {
                    Ok(p) => {
                        tracing::info!("backplane subscription restored");
                        backoff = BACKOFF_MIN;
                        fan.stats.set_connected(true);
                        fan.stats.bump(Counter::Reconnect);
                        p
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, ?backoff, "backplane reconnect failed");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = closed.wait_for(|c| *c) => return,
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
        };
        let (mut sink, mut messages) = current.split();
        let stop = loop {
            tokio::select! {
                next = messages.next() => match next {
                    Some(msg) => fan.on_message(msg.get_channel_name(), msg.get_payload_bytes()),
                    None => break false,
                },
                _ = closed.wait_for(|c| *c) => break true,
            }
        };
        if stop {
            let pattern = channels::pattern(&fan.config.prefix);
            let _ = tokio::time::timeout(REDIS_TIMEOUT, sink.punsubscribe(pattern)).await;
            return;
        }
        fan.stats.set_connected(false);
        fan.stats.bump(Counter::ConnectionLoss);
        tracing::warn!(
            "backplane subscription lost: reconnecting (cross-node messages are missed meanwhile)"
        );
    }
}

/// Writes this node's figures to Redis and reads every node's, each `report_interval`, until
/// the backplane closes; then deletes this node's figures, so it leaves the cluster's count at
/// once. Failures (Redis down) leave this node alone in the figures and are logged at debug
/// level (the subscriber already reports the loss).
async fn report_loop(
    fan: Arc<RedisFanOut>,
    mut manager: redis::aio::ConnectionManager,
    mut closed: watch::Receiver<bool>,
) {
    let interval = fan.config.report_interval.max(Duration::from_millis(10));
    let expiry = (interval * 3).max(Duration::from_secs(1));
    let expiry_ms = u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX);
    let key = channels::node_key(&fan.config.prefix, &fan.server);
    loop {
        let own = fan.own_figures();
        let value = serde_json::to_vec(&own).unwrap_or_default();
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(value).arg("PX").arg(expiry_ms);
        let set = set.query_async::<()>(&mut manager);
        let written = tokio::select! {
            r = tokio::time::timeout(REDIS_TIMEOUT, set) => matches!(r, Ok(Ok(()))),
            _ = closed.wait_for(|c| *c) => break,
        };
        let read = if written {
            tokio::select! {
                r = tokio::time::timeout(REDIS_TIMEOUT, read_cluster(&mut manager, &fan.config.prefix)) => {
                    r.map_err(|_| "timed out".to_owned()).and_then(|r| r)
                }
                _ = closed.wait_for(|c| *c) => break,
            }
        } else {
            Err("writing this node's figures failed".to_owned())
        };
        let mut nodes = read.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot read the cluster's figures from Redis");
            Vec::new()
        });
        nodes.retain(|n| n.server != own.server);
        nodes.push(own);
        fan.stats.set_cluster(nodes);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = closed.wait_for(|c| *c) => break,
        }
    }
    let mut delete = redis::cmd("DEL");
    delete.arg(&key);
    let delete = delete.query_async::<i64>(&mut manager);
    let _ = tokio::time::timeout(REDIS_TIMEOUT, delete).await;
}

/// Every node's figures under `prefix` (at most [`MAX_NODES`]; unreadable values skipped).
async fn read_cluster(
    manager: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> Result<Vec<NodeFigures>, String> {
    let pattern = channels::node_key_pattern(prefix);
    let key_prefix = channels::node_key(prefix, "");
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(manager)
            .await
            .map_err(|e| e.to_string())?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() >= MAX_NODES {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    keys.truncate(MAX_NODES);
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(manager)
        .await
        .map_err(|e| e.to_string())?;
    let mut nodes = Vec::with_capacity(keys.len());
    for (key, value) in keys.iter().zip(values) {
        let Some(value) = value.filter(|v| v.len() <= MAX_FIGURES_BYTES) else {
            continue;
        };
        let Some(server) = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix(key_prefix.as_str()))
            .filter(|s| !s.is_empty() && s.len() <= MAX_SERVER_NAME)
        else {
            continue;
        };
        match serde_json::from_slice::<NodeFigures>(&value) {
            Ok(mut figures) => {
                figures.server = server.to_owned();
                nodes.push(figures);
            }
            Err(e) => tracing::debug!(server, error = %e, "unreadable node figures in Redis"),
        }
    }
    Ok(nodes)
}

fn echo_key(channel: &str, payload: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    channel.hash(&mut hasher);
    payload.hash(&mut hasher);
    hasher.finish()
}

/// This node's publications on its way through Redis, by hash of channel and payload.
#[derive(Default)]
struct Echoes {
    pending: HashMap<u64, u32>,
    order: VecDeque<(Instant, u64)>,
}

impl Echoes {
    fn expect(&mut self, key: u64) {
        let now = Instant::now();
        while let Some(&(at, old)) = self.order.front() {
            if now.duration_since(at) < ECHO_WINDOW && self.order.len() < ECHO_CAPACITY {
                break;
            }
            self.order.pop_front();
            self.forget(old);
        }
        *self.pending.entry(key).or_insert(0) += 1;
        self.order.push_back((now, key));
    }

    /// Forgets one expected echo (its publish failed, or it expired).
    fn forget(&mut self, key: u64) {
        if let Some(n) = self.pending.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&key);
            }
        }
    }

    /// Whether this is an expected echo (then it is consumed).
    fn take(&mut self, key: u64) -> bool {
        if self.pending.contains_key(&key) {
            self.forget(key);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_carries_the_message_in_both_protocols_as_the_server_writes_them() {
        let message = Outgoing::new("Send", &("hi",));
        let payload = envelope(&message, &["x"]).unwrap();
        let invocation = protocol::decode_invocation(&payload).unwrap();
        assert_eq!(invocation.excluded, ["x"]);
        assert_eq!(
            invocation.message("json").unwrap(),
            b"{\"type\":1,\"target\":\"Send\",\"arguments\":[\"hi\"]}\x1e"
        );
        assert_eq!(
            invocation.message("messagepack").unwrap(),
            [
                0x0e, 0x96, 0x01, 0x80, 0xc0, 0xa4, b'S', b'e', b'n', b'd', 0x91, 0xa2, b'h', b'i',
                0x90
            ]
        );
        let back = outgoing_from(&invocation).unwrap();
        for protocol in PROTOCOLS {
            assert_eq!(
                format!("{:?}", back.invocation(protocol).unwrap()),
                format!("{:?}", message.invocation(protocol).unwrap())
            );
        }
    }

    #[test]
    fn a_protocol_missing_from_an_envelope_is_transcoded_from_the_other() {
        let invocation = Invocation {
            excluded: vec![],
            messages: vec![(
                "json".into(),
                b"{\"type\":1,\"target\":\"T\",\"arguments\":[1,\"a\"]}\x1e".to_vec(),
            )],
            return_to: None,
        };
        let back = outgoing_from(&invocation).unwrap();
        let expected = Outgoing::new("T", &(1, "a"));
        assert_eq!(
            format!("{:?}", back.invocation(Protocol::MessagePack).unwrap()),
            format!("{:?}", expected.invocation(Protocol::MessagePack).unwrap())
        );
    }

    #[test]
    fn serialized_messages_that_are_not_invocations_are_refused() {
        for (protocol, bytes) in [
            ("json", &b"{\"type\":6}\x1e"[..]),
            ("json", b"{\"type\":1,"),
            ("messagepack", b"\x05\x91"),
            ("xml", b"<x/>"),
        ] {
            let invocation = Invocation {
                messages: vec![(protocol.into(), bytes.to_vec())],
                ..Invocation::default()
            };
            assert!(outgoing_from(&invocation).is_err(), "{protocol} {bytes:?}");
        }
    }

    #[test]
    fn own_echoes_are_dropped_once_each() {
        let mut echoes = Echoes::default();
        echoes.expect(1);
        echoes.expect(1);
        assert!(echoes.take(1));
        assert!(echoes.take(1));
        assert!(!echoes.take(1));
        echoes.expect(2);
        echoes.forget(2);
        assert!(!echoes.take(2));
    }
}
