//! One connection's hub-protocol session: the handshake, decoding client messages, dispatching
//! hub methods, encoding everything sent to the client in order, keep-alive pings, the client
//! timeout, and the stateful-reconnect buffer across WebSocket re-attaches.
//!
//! A session is one task. Transports only move bytes in ([`Inbound`]) and out ([`Outbound`]);
//! hub code reaches the session through the connection's bounded command queue.
//!
//! - this module: the session's state ([`Session`]) and its start ([`ensure_started`]);
//! - [`run`]: the loop (client bytes, hub commands, timers), the liveness deadlines, the end;
//! - [`handshake`]: the handshake request, the hub's on-connected hook;
//! - [`dispatch`]: decoding client messages, invocations, uploads, and the per-connection
//!   dispatcher that runs hub calls in order;
//! - [`replay`]: encoding what is sent, numbered and buffered under stateful reconnect, and the
//!   replay after a re-attach;
//! - [`faults`]: the last step to the transport, where the delay and drop-after faults apply.

mod dispatch;
mod faults;
mod handshake;
mod replay;
mod run;

use crate::context::{HubContext, UploadStream};
use crate::hub::Hub;
use crate::metrics::DisconnectReason;
use crate::registry::{Conn, Shared};
#[cfg(doc)]
use crate::registry::{Inbound, Outbound};
use dispatch::Dispatcher;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use talkback_core::protocol::{Framer, Protocol, RawValue, TextFramer};
use talkback_core::stateful::MessageBuffer;
use talkback_core::transport::TransportKind;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

/// Delay of the coalesced Ack to the client under stateful reconnect.
const ACK_DELAY: Duration = Duration::from_millis(200);
/// Items an upload stream buffers before reading from the client waits (ASP.NET's
/// `StreamBufferCapacity`).
const UPLOAD_BUFFER: usize = 10;
/// Hub calls queued per connection for the dispatcher
/// ([`run_dispatcher`](dispatch::run_dispatcher)). A call that finds the queue full closes the
/// connection with an error: a client flooding calls behind a slow non-blocking one cannot grow
/// the server's memory.
pub(crate) const MAX_QUEUED_CALLS: usize = 1024;
/// Stream ids one invocation may announce; more are refused before the method is looked up
/// and before any upload channel exists.
pub(crate) const MAX_STREAM_IDS_PER_INVOCATION: usize = 16;
/// Upload streams open at once per connection; an invocation that would exceed it is refused.
pub(crate) const MAX_OPEN_UPLOADS: usize = 256;
/// Blocking and streaming invocations a connection may have running at once (each is a task):
/// one more is answered with an error Completion. ASP.NET Core bounds the same with
/// `MaximumParallelInvocationsPerClient` by not reading on; here the session must keep reading
/// (running streams need it to drain their items), so the bound refuses instead, and it is as
/// large as the queue of waiting calls so that a client pipelining quick calls does not meet it.
pub(crate) const MAX_RUNNING_INVOCATIONS: usize = MAX_QUEUED_CALLS;
/// The Close text for an unexpected server-side end.
const CLOSED_WITH_ERROR: &str = "Connection closed with an error.";
/// The Close text for the client timeout with detailed errors: ASP.NET Core's
/// `ErrorMessageHelper.BuildErrorMessage` appends the exception's type and message to
/// [`CLOSED_WITH_ERROR`], and the client timeout is an `OperationCanceledException` with this
/// message (`HubConnectionContext`, dotnet/aspnetcore `src/SignalR/server/Core`).
const CLIENT_TIMEOUT_DETAILED: &str = "Connection closed with an error. OperationCanceledException: Client hasn't sent a message/ping within the configured ClientTimeoutInterval.";

/// Starts the session of `conn` unless it runs already.
pub(crate) fn ensure_started(shared: &Arc<Shared>, conn: &Arc<Conn>) {
    // A connection is created for a registered hub, and the hubs never change: not found
    // cannot happen, but it must not panic either.
    let Some(hub) = shared.hub(&conn.hub) else {
        tracing::error!(connection = %conn.id, hub = %conn.hub, "no such hub: connection aborted");
        conn.abort();
        shared.remove(conn);
        return;
    };
    let side = conn.pipe.session_side.lock().take();
    if let Some(side) = side {
        // Debug level: disabled spans cost nothing, so idle connections stay small unless a
        // subscriber (an OpenTelemetry exporter, `RUST_LOG=talkback_fixture=debug`) asks.
        let span = tracing::debug_span!(
            "connection",
            connection = %conn.id,
            hub = %conn.hub,
            transport = conn.transport.get().map_or("", |t| t.name()),
        );
        let session = Session::new(shared.clone(), hub, conn.clone());
        tokio::spawn(session.run(side).instrument(span));
    }
}

struct Session {
    shared: Arc<Shared>,
    /// The connection's hub (its methods and connection hooks).
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    handshake_done: bool,
    handshake: TextFramer,
    framer: Option<Framer>,
    protocol: Protocol,
    stateful: Option<MessageBuffer>,
    detached_since: Option<Instant>,
    ack_due: Option<Instant>,
    started: Instant,
    last_sent: Instant,
    last_received: Instant,
    /// When the client last sent a message that counts against the idle timeout
    /// ([`FixtureConfig::idle_timeout`](crate::Config::idle_timeout): not a Ping, Ack or
    /// Sequence).
    last_message: Instant,
    uploads: HashMap<String, mpsc::Sender<Result<RawValue, String>>>,
    finished_uploads: HashSet<String>,
    streams: Arc<Mutex<HashMap<String, AbortHandle>>>,
    /// The hub calls waiting for the dispatcher ([`run_dispatcher`](dispatch::run_dispatcher)).
    dispatcher: Dispatcher,
    /// The connection outlived its liveness deadline while the session waited on a full queue
    /// (see [`Session::guarded`]): the session ends without sending anything more.
    stalled: bool,
    /// On a stateful connection, the hub's on-connected hook waits for the client's first
    /// message after the handshake (or this deadline): see [`Session::connected`].
    connect_hook_due: Option<Instant>,
    /// The transport and protocol this connection is counted under in the metrics' gauge
    /// (from the handshake on).
    counted: Option<(TransportKind, Protocol)>,
    /// Why the session ended, where the loop knows it (see [`Session::finish`]).
    end_reason: Option<DisconnectReason>,
}

/// Why a session ends.
enum End {
    /// Send nothing more (the transport is gone or the client closed).
    Quiet,
    /// Send a Close message first.
    Close(Option<String>, bool),
}

impl Session {
    fn new(shared: Arc<Shared>, hub: Arc<Hub>, conn: Arc<Conn>) -> Self {
        let max = shared.config.max_receive_message_size;
        let now = Instant::now();
        Session {
            shared,
            hub,
            conn,
            handshake_done: false,
            handshake: TextFramer::new(max),
            framer: None,
            protocol: Protocol::Json,
            stateful: None,
            detached_since: None,
            ack_due: None,
            started: now,
            last_sent: now,
            last_received: now,
            last_message: now,
            uploads: HashMap::new(),
            finished_uploads: HashSet::new(),
            streams: Arc::new(Mutex::new(HashMap::new())),
            dispatcher: Dispatcher::default(),
            stalled: false,
            connect_hook_due: None,
            counted: None,
            end_reason: None,
        }
    }

    fn transport(&self) -> Option<TransportKind> {
        self.conn.transport.get().copied()
    }

    fn context(&self, uploads: Vec<Option<UploadStream>>) -> HubContext {
        HubContext {
            conn: self.conn.clone(),
            shared: self.shared.clone(),
            uploads: Arc::new(Mutex::new(uploads)),
        }
    }
}
