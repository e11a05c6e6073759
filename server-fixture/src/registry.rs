//! The live connections of a fixture, their groups and users, and the per-connection handles
//! that hub code and transports use.

use crate::config::FixtureConfig;
use crate::fanout::{FanOut, LocalFanOut};
use crate::faults::{ConnectionFaults, Faults};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::queue;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use talkback_core::protocol::{CompletionResult, HubMessage, Protocol};
use talkback_core::transport::TransportKind;
use tokio::sync::{oneshot, Notify};

/// What hub code asks a connection's session to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a hub message (its arguments already in the connection's protocol). Boxed: the
    /// command channel allocates 32 slots up front per connection, and a `HubMessage` is large.
    Message(Box<HubMessage>),
    /// Send a Close message, then end the transport.
    Close {
        error: Option<String>,
        allow_reconnect: bool,
    },
    /// End the transport at once, without a Close message (a fault or `CloseMe`).
    Abort,
}

/// What a transport hands to the session.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// Bytes from the client (a WebSocket message or a POST body).
    Data(Bytes),
    /// The transport ended (the WebSocket closed, the SSE response was dropped).
    Closed,
    /// A new WebSocket took over a stateful connection.
    Reattached,
    /// The WebSocket layer refused a client message over the size limit from its frame header,
    /// before reading its payload; the socket reads nothing more.
    TooLarge,
}

/// What the session hands to the transport.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One or more framed hub messages (or the handshake response).
    Frame(Bytes),
    /// Close the transport after what was sent before.
    End,
}

/// The transport side of a connection's pipes.
pub(crate) struct Pipe {
    /// Client bytes and transport events, to the session.
    pub inbound: queue::Sender<Inbound>,
    /// Frames for the client, pulled by whichever transport request is active.
    pub outbound: Arc<tokio::sync::Mutex<queue::Receiver<Outbound>>>,
    /// The session's side, taken once when the session starts.
    pub session_side: Mutex<Option<SessionSide>>,
}

/// The session's ends of the pipes.
pub(crate) struct SessionSide {
    pub inbound: queue::Receiver<Inbound>,
    pub outbound: queue::Sender<Outbound>,
    pub commands: queue::Receiver<Command>,
}

/// The HTTP request that opened the transport (for `GetQuery` and `GetHeader`).
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// Headers, names in lower case.
    pub headers: HashMap<String, String>,
}

/// One logical connection (it outlives its transports under stateful reconnect).
pub(crate) struct Conn {
    pub id: String,
    pub token: String,
    /// The hub's name, as registered (the hub itself is looked up by it: [`Shared::hub`]).
    pub hub: Arc<str>,
    pub user: Option<String>,
    /// Negotiate agreed to stateful reconnect.
    pub stateful_negotiated: bool,
    pub transport: OnceLock<TransportKind>,
    pub protocol: OnceLock<Protocol>,
    pub request: OnceLock<RequestInfo>,
    pub commands: queue::Sender<Command>,
    pub pipe: Pipe,
    pub faults: ConnectionFaults,
    pub client_results: Mutex<HashMap<String, oneshot::Sender<CompletionResult>>>,
    /// The client's invocation ids still running (reusing one is a protocol error).
    pub active_invocations: Mutex<HashSet<String>>,
    next_server_id: AtomicU64,
    /// A WebSocket is attached right now (a second one gets 409 unless stateful).
    pub socket_attached: Mutex<bool>,
    /// Wakes a long poll that a newer poll supersedes, or that must end.
    pub poll_cancel: Notify,
    pub poll_generation: AtomicU64,
    /// A long poll is waiting for data (see [`crate::ConnectionInfo::long_poll_waiting`]).
    pub poll_waiting: AtomicBool,
    /// A POST is being read (a second one gets 409).
    pub post_busy: Mutex<bool>,
    /// The handshake turned stateful reconnect on (a second WebSocket re-attaches).
    pub stateful_active: AtomicBool,
    /// Since when no long poll is waiting (long polling only).
    pub poll_idle_since: Mutex<Option<std::time::Instant>>,
    /// Drops the active transport request when fired or replaced (a fault, or a newer
    /// WebSocket taking over a stateful connection).
    kill: Mutex<Option<oneshot::Sender<()>>>,
    /// A drop fault arrived while no request was active: the next one breaks off at once.
    pub kill_pending: AtomicBool,
    /// The connection was aborted; the session stops even if its transport is stuck.
    pub aborted: AtomicBool,
    /// Notified when the connection is aborted (wakes a session waiting for queue space).
    pub abort_signal: Notify,
    /// The transport was dropped or aborted (a fault): every later long poll fails, broken
    /// off while the session lives and `404` after it ended, so a browser that silently
    /// resends a poll whose connection closed early still sees a failure, never a clean `204`.
    pub broken: AtomicBool,
    /// Set when the connection ended; transports then answer 204/404.
    pub closed: OnceLock<()>,
    /// Notified when the connection ends.
    pub ended: Notify,
    /// The version the client asked for in its handshake (set once the handshake succeeded).
    pub handshake_version: OnceLock<u32>,
    /// Ping messages received from the client.
    pub pings_received: AtomicU64,
    /// Hub messages received from the client, Pings included.
    pub messages_received: AtomicU64,
    /// Bumped when something [`crate::ConnectionInfo`] shows changed (a message arrived, a
    /// long poll started or stopped waiting), for [`crate::Server::wait_for_connection`].
    pub changes: tokio::sync::watch::Sender<u64>,
    /// The fixture's counters (for the slow-consumer aborts of [`Conn::push`]).
    pub metrics: Arc<Metrics>,
}

impl Conn {
    /// The protocol chosen at handshake (JSON before it).
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol.get().copied().unwrap_or(Protocol::Json)
    }

    /// A fresh id for a server-to-client invocation expecting a result.
    pub(crate) fn next_server_invocation_id(&self) -> String {
        format!("s{}", self.next_server_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Queues a command; a full queue means a slow consumer, which is aborted (see
    /// [`FixtureConfig`]). Returns false if the connection is gone or was aborted.
    pub(crate) fn push(&self, command: Command) -> bool {
        match self.commands.try_send(command) {
            Ok(()) => true,
            Err(queue::TrySendError::Full(_)) => {
                tracing::warn!(connection = %self.id, "outbound queue full: aborting a slow consumer");
                self.metrics.queue_full_abort();
                self.abort();
                false
            }
            Err(queue::TrySendError::Closed(_)) => false,
        }
    }

    /// Drops the transport without a Close message; a stateful connection may re-attach, any
    /// other connection ends.
    pub(crate) fn drop_transport(&self) {
        // Fire the active request, and break off the next one too: a request that was
        // already answering when the fault came must not make the drop look clean.
        self.broken.store(true, Ordering::SeqCst);
        self.kill.lock().take();
        self.kill_pending.store(true, Ordering::SeqCst);
        // WebSockets and SSE report their end themselves; long polling has no request to.
        if self.transport.get() == Some(&TransportKind::LongPolling) {
            let _ = self.pipe.inbound.try_send(Inbound::Closed);
        }
    }

    /// Ends the connection at once: the transport drops and no Close message is sent.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.abort_signal.notify_waiters();
        self.broken.store(true, Ordering::SeqCst);
        self.kill.lock().take();
        let _ = self.pipe.inbound.try_send(Inbound::Closed);
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let _ = commands.send(Command::Abort).await;
        });
    }

    /// Drops the active transport request (the session ended but could not queue its end).
    pub(crate) fn kill_transport(&self) {
        self.kill.lock().take();
    }

    /// Registers the calling transport request as the active one; the receiver fires when
    /// the transport must drop (a fault) or a newer request replaced it.
    pub(crate) fn install_kill(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        *self.kill.lock() = Some(tx);
        rx
    }

    /// Wakes the waiters of [`crate::Server::wait_for_connection`].
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get().is_some()
    }
}

/// The live connections of this process, by id.
#[derive(Default)]
pub(crate) struct Connections {
    map: Mutex<HashMap<String, Arc<Conn>>>,
}

impl Connections {
    fn insert(&self, conn: Arc<Conn>) {
        self.map.lock().insert(conn.id.clone(), conn);
    }

    fn remove(&self, id: &str) -> Option<Arc<Conn>> {
        self.map.lock().remove(id)
    }

    /// The connection with this public id.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Conn>> {
        self.map.lock().get(id).cloned()
    }

    /// Every live connection of `hub` (all hubs for `None`).
    pub(crate) fn all(&self, hub: Option<&str>) -> Vec<Arc<Conn>> {
        self.map
            .lock()
            .values()
            .filter(|c| hub.is_none_or(|h| c.hub.eq_ignore_ascii_case(h)))
            .cloned()
            .collect()
    }
}

/// Everything the fixture's tasks share.
pub(crate) struct Shared {
    pub config: FixtureConfig,
    /// The hubs, by lower-case name.
    hubs: HashMap<String, Arc<Hub>>,
    /// Hubs made at run time by the Azure service mode (looked up before `hubs`), by
    /// lower-case name.
    pub dynamic_hubs: Mutex<HashMap<String, Arc<Hub>>>,
    /// The Azure service mode's state, when it is on ([`FixtureConfig::azure`]).
    pub azure: Option<Arc<crate::azure::AzureState>>,
    pub faults: Faults,
    connections: Arc<Connections>,
    /// Every send to other connections and every group change (see [`crate::fanout`]).
    pub fan_out: Arc<dyn FanOut>,
    /// The Redis backplane, when this node is in a cluster (it is also [`Self::fan_out`]).
    pub backplane: Option<Arc<crate::backplane::RedisFanOut>>,
    /// The counters behind `GET /metrics`.
    pub metrics: Arc<Metrics>,
    tokens: Mutex<HashMap<String, String>>,
    /// Ended connections, still found by token for [`ENDED_GRACE`] so that a late long poll
    /// drains what was sent last (a Close message) and then gets 204, not 404.
    ended: Mutex<HashMap<String, Arc<Conn>>>,
    /// Deadlines for the reaper ([`reap`]), in order: each deadline is "now + a constant".
    expiries: Mutex<Expiries>,
    /// Wakes the reaper when a deadline is queued.
    pub reaper_wake: Arc<Notify>,
    pub shutdown: Notify,
    /// When set, only these access tokens are accepted (others get 401).
    pub valid_tokens: Mutex<Option<HashSet<String>>>,
    /// Bumped whenever a connection finishes its handshake or ends, so that waiters
    /// ([`crate::Server::wait_for_connections`]) wake on the event instead of polling.
    pub changes: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    #[cfg(test)]
    pub(crate) fn new(config: FixtureConfig, hubs: Vec<Hub>) -> Self {
        Self::with_backplane(config, hubs, None)
    }

    /// A fixture whose fan-out goes through `backplane` (connected to Redis), if given.
    pub(crate) fn with_backplane(
        config: FixtureConfig,
        hubs: Vec<Hub>,
        backplane: Option<crate::backplane::Connected>,
    ) -> Self {
        let connections = Arc::new(Connections::default());
        let metrics = Arc::new(Metrics::default());
        let backplane = backplane.map(|b| b.start(connections.clone()));
        if let Some(b) = &backplane {
            b.attach_metrics(&metrics);
        }
        let fan_out: Arc<dyn FanOut> = match &backplane {
            Some(b) => b.clone(),
            None => Arc::new(LocalFanOut::new(connections.clone())),
        };
        let azure = config.azure.as_ref().map(crate::azure::AzureState::new);
        Shared {
            config,
            hubs: hubs
                .into_iter()
                .map(|h| (h.name().to_ascii_lowercase(), Arc::new(h)))
                .collect(),
            dynamic_hubs: Mutex::new(HashMap::new()),
            azure,
            faults: Faults::default(),
            fan_out,
            backplane,
            connections,
            metrics,
            tokens: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            expiries: Mutex::new(Expiries::default()),
            reaper_wake: Arc::new(Notify::new()),
            shutdown: Notify::new(),
            valid_tokens: Mutex::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Wakes every waiter on [`Self::changes`].
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether a request carrying `token` may pass (always, unless tokens are restricted).
    pub(crate) fn token_accepted(&self, token: Option<&str>) -> bool {
        match &*self.valid_tokens.lock() {
            None => true,
            Some(valid) => token.is_some_and(|t| valid.contains(t)),
        }
    }

    /// The hub served at `/hubs/{name}` (case-insensitive).
    pub(crate) fn hub(&self, name: &str) -> Option<Arc<Hub>> {
        let name = name.to_ascii_lowercase();
        if let Some(hub) = self.dynamic_hubs.lock().get(&name) {
            return Some(hub.clone());
        }
        self.hubs.get(&name).cloned()
    }

    /// The hub registered at start under `name` (case-insensitive), not a run-time one.
    pub(crate) fn static_hub(&self, name: &str) -> Option<Arc<Hub>> {
        self.hubs.get(&name.to_ascii_lowercase()).cloned()
    }

    /// Registers a new connection of `hub`.
    pub(crate) fn create(
        &self,
        hub: &Hub,
        user: Option<String>,
        stateful: bool,
        version: u32,
    ) -> Arc<Conn> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let token = if version >= 1 {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            id.clone()
        };
        let (commands_tx, commands_rx) = queue::channel(self.config.outbound_queue_capacity.max(1));
        let (inbound_tx, inbound_rx) = queue::channel(64);
        let (outbound_tx, outbound_rx) = queue::channel(64);
        let conn = Arc::new(Conn {
            id: id.clone(),
            token: token.clone(),
            hub: hub.name.clone(),
            user,
            stateful_negotiated: stateful,
            transport: OnceLock::new(),
            protocol: OnceLock::new(),
            request: OnceLock::new(),
            commands: commands_tx,
            pipe: Pipe {
                inbound: inbound_tx,
                outbound: Arc::new(tokio::sync::Mutex::new(outbound_rx)),
                session_side: Mutex::new(Some(SessionSide {
                    inbound: inbound_rx,
                    outbound: outbound_tx,
                    commands: commands_rx,
                })),
            },
            faults: ConnectionFaults::default(),
            client_results: Mutex::new(HashMap::new()),
            active_invocations: Mutex::new(HashSet::new()),
            next_server_id: AtomicU64::new(0),
            socket_attached: Mutex::new(false),
            poll_cancel: Notify::new(),
            poll_generation: AtomicU64::new(0),
            poll_waiting: AtomicBool::new(false),
            post_busy: Mutex::new(false),
            stateful_active: AtomicBool::new(false),
            poll_idle_since: Mutex::new(None),
            kill: Mutex::new(None),
            kill_pending: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            abort_signal: Notify::new(),
            broken: AtomicBool::new(false),
            closed: OnceLock::new(),
            ended: Notify::new(),
            handshake_version: OnceLock::new(),
            pings_received: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            changes: tokio::sync::watch::Sender::new(0),
            metrics: self.metrics.clone(),
        });
        self.connections.insert(conn.clone());
        self.tokens.lock().insert(token, id);
        conn
    }

    /// The connection whose `id=` query value is `token`.
    pub(crate) fn by_token(&self, token: &str) -> Option<Arc<Conn>> {
        let id = self.tokens.lock().get(token).cloned();
        match id.and_then(|id| self.by_id(&id)) {
            Some(conn) => Some(conn),
            None => self.ended.lock().get(token).cloned(),
        }
    }

    /// The connection with this public id.
    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<Conn>> {
        self.connections.get(id)
    }

    /// Every live connection of `hub` (all hubs for `None`).
    pub(crate) fn all(&self, hub: Option<&str>) -> Vec<Arc<Conn>> {
        self.connections.all(hub)
    }

    /// Forgets a connection and its group memberships; its token answers as ended for a while.
    pub(crate) fn remove(self: &Arc<Self>, conn: &Conn) {
        self.forget(conn, true);
    }

    fn forget(&self, conn: &Conn, keep_ended: bool) {
        let removed = self.connections.remove(&conn.id);
        self.tokens.lock().remove(&conn.token);
        if let (Some(conn), true) = (removed, keep_ended) {
            let token = conn.token.clone();
            self.ended.lock().insert(token.clone(), conn);
            self.expiries
                .lock()
                .ended
                .push_back((tokio::time::Instant::now() + ENDED_GRACE, token));
            self.reaper_wake.notify_one();
        }
        self.fan_out.disconnected(&conn.hub, &conn.id);
        self.changed();
    }

    /// Queues the expiry of a negotiated connection: it is forgotten unless a transport
    /// attached within the handshake timeout.
    pub(crate) fn expire_unless_connected(&self, conn: &Arc<Conn>) {
        let at = tokio::time::Instant::now() + self.config.handshake_timeout;
        self.expiries
            .lock()
            .negotiated
            .push_back((at, Arc::downgrade(conn)));
        self.reaper_wake.notify_one();
    }

    /// Applies every expiry that is due; returns the next deadline, if any.
    fn reap_due(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let mut unconnected = Vec::new();
        let mut ended = Vec::new();
        let next = {
            let mut expiries = self.expiries.lock();
            while expiries
                .negotiated
                .front()
                .is_some_and(|(at, _)| *at <= now)
            {
                if let Some((_, conn)) = expiries.negotiated.pop_front() {
                    unconnected.extend(conn.upgrade());
                }
            }
            while expiries.ended.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, token)) = expiries.ended.pop_front() {
                    ended.push(token);
                }
            }
            let a = expiries.negotiated.front().map(|(at, _)| *at);
            let b = expiries.ended.front().map(|(at, _)| *at);
            a.into_iter().chain(b).min()
        };
        for conn in unconnected {
            if conn.transport.get().is_none() {
                tracing::debug!(connection = %conn.id, "negotiated but never connected: forgotten");
                let _ = conn.closed.set(());
                self.forget(&conn, false);
            }
        }
        if !ended.is_empty() {
            let mut map = self.ended.lock();
            for token in ended {
                map.remove(&token);
            }
        }
        next
    }
}

/// How long an ended connection's token still answers as ended (see `Shared::ended`).
const ENDED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Pending expiries, each queue in deadline order (its deadlines are "now + a constant").
#[derive(Default)]
struct Expiries {
    /// Negotiated connections, forgotten at their deadline unless a transport attached.
    negotiated: VecDeque<(tokio::time::Instant, Weak<Conn>)>,
    /// Tokens of ended connections, dropped from `Shared::ended` at their deadline.
    ended: VecDeque<(tokio::time::Instant, String)>,
}

/// The reaper: one task per fixture applies the expiries as they fall due (woken by its
/// deadlines and by new entries, never by polling), instead of one sleeping task per
/// connection. Ends when the fixture is gone.
pub(crate) async fn reap(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = match shared.upgrade() {
            Some(shared) => shared.reap_due(),
            None => return,
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Lets the reaper see that the fixture is gone.
        self.reaper_wake.notify_one();
    }
}

/// The user id an access token stands for.
///
/// The fixture does not check signatures (it is a test server): a JWT's payload is read for
/// `asrs.s.uid`, then `nameid`, then `sub`; any other non-empty token is the user id itself.
pub fn user_from_token(token: &str) -> Option<String> {
    use base64::Engine;
    let token = token.trim();
    if token.is_empty() || token.len() > 4096 {
        return None;
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 3 {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
        for claim in [
            "asrs.s.uid",
            "nameid",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
            "sub",
        ] {
            if let Some(user) = claims.get(claim).and_then(|v| v.as_str()) {
                return Some(user.to_owned());
            }
        }
        return None;
    }
    Some(token.to_owned())
}
