//! The driver task: one per connection. It owns the sans-IO [`Connection`], feeds it user
//! commands, transport input, HTTP outcomes, access tokens and timeouts, and performs what it
//! asks for. It does no protocol logic of its own.

use crate::error::Error;
use crate::handlers::{run_dispatcher, Dispatch, Registry, DISPATCH_QUEUE};
use crate::http;
use crate::websocket::{self, Outgoing, Socket};
use futures::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use talkback_core::protocol::RawValue;
use talkback_core::{
    ClientResult, Connection, Event, HttpEvent, Instant, RequestId, State, Transmit, WebSocketEvent,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

/// Calls queued from the API to the driver.
pub(crate) const COMMAND_QUEUE: usize = 128;

/// Control commands (start, stop, cancel) queued from the API to the driver.
pub(crate) const CONTROL_QUEUE: usize = 32;

/// Transport input queued from the IO tasks to the driver.
const IO_QUEUE: usize = 64;

/// Items buffered per stream before the driver waits for the consumer.
pub(crate) const STREAM_BUFFER: usize = 64;

/// An access-token factory, boxed.
pub(crate) type TokenFactory =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Option<String>, String>> + Send + Sync>;

/// A reply channel.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// The receiving side of a stream's items.
pub(crate) type ItemSender = mpsc::Sender<Result<RawValue, Error>>;

/// The command and control queues. Their entries are boxed because tokio allocates a queue's
/// first block of 32 entries up front: at `Command`'s size that was 2.8 KB per queue for every
/// connection, idle or not; a box per command costs nothing next to the call itself.
pub(crate) type CommandSender = mpsc::Sender<Box<Command>>;
/// The driver's end of a command queue (see [`CommandSender`]).
pub(crate) type CommandReceiver = mpsc::Receiver<Box<Command>>;

/// What the public API asks the driver to do.
pub(crate) enum Command {
    Start(Reply<()>),
    Stop(oneshot::Sender<()>),
    Send {
        target: String,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
        reply: Reply<()>,
    },
    Invoke {
        target: String,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
        reply: Reply<Option<RawValue>>,
    },
    Stream {
        target: String,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
        items: ItemSender,
        reply: Reply<String>,
    },
    CancelStream(String),
    NewUploadStream(oneshot::Sender<String>),
    UploadItem {
        stream_id: String,
        item: RawValue,
        reply: Reply<()>,
    },
    UploadComplete {
        stream_id: String,
        error: Option<String>,
    },
}

/// Input from the IO tasks.
pub(crate) enum Io {
    Http(RequestId, HttpEvent),
    WebSocket(u64, WebSocketEvent),
    Token(Result<Option<String>, String>),
}

/// The state the API reads without asking the driver.
#[derive(Debug)]
pub(crate) struct Shared {
    status: Mutex<(State, Option<String>)>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            status: Mutex::new((State::Disconnected, None)),
        }
    }

    pub(crate) fn state(&self) -> State {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    pub(crate) fn connection_id(&self) -> Option<String> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    fn set(&self, state: State, connection_id: Option<&str>) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.0 = state;
        if status.1.as_deref() != connection_id {
            status.1 = connection_id.map(str::to_string);
        }
    }
}

/// Everything the driver needs, created by the builder and spawned on first use.
pub(crate) struct DriverSeed {
    pub conn: Connection,
    pub commands: CommandReceiver,
    pub control: CommandReceiver,
    pub token_factory: Option<TokenFactory>,
    pub registry: Arc<Registry>,
    pub shared: Arc<Shared>,
    pub log_message_content: bool,
}

/// Something the application must receive before the driver reads more input.
enum Delivery {
    /// Boxed like the dispatcher's queue entries (see [`CommandSender`]).
    Dispatch(Box<Dispatch>),
    Item(ItemSender, Result<RawValue, Error>),
}

enum Wake {
    /// A client-result handler's answer: the invocation id and the outcome.
    ClientResult(Box<(String, ClientResult)>),
    Deliverable,
    Writable,
    Io(Io),
    Timeout,
    Command(Option<Box<Command>>),
    Control(Option<Box<Command>>),
}

struct Driver {
    conn: Connection,
    commands: CommandReceiver,
    commands_open: bool,
    /// Start, stop and stream cancellation: never held back by backpressure.
    control: CommandReceiver,
    control_open: bool,
    token_factory: Option<TokenFactory>,
    shared: Arc<Shared>,
    log_message_content: bool,
    max_message_size: usize,

    io_tx: mpsc::Sender<Io>,
    io_rx: mpsc::Receiver<Io>,
    http_client: Option<reqwest::Client>,
    http_tasks: HashMap<RequestId, AbortHandle>,
    socket: Option<Socket>,
    socket_generation: u64,
    outbox: VecDeque<Outgoing>,

    dispatch_tx: mpsc::Sender<Box<Dispatch>>,
    results_rx: mpsc::Receiver<Box<(String, ClientResult)>>,
    deliveries: VecDeque<Delivery>,

    starts: Vec<Reply<()>>,
    stops: Vec<oneshot::Sender<()>>,
    writes: HashMap<u64, Reply<()>>,
    invokes: HashMap<String, Reply<Option<RawValue>>>,
    invoke_ops: HashMap<u64, String>,
    streams: HashMap<String, ItemSender>,
    stream_ops: HashMap<u64, String>,
}

/// Spawns the driver and the handler dispatcher of one connection.
pub(crate) fn spawn(seed: DriverSeed) {
    let (dispatch_tx, dispatch_rx) = mpsc::channel(DISPATCH_QUEUE);
    let (results_tx, results_rx) = mpsc::channel(DISPATCH_QUEUE);
    tokio::spawn(run_dispatcher(
        dispatch_rx,
        seed.registry.clone(),
        results_tx,
    ));
    let (io_tx, io_rx) = mpsc::channel(IO_QUEUE);
    let max_message_size = seed.conn.config().max_message_size;
    let driver = Driver {
        conn: seed.conn,
        commands: seed.commands,
        commands_open: true,
        control: seed.control,
        control_open: true,
        token_factory: seed.token_factory,
        shared: seed.shared,
        log_message_content: seed.log_message_content,
        max_message_size,
        io_tx,
        io_rx,
        http_client: None,
        http_tasks: HashMap::new(),
        socket: None,
        socket_generation: 0,
        outbox: VecDeque::new(),
        dispatch_tx,
        results_rx,
        deliveries: VecDeque::new(),
        starts: Vec::new(),
        stops: Vec::new(),
        writes: HashMap::new(),
        invokes: HashMap::new(),
        invoke_ops: HashMap::new(),
        streams: HashMap::new(),
        stream_ops: HashMap::new(),
    };
    tokio::spawn(driver.run());
}

enum Front {
    Dispatch(mpsc::Sender<Box<Dispatch>>),
    Item(ItemSender),
}

async fn until_deliverable(front: Option<Front>) {
    match front {
        Some(Front::Dispatch(tx)) => {
            let _ = tx.reserve().await;
        }
        Some(Front::Item(tx)) => {
            let _ = tx.reserve().await;
        }
        None => std::future::pending().await,
    }
}

async fn until_writable(out: Option<mpsc::Sender<Outgoing>>) {
    match out {
        Some(tx) => {
            let _ = tx.reserve().await;
        }
        None => std::future::pending().await,
    }
}

async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn closed_error() -> Error {
    Error::Connection(talkback_core::Error::Closed(
        talkback_core::connection::INVOCATION_CANCELED.into(),
    ))
}

fn describe(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) => text.replace('\u{1e}', "\\x1e"),
        Err(_) => format!("{data:02x?}"),
    }
}

impl Driver {
    async fn run(mut self) {
        loop {
            self.drain();
            if !self.commands_open
                && self.conn.state() == State::Disconnected
                && self.deliveries.is_empty()
            {
                break;
            }
            let deadline = self.conn.poll_timeout().map(tokio::time::Instant::from_std);
            let read_io = self.deliveries.is_empty();
            // Calls wait while the socket's writer is behind or while stateful reconnect's
            // buffer of unacknowledged messages is full (item 91).
            let take_commands =
                self.commands_open && self.outbox.is_empty() && !self.conn.is_send_blocked();
            let front = self.deliveries.front().map(|d| match d {
                Delivery::Dispatch(_) => Front::Dispatch(self.dispatch_tx.clone()),
                Delivery::Item(tx, _) => Front::Item(tx.clone()),
            });
            let out = if self.outbox.is_empty() {
                None
            } else {
                self.socket.as_ref().map(|s| s.out.clone())
            };
            let wake = tokio::select! {
                Some(done) = self.results_rx.recv() => Wake::ClientResult(done),
                () = until_deliverable(front) => Wake::Deliverable,
                () = until_writable(out) => Wake::Writable,
                Some(io) = self.io_rx.recv(), if read_io => Wake::Io(io),
                () = until(deadline) => Wake::Timeout,
                command = self.commands.recv(), if take_commands => Wake::Command(command),
                command = self.control.recv(), if self.control_open => Wake::Control(command),
            };
            let now = Instant::now();
            match wake {
                Wake::ClientResult(done) => {
                    let (id, result) = *done;
                    self.conn.complete_client_result(now, &id, result)
                }
                Wake::Deliverable => self.flush_deliveries(),
                Wake::Writable => self.flush_outbox(),
                Wake::Io(io) => self.handle_io(now, io),
                Wake::Timeout => self.conn.handle_timeout(now),
                Wake::Command(Some(command)) => self.handle_command(now, *command),
                Wake::Control(Some(command)) => self.handle_command(now, *command),
                Wake::Control(None) => self.control_open = false,
                Wake::Command(None) => {
                    self.commands_open = false;
                    if self.conn.state() != State::Disconnected {
                        self.conn.stop(now);
                    }
                }
            }
        }
        for (_, task) in self.http_tasks.drain() {
            task.abort();
        }
        self.socket = None;
        tracing::debug!("connection driver finished");
    }

    /// Drains the core's transmits and events until it has nothing more to say.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.conn.poll_transmit() {
                progressed = true;
                self.perform(transmit);
            }
            while let Some(event) = self.conn.poll_event() {
                progressed = true;
                self.on_event(event);
            }
            if !progressed {
                break;
            }
        }
        let state = self.conn.state();
        self.shared.set(state, self.conn.connection_id());
        if state == State::Disconnected {
            for stop in self.stops.drain(..) {
                let _ = stop.send(());
            }
        }
    }

    fn http_client(&mut self) -> Result<reqwest::Client, String> {
        if let Some(client) = &self.http_client {
            return Ok(client.clone());
        }
        let client = http::new_client()?;
        self.http_client = Some(client.clone());
        Ok(client)
    }

    fn perform(&mut self, transmit: Transmit) {
        let now = Instant::now();
        match transmit {
            Transmit::Http(request) => {
                tracing::debug!(id = request.id.0, method = ?request.method, url = %request.url, "HTTP request");
                if self.log_message_content && !request.body.is_empty() {
                    tracing::trace!(id = request.id.0, body = %describe(&request.body), "HTTP request body");
                }
                let id = request.id;
                match self.http_client() {
                    Ok(client) => {
                        let task = tokio::spawn(http::perform(client, request, self.io_tx.clone()));
                        self.http_tasks.insert(id, task.abort_handle());
                    }
                    Err(message) => self.conn.handle_http(
                        now,
                        id,
                        HttpEvent::Failed {
                            timed_out: false,
                            message,
                        },
                    ),
                }
            }
            Transmit::AbortHttp(id) => {
                if let Some(task) = self.http_tasks.remove(&id) {
                    tracing::debug!(id = id.0, "HTTP request aborted");
                    task.abort();
                }
            }
            Transmit::FetchAccessToken => match &self.token_factory {
                Some(factory) => {
                    let fetch = factory();
                    let io = self.io_tx.clone();
                    tokio::spawn(async move {
                        let token = fetch.await;
                        let _ = io.send(Io::Token(token)).await;
                    });
                }
                None => self.conn.handle_access_token(now, Ok(None)),
            },
            Transmit::OpenWebSocket { url, headers } => {
                tracing::debug!(%url, "opening WebSocket");
                self.socket_generation += 1;
                self.outbox.clear();
                self.socket = Some(websocket::open(
                    self.socket_generation,
                    url,
                    headers,
                    self.max_message_size,
                    self.io_tx.clone(),
                ));
            }
            Transmit::WebSocketSend { data, format } => {
                if self.log_message_content {
                    tracing::trace!(data = %describe(&data), "WebSocket send");
                } else {
                    tracing::trace!(bytes = data.len(), "WebSocket send");
                }
                self.write(Outgoing::Frame(data, format));
            }
            Transmit::CloseWebSocket => {
                tracing::debug!("closing WebSocket");
                self.write(Outgoing::Close);
            }
        }
    }

    /// Hands a frame to the socket's writer, queueing it when the writer is busy (commands
    /// then wait until the queue drains).
    fn write(&mut self, item: Outgoing) {
        let Some(socket) = &self.socket else {
            tracing::debug!("no open WebSocket for an outgoing frame; dropped");
            return;
        };
        if !self.outbox.is_empty() {
            self.outbox.push_back(item);
            return;
        }
        match socket.out.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => self.outbox.push_back(item),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn flush_outbox(&mut self) {
        let Some(socket) = &self.socket else {
            self.outbox.clear();
            return;
        };
        while let Some(item) = self.outbox.pop_front() {
            match socket.out.try_send(item) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(item)) => {
                    self.outbox.push_front(item);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        self.deliveries.push_back(delivery);
        self.flush_deliveries();
    }

    fn flush_deliveries(&mut self) {
        use mpsc::error::TrySendError;
        while let Some(delivery) = self.deliveries.pop_front() {
            match delivery {
                Delivery::Dispatch(d) => match self.dispatch_tx.try_send(d) {
                    Ok(()) | Err(TrySendError::Closed(_)) => {}
                    Err(TrySendError::Full(d)) => {
                        self.deliveries.push_front(Delivery::Dispatch(d));
                        return;
                    }
                },
                Delivery::Item(tx, item) => match tx.try_send(item) {
                    Ok(()) | Err(TrySendError::Closed(_)) => {}
                    Err(TrySendError::Full(item)) => {
                        self.deliveries.push_front(Delivery::Item(tx, item));
                        return;
                    }
                },
            }
        }
    }

    fn handle_io(&mut self, now: Instant, io: Io) {
        match io {
            Io::Http(id, event) => {
                if !self.http_tasks.contains_key(&id) {
                    return;
                }
                match &event {
                    HttpEvent::Response { status, body } => {
                        tracing::debug!(id = id.0, status, bytes = body.len(), "HTTP response");
                        if self.log_message_content && !body.is_empty() {
                            tracing::trace!(id = id.0, body = %describe(body), "HTTP response body");
                        }
                        self.http_tasks.remove(&id);
                    }
                    HttpEvent::Failed { message, .. } => {
                        tracing::debug!(id = id.0, %message, "HTTP request failed");
                        self.http_tasks.remove(&id);
                    }
                    HttpEvent::End { error } => {
                        tracing::debug!(id = id.0, ?error, "HTTP stream ended");
                        self.http_tasks.remove(&id);
                    }
                    HttpEvent::Head { status } => {
                        tracing::debug!(id = id.0, status, "HTTP stream opened");
                    }
                    HttpEvent::Chunk(data) => {
                        if self.log_message_content {
                            tracing::trace!(id = id.0, data = %describe(data), "HTTP stream chunk");
                        }
                    }
                }
                self.conn.handle_http(now, id, event);
            }
            Io::WebSocket(generation, event) => {
                if self.socket.as_ref().map(|s| s.generation) != Some(generation) {
                    return;
                }
                match &event {
                    WebSocketEvent::Message(data) => {
                        if self.log_message_content {
                            tracing::trace!(data = %describe(data), "WebSocket receive");
                        } else {
                            tracing::trace!(bytes = data.len(), "WebSocket receive");
                        }
                    }
                    WebSocketEvent::Opened => tracing::debug!("WebSocket open"),
                    WebSocketEvent::Failed { status, message } => {
                        tracing::debug!(?status, %message, "WebSocket failed");
                        self.socket = None;
                        self.outbox.clear();
                    }
                    WebSocketEvent::Closed { code, reason } => {
                        tracing::debug!(?code, %reason, "WebSocket closed");
                        self.socket = None;
                        self.outbox.clear();
                    }
                }
                self.conn.handle_websocket(now, event);
            }
            Io::Token(token) => self.conn.handle_access_token(now, token),
        }
    }

    fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Start(reply) => match self.conn.start(now) {
                Ok(()) => self.starts.push(reply),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Stop(reply) => {
                if self.conn.state() == State::Disconnected {
                    let _ = reply.send(());
                } else {
                    self.stops.push(reply);
                    self.conn.stop(now);
                }
            }
            Command::Send {
                target,
                arguments,
                stream_ids,
                reply,
            } => {
                let sent = if stream_ids.is_empty() {
                    self.conn.send(now, &target, arguments)
                } else {
                    self.conn
                        .send_with_streams(now, &target, arguments, stream_ids)
                };
                match sent {
                    Ok(op) => {
                        self.writes.insert(op, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::Invoke {
                target,
                arguments,
                stream_ids,
                reply,
            } => match self.conn.invoke(now, &target, arguments, stream_ids) {
                Ok((id, op)) => {
                    self.invoke_ops.insert(op, id.clone());
                    self.invokes.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Stream {
                target,
                arguments,
                stream_ids,
                items,
                reply,
            } => match self.conn.stream(now, &target, arguments, stream_ids) {
                Ok((id, op)) => {
                    self.stream_ops.insert(op, id.clone());
                    self.streams.insert(id.clone(), items);
                    let _ = reply.send(Ok(id));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::CancelStream(id) => {
                if self.streams.remove(&id).is_some() {
                    self.conn.cancel_stream(now, &id);
                }
            }
            Command::NewUploadStream(reply) => {
                let _ = reply.send(self.conn.new_upload_stream());
            }
            Command::UploadItem {
                stream_id,
                item,
                reply,
            } => match self.conn.upload_item(now, &stream_id, item) {
                Ok(op) => {
                    self.writes.insert(op, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::UploadComplete { stream_id, error } => {
                if let Err(e) = self.conn.upload_complete(now, &stream_id, error) {
                    tracing::debug!(%stream_id, error = %e, "upload completion not sent");
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::StateChanged { from, to } => {
                tracing::debug!(?from, ?to, "state changed");
                let id = if to == State::Disconnected {
                    None
                } else {
                    self.conn.connection_id().map(str::to_string)
                };
                self.shared.set(to, id.as_deref());
            }
            Event::Started { connection_id } => {
                tracing::debug!(?connection_id, "started");
                self.shared.set(self.conn.state(), connection_id.as_deref());
                for start in self.starts.drain(..) {
                    let _ = start.send(Ok(()));
                }
            }
            Event::StartFailed(error) => {
                tracing::debug!(%error, "start failed");
                for start in self.starts.drain(..) {
                    let _ = start.send(Err(error.clone().into()));
                }
            }
            Event::Reconnecting(error) => {
                tracing::debug!(%error, "reconnecting");
                self.deliver(Delivery::Dispatch(Box::new(Dispatch::Reconnecting(
                    error.into(),
                ))));
            }
            Event::Reconnected { connection_id } => {
                tracing::debug!(?connection_id, "reconnected");
                self.shared.set(self.conn.state(), connection_id.as_deref());
                self.deliver(Delivery::Dispatch(Box::new(Dispatch::Reconnected(
                    connection_id,
                ))));
            }
            Event::Closed(error) => {
                tracing::debug!(?error, "closed");
                self.shared.set(State::Disconnected, None);
                for start in self.starts.drain(..) {
                    let _ = start.send(Err(closed_error()));
                }
                // Pending writes are not failed here: the core reports every one of them
                // (a send whose POST is still in flight may yet reach the server).
                for (_, reply) in self.invokes.drain() {
                    let _ = reply.send(Err(closed_error()));
                }
                self.invoke_ops.clear();
                self.stream_ops.clear();
                let streams: Vec<ItemSender> = self.streams.drain().map(|(_, tx)| tx).collect();
                for tx in streams {
                    self.deliver(Delivery::Item(tx, Err(closed_error())));
                }
                self.deliver(Delivery::Dispatch(Box::new(Dispatch::Closed(
                    error.map(Error::from),
                ))));
                for stop in self.stops.drain(..) {
                    let _ = stop.send(());
                }
            }
            Event::Invocation {
                target,
                arguments,
                invocation_id,
            } => {
                self.deliver(Delivery::Dispatch(Box::new(Dispatch::Invocation {
                    target,
                    arguments,
                    invocation_id,
                })));
            }
            Event::InvocationCompleted { id, result } => {
                if let Some(reply) = self.invokes.remove(&id) {
                    let _ = reply.send(result.map_err(Error::from));
                }
            }
            Event::StreamItem { id, item } => {
                if let Some(tx) = self.streams.get(&id) {
                    let tx = tx.clone();
                    self.deliver(Delivery::Item(tx, Ok(item)));
                }
            }
            Event::StreamCompleted { id, result } => {
                if let Some(tx) = self.streams.remove(&id) {
                    if let Err(e) = result {
                        self.deliver(Delivery::Item(tx, Err(e.into())));
                    }
                }
            }
            Event::Written { op, result } => {
                if let Some(reply) = self.writes.remove(&op) {
                    let _ = reply.send(result.clone().map_err(Error::from));
                }
                if let Some(id) = self.invoke_ops.remove(&op) {
                    if let Err(e) = &result {
                        if let Some(reply) = self.invokes.remove(&id) {
                            let _ = reply.send(Err(e.clone().into()));
                        }
                    }
                }
                if let Some(id) = self.stream_ops.remove(&op) {
                    if let Err(e) = result {
                        if let Some(tx) = self.streams.remove(&id) {
                            self.deliver(Delivery::Item(tx, Err(e.into())));
                        }
                    }
                }
            }
        }
    }
}
