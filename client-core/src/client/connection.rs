//! [`HubConnection`]: the async API over one connection's driver task.

use super::commands::{
    gone, Command, Commands, Control, Shared, COMMAND_QUEUE, CONTROL_QUEUE, STREAM_BUFFER,
};
use super::driver::{self, bounded, DriverSeed};
use super::error::{Error, Result};
use super::handlers::{HandlerId, Registry};
use super::runtime::{MaybeSend, MaybeSync, Runtime};
use super::stream::{decode_item, keep_raw, HubStream};
use super::transmit::TokenFactory;
use crate::protocol::{encode_arguments, RawValue};
use crate::{Config, Connection, Duration, Protocol, State};
use futures_channel::oneshot;
use futures_core::Stream;
use futures_util::future::select;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The longest [`HubConnection::stop`] waits for the calls queued before it to be taken.
pub const STOP_ORDER_WAIT: Duration = Duration::from_secs(1);

/// A connection to a SignalR hub. Cheap to clone; every clone drives the same connection.
///
/// Calls go to one driver task per connection, spawned on the connection's [`Runtime`] at the
/// first call (for the tokio shell: on the tokio runtime current at that call). The task ends
/// once the connection is Disconnected and every clone (and every upload in progress) is
/// dropped; handlers that capture a clone keep it alive until `stop`.
///
/// # Handlers and backpressure
///
/// `on` handlers run in order on one task per connection; a slow handler makes the client stop
/// reading the transport once a bounded queue is full (see the [`client`](super) module docs), so a
/// slow consumer applies TCP backpressure instead of growing memory. Stream consumers are
/// treated the same way: each stream buffers at most a few dozen items.
#[derive(Clone)]
pub struct HubConnection {
    inner: Arc<Inner>,
}

struct Inner {
    commands: Commands,
    control: Control,
    /// Boxed: the engine in it is large, and it moves to the driver at the first call (the
    /// connection's shared state should not keep its room for the connection's whole life).
    seed: Mutex<Option<Box<DriverSeed>>>,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    protocol: Protocol,
    runtime: Arc<dyn Runtime>,
}

// A connection is shared by cloning it into tasks and threads: checked at compile time.
#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    const fn shareable<T: Clone + MaybeSend + MaybeSync + 'static>() {}
    shareable::<HubConnection>();
    shareable::<Error>();
};

impl std::fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnection")
            .field("state", &self.state())
            .field("connection_id", &self.connection_id())
            .finish()
    }
}

impl HubConnection {
    // On wasm32 nothing is `Send`; the `Arc`s share a connection between clones on one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        config: Config,
        token_factory: Option<TokenFactory>,
        log_message_content: bool,
    ) -> Self {
        let protocol = config.protocol;
        let (commands_tx, commands_rx) = Commands::new(COMMAND_QUEUE);
        let (control_tx, control_rx) = Control::new(CONTROL_QUEUE);
        let shared = Arc::new(Shared::new());
        let registry = Arc::new(Registry::default());
        let seed = DriverSeed {
            conn: Connection::new(config),
            commands: commands_rx,
            control: control_rx,
            token_factory,
            registry: registry.clone(),
            shared: shared.clone(),
            log_message_content,
        };
        HubConnection {
            inner: Arc::new(Inner {
                commands: commands_tx,
                control: control_tx,
                seed: Mutex::new(Some(Box::new(seed))),
                shared,
                registry,
                protocol,
                runtime,
            }),
        }
    }

    /// The command queue, spawning the driver on the runtime at the first use.
    fn commands(&self) -> Result<&Commands> {
        let mut seed = self.inner.seed.lock().unwrap_or_else(|e| e.into_inner());
        if seed.is_some() {
            self.inner.runtime.can_spawn().map_err(Error::Runtime)?;
            if let Some(seed) = seed.take() {
                driver::spawn(&self.inner.runtime, *seed);
            }
        }
        Ok(&self.inner.commands)
    }

    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands()?.send(make(tx)).await?;
        rx.await.map_err(|_| gone())
    }

    /// Like `request`, on the control queue, which backpressure never holds back.
    async fn control<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands()?;
        self.inner.control.send(make(tx)).await?;
        rx.await.map_err(|_| gone())
    }

    fn encode<A: Serialize + ?Sized>(&self, arguments: &A) -> Result<Vec<RawValue>> {
        encode_arguments(self.inner.protocol, arguments).map_err(Error::Encode)
    }

    /// The hub protocol of this connection.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.shared.state()
    }

    /// The connection id given by negotiate; `None` when not connected or after
    /// `skip_negotiation`.
    pub fn connection_id(&self) -> Option<String> {
        self.inner.shared.connection_id()
    }

    /// Connects: negotiates, opens a transport and completes the handshake. Fails unless the
    /// connection is Disconnected.
    pub async fn start(&self) -> Result<()> {
        self.control(Command::Start).await?
    }

    /// Stops the connection (sending Close when connected) and waits until it is Disconnected.
    /// Stopping a Disconnected connection does nothing.
    ///
    /// Calls made before `stop` (from this task) go out before the Close message, as the
    /// reference client writes them before its Close, and so fail like the reference client's
    /// ("Invocation canceled due to the underlying connection being closed.") unless the server
    /// answers first, rather than being refused as made when not connected. `stop` waits for
    /// the driver to take them for at most [`STOP_ORDER_WAIT`] (a full send buffer can hold them
    /// back longer).
    pub async fn stop(&self) -> Result<()> {
        if self.state() == State::Connected {
            let commands = self.commands()?;
            let taken = async {
                let (tx, rx) = oneshot::channel();
                if commands.send(Command::Barrier(tx)).await.is_ok() {
                    let _ = rx.await;
                }
            };
            let deadline = self.inner.runtime.now() + STOP_ORDER_WAIT;
            let _ = select(Box::pin(taken), self.inner.runtime.sleep_until(deadline)).await;
        }
        self.control(Command::Stop).await
    }

    /// Registers a handler for the client method `name` (matched case-insensitively). The
    /// arguments are decoded into the tuple `T`; when they do not fit, the call is logged and
    /// skipped. Returns an id for [`HubConnection::off_handler`].
    pub fn on<T, F>(&self, name: &str, handler: F) -> HandlerId
    where
        T: DeserializeOwned,
        F: Fn(T) + MaybeSend + MaybeSync + 'static,
    {
        self.inner.registry.on(name, handler)
    }

    /// Registers a handler that gets the arguments still encoded.
    pub fn on_raw<F>(&self, name: &str, handler: F) -> HandlerId
    where
        F: Fn(&[RawValue]) + MaybeSend + MaybeSync + 'static,
    {
        self.inner.registry.on_raw(name, handler)
    }

    /// Registers a handler that sees every server invocation (method name and encoded
    /// arguments), whatever other handlers exist. It never answers a client-result request.
    pub fn on_any<F>(&self, handler: F)
    where
        F: Fn(&str, &[RawValue]) + MaybeSend + MaybeSync + 'static,
    {
        self.inner.registry.on_any(handler)
    }

    /// Registers a callback for each server invocation that no handler takes (no `on` or
    /// `on_result` handler of its name, no `on_any` handler): the method name as sent, and the
    /// invocation id when the server awaits a result (it gets "Client didn't provide a
    /// result."). For logging it as the reference client does ("No client method with the
    /// name 'x' found.").
    pub fn on_unhandled<F>(&self, callback: F)
    where
        F: Fn(&str, Option<&str>) + MaybeSend + MaybeSync + 'static,
    {
        self.inner.registry.on_unhandled(callback)
    }

    /// Registers a client-result handler: when the server invokes `name` and awaits a result,
    /// the handler's `Ok` value is sent back, or its error text.
    pub fn on_result<T, R, E, F, Fut>(&self, name: &str, handler: F) -> HandlerId
    where
        T: DeserializeOwned,
        R: Serialize,
        E: std::fmt::Display,
        F: Fn(T) -> Fut + MaybeSend + MaybeSync + 'static,
        Fut: Future<Output = std::result::Result<R, E>> + MaybeSend + 'static,
    {
        self.inner
            .registry
            .on_result(self.inner.protocol, name, handler)
    }

    /// Registers a client-result handler on encoded values.
    pub fn on_result_raw<F, Fut>(&self, name: &str, handler: F) -> HandlerId
    where
        F: Fn(Vec<RawValue>) -> Fut + MaybeSend + MaybeSync + 'static,
        Fut: Future<Output = std::result::Result<RawValue, String>> + MaybeSend + 'static,
    {
        self.inner.registry.on_result_raw(name, handler)
    }

    /// Removes every handler of `name`.
    pub fn off(&self, name: &str) {
        self.inner.registry.off(name)
    }

    /// Removes one handler of `name`.
    pub fn off_handler(&self, name: &str, id: HandlerId) {
        self.inner.registry.off_handler(name, id)
    }

    /// Called when the connection ends: `None` after `stop` or when reconnect attempts ran out.
    pub fn on_close<F>(&self, callback: F)
    where
        F: Fn(Option<Error>) + MaybeSend + MaybeSync + 'static,
    {
        self.inner.registry.on_close(Arc::new(callback))
    }

    /// Called when the connection was lost and automatic reconnect begins.
    pub fn on_reconnecting<F>(&self, callback: F)
    where
        F: Fn(Error) + MaybeSend + MaybeSync + 'static,
    {
        self.inner.registry.on_reconnecting(Arc::new(callback))
    }

    /// Called after a successful automatic reconnect, with the new connection id (rejoin
    /// groups here: the server forgot them).
    pub fn on_reconnected<F>(&self, callback: F)
    where
        F: Fn(Option<String>) + MaybeSend + MaybeSync + 'static,
    {
        self.inner.registry.on_reconnected(Arc::new(callback))
    }

    /// Invokes `method` with a tuple of arguments and waits for its result. A void completion
    /// decodes as `null` (so `()` and `Option<_>` fit it).
    pub async fn invoke<R: DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl Serialize,
    ) -> Result<R> {
        let arguments = self.encode(&arguments)?;
        let result = self.invoke_raw(method, arguments).await?;
        self.decode_result(result)
    }

    fn decode_result<R: DeserializeOwned>(&self, result: Option<RawValue>) -> Result<R> {
        let raw = result.unwrap_or_else(|| RawValue::null(self.inner.protocol));
        raw.decode().map_err(Error::Decode)
    }

    /// Invokes `method` with encoded arguments; `None` is a void completion.
    pub async fn invoke_raw(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
    ) -> Result<Option<RawValue>> {
        self.invoke_with_streams(method, arguments, Vec::new())
            .await
    }

    async fn invoke_with_streams(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<Option<RawValue>> {
        self.request(|reply| Command::Invoke {
            target: method.to_string(),
            arguments,
            stream_ids,
            reply,
        })
        .await?
    }

    /// Sends a non-blocking invocation; resolves once it is handed to the transport.
    pub async fn send(&self, method: &str, arguments: impl Serialize) -> Result<()> {
        let arguments = self.encode(&arguments)?;
        self.send_raw(method, arguments).await
    }

    /// Sends a non-blocking invocation with encoded arguments.
    pub async fn send_raw(&self, method: &str, arguments: Vec<RawValue>) -> Result<()> {
        self.send_with_streams(method, arguments, Vec::new()).await
    }

    async fn send_with_streams(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
    ) -> Result<()> {
        self.request(|reply| Command::Send {
            target: method.to_string(),
            arguments,
            stream_ids,
            reply,
        })
        .await?
    }

    /// Starts a server-to-client stream; its items decode into `T`.
    pub async fn stream<T: DeserializeOwned>(
        &self,
        method: &str,
        arguments: impl Serialize,
    ) -> Result<HubStream<T>> {
        let arguments = self.encode(&arguments)?;
        self.start_stream(method, arguments, Vec::new(), decode_item::<T>)
            .await
    }

    /// Starts a server-to-client stream with encoded arguments and items.
    pub async fn stream_raw(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
    ) -> Result<HubStream<RawValue>> {
        self.start_stream(method, arguments, Vec::new(), keep_raw)
            .await
    }

    async fn start_stream<T>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
        decode: fn(RawValue) -> Result<T>,
    ) -> Result<HubStream<T>> {
        let (items_tx, items_rx) = bounded(STREAM_BUFFER);
        let id = self
            .request(|reply| Command::Stream {
                target: method.to_string(),
                arguments,
                stream_ids,
                items: items_tx,
                reply,
            })
            .await??;
        Ok(HubStream::new(
            id,
            items_rx,
            self.inner.control.sender(),
            decode,
        ))
    }

    /// Invokes `method` with `arguments` plus one upload stream (sent item by item as it
    /// yields, then completed) and waits for the result.
    pub async fn invoke_with_upload<R, S>(
        &self,
        method: &str,
        arguments: impl Serialize,
        upload: S,
    ) -> Result<R>
    where
        R: DeserializeOwned,
        S: Stream + MaybeSend + 'static,
        S::Item: Serialize + MaybeSend,
    {
        let arguments = self.encode(&arguments)?;
        let items = encode_items(self.inner.protocol, upload);
        let result = self.invoke_upload(method, arguments, vec![items]).await?;
        self.decode_result(result)
    }

    /// [`HubConnection::invoke_with_upload`] with encoded arguments, upload items and result
    /// (`None` is a void completion).
    pub async fn invoke_raw_with_upload<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        upload: S,
    ) -> Result<Option<RawValue>>
    where
        S: Stream<Item = RawValue> + MaybeSend + 'static,
    {
        self.invoke_upload(method, arguments, vec![upload.map(Ok)])
            .await
    }

    /// Invokes `method` with encoded arguments and any number of upload streams, which the
    /// server's streaming parameters take in this order, and waits for the encoded result.
    /// Each upload yields `Ok(item)`s; an `Err(text)` ends that upload with the error `text`
    /// (its completion carries it, as the reference client's `Subject.error` does), and the
    /// end of the stream completes it.
    pub async fn invoke_raw_with_uploads<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        uploads: Vec<S>,
    ) -> Result<Option<RawValue>>
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        self.invoke_upload(method, arguments, uploads).await
    }

    /// Makes one upload stream id per upload.
    async fn upload_ids(&self, count: usize) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            ids.push(self.request(Command::NewUploadStream).await?);
        }
        Ok(ids)
    }

    /// Pumps each upload under its id.
    fn spawn_uploads<S>(&self, ids: Vec<String>, uploads: Vec<S>)
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        for (id, items) in ids.into_iter().zip(uploads) {
            self.spawn_upload(id, items);
        }
    }

    async fn invoke_upload<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        uploads: Vec<S>,
    ) -> Result<Option<RawValue>>
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        let stream_ids = self.upload_ids(uploads.len()).await?;
        let (reply, result) = oneshot::channel();
        self.commands()?
            .send(Command::Invoke {
                target: method.to_string(),
                arguments,
                stream_ids: stream_ids.clone(),
                reply,
            })
            .await?;
        self.spawn_uploads(stream_ids, uploads);
        result.await.map_err(|_| gone())?
    }

    /// Sends a non-blocking invocation with one upload stream; resolves once the invocation is
    /// written (the items keep flowing in the background).
    pub async fn send_with_upload<S>(
        &self,
        method: &str,
        arguments: impl Serialize,
        upload: S,
    ) -> Result<()>
    where
        S: Stream + MaybeSend + 'static,
        S::Item: Serialize + MaybeSend,
    {
        let arguments = self.encode(&arguments)?;
        let items = encode_items(self.inner.protocol, upload);
        self.send_upload(method, arguments, vec![items]).await
    }

    /// [`HubConnection::send_with_upload`] with encoded arguments and upload items.
    pub async fn send_raw_with_upload<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        upload: S,
    ) -> Result<()>
    where
        S: Stream<Item = RawValue> + MaybeSend + 'static,
    {
        self.send_upload(method, arguments, vec![upload.map(Ok)])
            .await
    }

    /// [`HubConnection::send_raw_with_upload`] with any number of uploads, whose items may end
    /// them with an error (see [`HubConnection::invoke_raw_with_uploads`]).
    pub async fn send_raw_with_uploads<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        uploads: Vec<S>,
    ) -> Result<()>
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        self.send_upload(method, arguments, uploads).await
    }

    async fn send_upload<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        uploads: Vec<S>,
    ) -> Result<()>
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        let stream_ids = self.upload_ids(uploads.len()).await?;
        let (reply, written) = oneshot::channel();
        self.commands()?
            .send(Command::Send {
                target: method.to_string(),
                arguments,
                stream_ids: stream_ids.clone(),
                reply,
            })
            .await?;
        self.spawn_uploads(stream_ids, uploads);
        written.await.map_err(|_| gone())?
    }

    /// Starts a server-to-client stream that takes one upload stream.
    pub async fn stream_with_upload<T, S>(
        &self,
        method: &str,
        arguments: impl Serialize,
        upload: S,
    ) -> Result<HubStream<T>>
    where
        T: DeserializeOwned,
        S: Stream + MaybeSend + 'static,
        S::Item: Serialize + MaybeSend,
    {
        let arguments = self.encode(&arguments)?;
        let items = encode_items(self.inner.protocol, upload);
        self.stream_upload(method, arguments, vec![items], decode_item::<T>)
            .await
    }

    /// [`HubConnection::stream_with_upload`] with encoded arguments, upload items and stream
    /// items.
    pub async fn stream_raw_with_upload<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        upload: S,
    ) -> Result<HubStream<RawValue>>
    where
        S: Stream<Item = RawValue> + MaybeSend + 'static,
    {
        self.stream_upload(method, arguments, vec![upload.map(Ok)], keep_raw)
            .await
    }

    /// [`HubConnection::stream_raw_with_upload`] with any number of uploads, whose items may
    /// end them with an error (see [`HubConnection::invoke_raw_with_uploads`]).
    pub async fn stream_raw_with_uploads<S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        uploads: Vec<S>,
    ) -> Result<HubStream<RawValue>>
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        self.stream_upload(method, arguments, uploads, keep_raw)
            .await
    }

    async fn stream_upload<T, S>(
        &self,
        method: &str,
        arguments: Vec<RawValue>,
        uploads: Vec<S>,
        decode: fn(RawValue) -> Result<T>,
    ) -> Result<HubStream<T>>
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        let stream_ids = self.upload_ids(uploads.len()).await?;
        let stream = self
            .start_stream(method, arguments, stream_ids.clone(), decode)
            .await?;
        self.spawn_uploads(stream_ids, uploads);
        Ok(stream)
    }

    /// Pumps an upload stream: each item waits until the previous one was handed to the
    /// transport, so a fast producer cannot outrun the connection. An item that could not be
    /// encoded ends the upload with that error.
    fn spawn_upload<S>(&self, stream_id: String, upload: S)
    where
        S: Stream<Item = UploadItem> + MaybeSend + 'static,
    {
        // A handle of its own: the queue stays open while the upload runs.
        let commands = self.inner.commands.clone();
        self.inner.runtime.spawn(Box::pin(async move {
            let mut upload = std::pin::pin!(upload);
            let mut error = None;
            while let Some(item) = upload.next().await {
                let item = match item {
                    Ok(item) => item,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                };
                let (reply, written) = oneshot::channel();
                let command = Command::UploadItem {
                    stream_id: stream_id.clone(),
                    item,
                    reply,
                };
                if commands.send(command).await.is_err() {
                    return;
                }
                match written.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(%stream_id, error = %e, "upload stopped");
                        return;
                    }
                    Err(_) => return,
                }
            }
            let _ = commands
                .send(Command::UploadComplete { stream_id, error })
                .await;
        }));
    }
}

/// One upload item, encoded, or the error text that ends the upload.
pub type UploadItem = std::result::Result<RawValue, String>;

/// The items of a typed upload, encoded for `protocol`.
fn encode_items<S>(protocol: Protocol, upload: S) -> impl Stream<Item = UploadItem> + MaybeSend
where
    S: Stream + MaybeSend,
    S::Item: Serialize + MaybeSend,
{
    upload.map(move |item| {
        RawValue::encode(protocol, &item)
            .map_err(|e| format!("could not encode an upload item: {e}"))
    })
}
