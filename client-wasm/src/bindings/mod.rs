//! The low-level JavaScript surface behind the npm package `talkback-signalr` (feature `js-api`).
//!
//! The familiar classes (`HubConnectionBuilder`, `HubConnection`, `Subject`, the protocols, the
//! errors) are written in JavaScript in `client-wasm/npm/src/index.js`, on top of the small
//! surface here: one [`RawConnection`] per hub connection that takes and gives values still
//! encoded — JSON text for the JSON protocol (the JavaScript side calls `JSON.stringify` and
//! `JSON.parse`), MessagePack bytes (`Uint8Array`) for MessagePack (the JavaScript side encodes
//! and decodes them with the official client's type mapping). Keeping value conversion in
//! JavaScript keeps the module small and the mapping identical to `@microsoft/signalr`.
//!
//! Errors cross as plain objects `{message, kind}` (see [`error_value`]); `index.js` builds
//! the official error classes from their data.

// The exported types are handles for JavaScript, where `Debug` means nothing.
#![allow(missing_debug_implementations)]

use crate::shell::NodeShell;
use crate::BrowserRuntime;
use futures_channel::{mpsc, oneshot};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use talkback_core::client::{
    self, BoxFuture, BoxStream, HubConnection, HubConnectionBuilder, Runtime, Shell, WebSocket,
    WebSocketRequest,
};
use talkback_core::{
    Duration, HttpEvent, HttpRequest, Instant, Protocol, RawValue, ReconnectPolicy, RetryContext,
    State, TransportSet,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn millis(value: &JsValue) -> Option<Duration> {
    value
        .as_f64()
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_micros((ms * 1000.0) as u64))
}

fn set(object: &js_sys::Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &JsValue::from_str(key), value);
}

/// An error for JavaScript: `{message, kind}`, `kind` one of `protocol`, `server`, `connect`,
/// `transport`, `closed`, `usage`, `access-token`, `config`, `encode`, `decode`, `runtime`.
/// A `connect` error also has `negotiate: true` when the negotiate request failed, `status`
/// and `statusText` for a negotiate answered with another status than 200, and `transports`:
/// `[{transport, kind, reason}]` with `kind` one of `disabled`, `format`, `unsupported`,
/// `failed`. A `transport` error that an HTTP status caused has `status` and `statusText`.
fn error_value(error: &client::Error) -> JsValue {
    use client::ConnectionError as C;
    let object = js_sys::Object::new();
    let text = match error {
        // The builder's text alone, as the official client's.
        client::Error::Config(text) => text.clone(),
        _ => error.to_string(),
    };
    set(&object, "message", &JsValue::from_str(&text));
    let kind = match error {
        client::Error::Connection(e) => match e {
            C::Protocol(_) => "protocol",
            C::Server(_) => "server",
            C::Connect(failure) => {
                if failure.negotiate {
                    set(&object, "negotiate", &JsValue::TRUE);
                }
                if let Some(status) = failure.status {
                    set(&object, "status", &JsValue::from(status));
                    if let Some(text) = &failure.status_text {
                        set(&object, "statusText", &JsValue::from_str(text));
                    }
                }
                let transports = Array::new();
                for t in &failure.transports {
                    let entry = js_sys::Object::new();
                    set(&entry, "transport", &JsValue::from_str(&t.transport));
                    set(&entry, "kind", &JsValue::from_str(t.kind.as_str()));
                    set(&entry, "reason", &JsValue::from_str(&t.reason));
                    transports.push(&entry);
                }
                set(&object, "transports", &transports);
                "connect"
            }
            C::Transport(text) => {
                if let Some((what, status)) = http_status_of(text) {
                    set(&object, "status", &JsValue::from(status));
                    set(&object, "statusText", &JsValue::from_str(what));
                }
                "transport"
            }
            C::Closed(_) => "closed",
            C::Usage(_) => "usage",
            C::AccessToken(_) => "access-token",
            _ => "other",
        },
        client::Error::Encode(_) => "encode",
        client::Error::Decode(_) => "decode",
        client::Error::Config(_) => "config",
        client::Error::Runtime(_) => "runtime",
        _ => "other",
    };
    set(&object, "kind", &JsValue::from_str(kind));
    object.into()
}

/// The HTTP status of a transport error the engine wrote with
/// `talkback_core::http_status::status_error` (`<what>: Status code '<n>'[: <body>]`), and the
/// `<what>`. (The engine's `Transport` errors carry text only.)
fn http_status_of(text: &str) -> Option<(&str, u16)> {
    const MARK: &str = ": Status code '";
    let at = text.find(MARK)?;
    let rest = &text[at + MARK.len()..];
    let end = rest.find('\'')?;
    let status = rest[..end].parse().ok()?;
    Some((&text[..at], status))
}

fn describe(value: &JsValue) -> String {
    crate::js::describe(value)
}

thread_local! {
    /// The JavaScript reconnect policies, by key: a [`ReconnectPolicy`] must be `Send`, and a
    /// JavaScript function is not, so the policy holds the key.
    static POLICIES: RefCell<(u32, HashMap<u32, Function>)> = RefCell::new((0, HashMap::new()));
}

type UploadRx = mpsc::UnboundedReceiver<client::UploadItem>;

thread_local! {
    /// The receiving ends of uploads made by `newUpload` and not yet used by a call.
    static UPLOADS: RefCell<(u32, HashMap<u32, UploadRx>)> = RefCell::new((0, HashMap::new()));
}

/// The uploads of a call, in order (ids not made by `newUpload`, or used already, are left out).
fn take_uploads(ids: Option<Vec<u32>>) -> Vec<UploadRx> {
    let ids = ids.unwrap_or_default();
    UPLOADS.with(|u| {
        let mut u = u.borrow_mut();
        ids.iter().filter_map(|id| u.1.remove(id)).collect()
    })
}

/// A reconnect policy that asks a JavaScript function
/// `(previousRetryCount, elapsedMilliseconds, retryReason) => number | null`.
struct JsPolicy(u32);

impl JsPolicy {
    fn new(f: Function) -> Self {
        POLICIES.with(|p| {
            let mut p = p.borrow_mut();
            p.0 += 1;
            let key = p.0;
            p.1.insert(key, f);
            JsPolicy(key)
        })
    }
}

impl Drop for JsPolicy {
    fn drop(&mut self) {
        let _ = POLICIES.try_with(|p| p.borrow_mut().1.remove(&self.0));
    }
}

impl ReconnectPolicy for JsPolicy {
    fn next_retry_delay(&mut self, context: &RetryContext) -> Option<Duration> {
        let f = POLICIES.with(|p| p.borrow().1.get(&self.0).cloned())?;
        let delay = f
            .call3(
                &JsValue::NULL,
                &JsValue::from(context.previous_retry_count),
                &JsValue::from(context.elapsed.as_millis() as f64),
                &JsValue::from_str(&context.retry_reason),
            )
            .ok()?;
        millis(&delay)
    }
}

/// The browser runtime with what `index.js` gives a connection: `http`, a custom
/// `httpClient` (every HTTP request but the Server-Sent Events stream goes to that JavaScript
/// function, see `http::perform_with`); `webSocket`, the factory `(url, headers) => socket`
/// of its WebSockets (the `WebSocket` option's constructor, `ws` in Node.js; see
/// `websocket::open_with`), which also adds the socket's cookies; and `fetch`, used in place of
/// the global `fetch` (in Node.js, a `fetch` that keeps the connection's cookies).
///
/// `fetch_only` names a header that goes on fetch requests only (`X-Requested-With` in
/// Node.js, see `NodeShell`): it is taken off the WebSocket upgrade and the Server-Sent Events
/// request, which the official client makes with `ws` and `eventsource` without it.
struct JsRuntime {
    inner: BrowserRuntime,
    hook: Option<Function>,
    websocket: Option<Function>,
    fetch: Option<Function>,
    fetch_only: Option<&'static str>,
}

impl JsRuntime {
    fn strip(&self, headers: &mut Vec<(String, String)>) {
        if let Some(name) = self.fetch_only {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
    }
}

impl Runtime for JsRuntime {
    fn spawn(&self, task: BoxFuture<()>) {
        self.inner.spawn(task);
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        self.inner.sleep_until(deadline)
    }

    fn http(&self, mut request: HttpRequest) -> BoxStream<HttpEvent> {
        match &self.hook {
            Some(hook) if !request.streaming => crate::http::perform_with(hook, request),
            _ => {
                if request.streaming {
                    self.strip(&mut request.headers);
                }
                let credentials = self.inner.credentials();
                crate::http::perform_using(request, credentials, self.fetch.as_ref())
            }
        }
    }

    fn websocket(&self, mut request: WebSocketRequest) -> WebSocket {
        self.strip(&mut request.headers);
        crate::websocket::open_with(request, self.websocket.as_ref())
    }
}

/// A value from JavaScript: a string of JSON, or a `Uint8Array` of MessagePack.
fn raw_in(protocol: Protocol, value: &JsValue) -> Result<RawValue, JsValue> {
    let bytes = match protocol {
        Protocol::Json => value
            .as_string()
            .ok_or_else(|| JsValue::from_str("expected JSON text"))?
            .into_bytes(),
        Protocol::MessagePack => value
            .dyn_ref::<Uint8Array>()
            .ok_or_else(|| JsValue::from_str("expected MessagePack bytes"))?
            .to_vec(),
    };
    Ok(RawValue::from_encoded(protocol, bytes.into()))
}

fn raws_in(protocol: Protocol, values: &Array) -> Result<Vec<RawValue>, JsValue> {
    values.iter().map(|v| raw_in(protocol, &v)).collect()
}

/// A value for JavaScript: a string of JSON, or a `Uint8Array` of MessagePack.
fn raw_out(raw: &RawValue) -> JsValue {
    match raw.protocol() {
        Protocol::Json => JsValue::from_str(&String::from_utf8_lossy(raw.as_bytes())),
        Protocol::MessagePack => Uint8Array::from(raw.as_bytes()).into(),
    }
}

/// Arguments for JavaScript: one JSON array text, or an array of `Uint8Array`s.
fn args_out(protocol: Protocol, args: &[RawValue]) -> JsValue {
    match protocol {
        Protocol::Json => {
            let mut text = Vec::with_capacity(2 + args.iter().map(|a| a.len() + 1).sum::<usize>());
            text.push(b'[');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    text.push(b',');
                }
                text.extend_from_slice(a.as_bytes());
            }
            text.push(b']');
            JsValue::from_str(&String::from_utf8_lossy(&text))
        }
        Protocol::MessagePack => args.iter().map(raw_out).collect::<Array>().into(),
    }
}

/// The items of one client-to-server upload (`Subject`): JavaScript pushes encoded items.
#[wasm_bindgen]
pub struct Upload {
    protocol: Protocol,
    tx: Option<mpsc::UnboundedSender<client::UploadItem>>,
    id: u32,
}

#[wasm_bindgen]
impl Upload {
    /// Sends one encoded item.
    pub fn next(&mut self, item: JsValue) -> Result<(), JsValue> {
        let item = raw_in(self.protocol, &item)?;
        if let Some(tx) = &self.tx {
            let _ = tx.unbounded_send(Ok(item));
        }
        Ok(())
    }

    /// Ends the upload with an error: the server's stream fails with `text`.
    pub fn error(&mut self, text: String) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.unbounded_send(Err(text));
        }
    }

    /// The key that `invoke`, `send` and `stream` take to use this upload.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Ends the upload.
    pub fn complete(&mut self) {
        self.tx = None;
    }
}

/// Cancels a stream started with [`RawConnection::stream`].
#[wasm_bindgen]
pub struct StreamHandle {
    cancel: Option<oneshot::Sender<()>>,
}

#[wasm_bindgen]
impl StreamHandle {
    /// Cancels the stream (`CancelInvocation`); items that arrive afterwards are dropped.
    pub fn cancel(&mut self) {
        if let Some(tx) = self.cancel.take() {
            let _ = tx.send(());
        }
    }
}

/// Whether the `headers` option has a header `lower_name` (in any case).
fn has_header(o: &JsValue, lower_name: &str) -> bool {
    let headers = get(o, "headers");
    headers.is_object()
        && js_sys::Object::keys(headers.unchecked_ref::<js_sys::Object>())
            .iter()
            .any(|k| {
                k.as_string()
                    .is_some_and(|k| k.eq_ignore_ascii_case(lower_name))
            })
}

/// The builder `b` with the options of `index.js` (`o`) but the shell's own.
fn configure<S: Shell>(
    b: HubConnectionBuilder<S>,
    runtime: Arc<dyn Runtime>,
    protocol: Protocol,
    o: &JsValue,
) -> HubConnectionBuilder<S> {
    let mut b = b.with_runtime(runtime).with_protocol(protocol);
    if let Some(t) = get(o, "transport").as_f64() {
        b = b.with_transports(TransportSet(t as u8));
    }
    if get(o, "skipNegotiation").as_bool() == Some(true) {
        b = b.skip_negotiation(true);
    }
    if let Some(d) = millis(&get(o, "timeout")) {
        b = b.with_http_timeout(d);
    }
    if let Some(d) = millis(&get(o, "serverTimeout")) {
        b = b.with_server_timeout(d);
    }
    if let Some(d) = millis(&get(o, "keepAliveInterval")) {
        b = b.with_keep_alive_interval(d);
    }
    let headers = get(o, "headers");
    if headers.is_object() {
        for entry in js_sys::Object::entries(headers.unchecked_ref()).iter() {
            let entry: Array = entry.unchecked_into();
            if let (Some(k), Some(v)) = (entry.get(0).as_string(), entry.get(1).as_string()) {
                b = b.with_header(k, v);
            }
        }
    }
    if let Ok(factory) = get(o, "accessTokenFactory").dyn_into::<Function>() {
        b = b.with_access_token_factory(move || {
            let token = factory.call0(&JsValue::NULL);
            async move {
                let token = match token {
                    Ok(t) => JsFuture::from(Promise::resolve(&t)).await,
                    Err(e) => Err(e),
                };
                match token {
                    Ok(t) => Ok(t.as_string().unwrap_or_default()),
                    Err(e) => Err(describe(&e).into()),
                }
            }
        });
    }
    if let Ok(policy) = get(o, "reconnect").dyn_into::<Function>() {
        b = b.with_reconnect_policy(JsPolicy::new(policy));
    }
    let stateful = get(o, "statefulReconnect");
    if stateful.is_object() {
        b = match get(&stateful, "bufferSize").as_f64() {
            Some(n) if n > 0.0 => b.with_stateful_reconnect_buffer_size(n as usize),
            _ => b.with_stateful_reconnect(),
        };
    }
    b
}

/// One hub connection, with encoded values.
#[wasm_bindgen]
pub struct RawConnection {
    conn: HubConnection,
    protocol: Protocol,
    dispatch: Function,
}

#[wasm_bindgen]
impl RawConnection {
    /// Builds a connection (Disconnected) from the normalized options of `index.js`.
    #[wasm_bindgen(constructor)]
    pub fn new(url: String, o: JsValue) -> Result<RawConnection, JsValue> {
        let protocol = match get(&o, "protocol").as_string().as_deref() {
            Some("messagepack") => Protocol::MessagePack,
            _ => Protocol::Json,
        };
        let credentials = get(&o, "withCredentials").as_bool().unwrap_or(true);
        // In Node.js (`node: [platform, version]`), the official client's Node.js behaviour:
        // see `NodeShell`.
        let node = get(&o, "node");
        const REQUESTED_WITH: &str = "x-requested-with";
        let runtime = Arc::new(JsRuntime {
            inner: BrowserRuntime::new().with_credentials(credentials),
            hook: get(&o, "http").dyn_into::<Function>().ok(),
            websocket: get(&o, "webSocket").dyn_into::<Function>().ok(),
            fetch: get(&o, "fetch").dyn_into::<Function>().ok(),
            fetch_only: (Array::is_array(&node) && !has_header(&o, REQUESTED_WITH))
                .then_some(REQUESTED_WITH),
        });
        let conn = if Array::is_array(&node) {
            let node: &Array = node.unchecked_ref();
            let agent = crate::user_agent::node_user_agent(
                &node.get(0).as_string().unwrap_or_default(),
                &node.get(1).as_string().unwrap_or_default(),
            );
            let b = configure(
                HubConnectionBuilder::<NodeShell>::new(url),
                runtime,
                protocol,
                &o,
            );
            // The user's own `User-Agent` header wins, as in the official client.
            if has_header(&o, "user-agent") {
                b.build()
            } else {
                b.with_header("User-Agent", agent).build()
            }
        } else {
            configure(
                HubConnectionBuilder::<BrowserRuntime>::new(url),
                runtime,
                protocol,
                &o,
            )
            .build()
        };
        let conn = conn.map_err(|e| error_value(&e))?;
        // Lifecycle events go to one JavaScript function: `(kind, text)`.
        if let Ok(events) = get(&o, "events").dyn_into::<Function>() {
            let e = events.clone();
            conn.on_close(move |error| {
                let text = error.map(|e| error_value(&e)).unwrap_or(JsValue::UNDEFINED);
                let _ = e.call2(&JsValue::NULL, &JsValue::from_str("close"), &text);
            });
            let e = events.clone();
            conn.on_reconnecting(move |error| {
                let _ = e.call2(
                    &JsValue::NULL,
                    &JsValue::from_str("reconnecting"),
                    &error_value(&error),
                );
            });
            let e = events.clone();
            conn.on_reconnected(move |id| {
                let id = id
                    .map(|i| JsValue::from_str(&i))
                    .unwrap_or(JsValue::UNDEFINED);
                let _ = e.call2(&JsValue::NULL, &JsValue::from_str("reconnected"), &id);
            });
            // Server invocations no handler takes, so the JavaScript side logs them through
            // its logger as the official client does: `("unhandled", [name, invocationId])`.
            conn.on_unhandled(move |target, id| {
                let detail = Array::of2(
                    &JsValue::from_str(target),
                    &id.map(JsValue::from_str).unwrap_or(JsValue::UNDEFINED),
                );
                let _ = events.call2(&JsValue::NULL, &JsValue::from_str("unhandled"), &detail);
            });
        }
        let dispatch = get(&o, "dispatch")
            .dyn_into::<Function>()
            .map_err(|_| JsValue::from_str("dispatch function missing"))?;
        Ok(RawConnection {
            conn,
            protocol,
            dispatch,
        })
    }

    /// `"Disconnected"`, `"Connecting"`, `"Connected"`, `"Disconnecting"` or `"Reconnecting"`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        match self.conn.state() {
            State::Disconnected => "Disconnected",
            State::Connecting => "Connecting",
            State::Connected => "Connected",
            State::Disconnecting => "Disconnecting",
            State::Reconnecting => "Reconnecting",
        }
        .into()
    }

    /// The connection id (`null` when unknown).
    #[wasm_bindgen(getter, js_name = connectionId)]
    pub fn connection_id(&self) -> Option<String> {
        self.conn.connection_id()
    }

    /// Starts the connection.
    pub fn start(&self) -> Promise {
        let conn = self.conn.clone();
        future_to_promise(async move {
            conn.start().await.map_err(|e| error_value(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops the connection.
    pub fn stop(&self) -> Promise {
        let conn = self.conn.clone();
        future_to_promise(async move {
            conn.stop().await.map_err(|e| error_value(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Routes invocations of `name` to the dispatch function, which answers with a Promise of
    /// the encoded result, or rejects with the error text (also for "no result").
    pub fn register(&self, name: &str) {
        let dispatch = self.dispatch.clone();
        let protocol = self.protocol;
        let target = JsValue::from_str(name);
        self.conn.on_result_raw(name, move |args| {
            let answer = dispatch.call2(&JsValue::NULL, &target, &args_out(protocol, &args));
            async move {
                let value = match answer {
                    Ok(p) => JsFuture::from(Promise::resolve(&p)).await,
                    Err(e) => Err(e),
                };
                match value {
                    Ok(v) => raw_in(protocol, &v).map_err(|e| describe(&e)),
                    Err(e) => Err(describe(&e)),
                }
            }
        });
    }

    /// Removes the routing of `name`.
    pub fn unregister(&self, name: &str) {
        self.conn.off(name);
    }

    /// A new upload stream for the next `invoke`, `send` or `stream`.
    #[wasm_bindgen(js_name = newUpload)]
    pub fn new_upload(&self) -> Upload {
        let (tx, rx) = mpsc::unbounded();
        Upload {
            protocol: self.protocol,
            tx: Some(tx),
            id: UPLOADS.with(|u| {
                let mut u = u.borrow_mut();
                u.0 += 1;
                let id = u.0;
                u.1.insert(id, rx);
                id
            }),
        }
    }

    /// Invokes `method` with encoded `args` (and the upload, if any); resolves with the encoded
    /// result, or `undefined` for a void completion.
    pub fn invoke(&self, method: String, args: Array, uploads: Option<Vec<u32>>) -> Promise {
        let conn = self.conn.clone();
        let protocol = self.protocol;
        let args = raws_in(protocol, &args);
        let uploads = take_uploads(uploads);
        future_to_promise(async move {
            let args = args?;
            let result = if uploads.is_empty() {
                conn.invoke_raw(&method, args).await
            } else {
                conn.invoke_raw_with_uploads(&method, args, uploads).await
            };
            match result.map_err(|e| error_value(&e))? {
                Some(r) => Ok(raw_out(&r)),
                None => Ok(JsValue::UNDEFINED),
            }
        })
    }

    /// Sends `method` without waiting for a result; resolves once written.
    pub fn send(&self, method: String, args: Array, uploads: Option<Vec<u32>>) -> Promise {
        let conn = self.conn.clone();
        let protocol = self.protocol;
        let args = raws_in(protocol, &args);
        let uploads = take_uploads(uploads);
        future_to_promise(async move {
            let args = args?;
            let sent = if uploads.is_empty() {
                conn.send_raw(&method, args).await
            } else {
                conn.send_raw_with_uploads(&method, args, uploads).await
            };
            sent.map_err(|e| error_value(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Starts a server-to-client stream: `item(encoded)` for each item, then `done()` at the
    /// end or `done(error)` on failure (an error object, see `error_value`).
    pub fn stream(
        &self,
        method: String,
        args: Array,
        uploads: Option<Vec<u32>>,
        item: Function,
        done: Function,
    ) -> StreamHandle {
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        let conn = self.conn.clone();
        let protocol = self.protocol;
        let args = raws_in(protocol, &args);
        let uploads = take_uploads(uploads);
        let run = async move {
            let args = args?;
            let mut items = open_stream(&conn, &method, args, uploads).await?;
            while let Some(next) = items.next().await {
                let raw = next.map_err(|e| error_value(&e))?;
                let _ = item.call1(&JsValue::NULL, &raw_out(&raw));
            }
            Ok::<(), JsValue>(())
        };
        wasm_bindgen_futures::spawn_local(async move {
            let outcome = match select(Box::pin(run), cancel_rx).await {
                Either::Left((outcome, _)) => outcome,
                // Cancelled: dropping the stream sends CancelInvocation; no more callbacks.
                Either::Right(_) => return,
            };
            let _ = match outcome {
                Ok(()) => done.call0(&JsValue::NULL),
                Err(e) => done.call1(&JsValue::NULL, &e),
            };
        });
        StreamHandle {
            cancel: Some(cancel_tx),
        }
    }
}

/// Opens a stream, with an upload or without, as encoded items.
async fn open_stream(
    conn: &HubConnection,
    method: &str,
    args: Vec<RawValue>,
    uploads: Vec<UploadRx>,
) -> Result<client::HubStream<RawValue>, JsValue> {
    let opened = if uploads.is_empty() {
        conn.stream_raw(method, args).await
    } else {
        conn.stream_raw_with_uploads(method, args, uploads).await
    };
    opened.map_err(|e| error_value(&e))
}
