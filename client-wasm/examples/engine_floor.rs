//! A size measurement, not an API: the smallest module that still holds the whole sans-IO
//! engine of `talkback-core` (negotiate, transports, handshake, both hub protocols, keep-alive,
//! reconnect, stateful reconnect, calls and streams) with a thin JavaScript-facing driver, and
//! none of the client layer, futures or browser shell of the npm package.
//!
//! `scripts/wasm-engine-floor.sh` builds it exactly as `scripts/build-npm.sh` builds the package
//! and prints its size: what any package built on this engine costs at the least, whatever its
//! JavaScript side does (README, "Size of the browser package"). Every engine input and output
//! is reachable from the exports, so nothing of the engine is left out by the linker.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use talkback_core::connection::{
    ClientResult, Config, Connection, Event, HttpEvent, HttpMethod, RequestId, Transmit,
    WebSocketEvent,
};
use talkback_core::{
    Duration, Instant, Protocol, RawValue, ReconnectPolicy, RetryContext, TransportKind,
    TransportSet,
};
use wasm_bindgen::prelude::*;

thread_local! {
    /// The policies' functions, by key: a `ReconnectPolicy` must be `Send`, a `Function` is not.
    static POLICIES: std::cell::RefCell<(u32, std::collections::BTreeMap<u32, Function>)> =
        Default::default();
}

/// Asks a JavaScript function `(retries, elapsedMs, reason) => delayMs | null` for each delay.
struct JsPolicy(u32);

impl JsPolicy {
    fn new(f: Function) -> Self {
        POLICIES.with_borrow_mut(|(last, functions)| {
            *last += 1;
            functions.insert(*last, f);
            JsPolicy(*last)
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
        let f = POLICIES.with_borrow(|(_, functions)| functions.get(&self.0).cloned())?;
        let delay = f
            .call3(
                &JsValue::NULL,
                &context.previous_retry_count.into(),
                &(context.elapsed.as_millis() as f64).into(),
                &context.retry_reason.as_str().into(),
            )
            .ok()?;
        delay.as_f64().map(|ms| Duration::from_millis(ms as u64))
    }
}

/// The engine, driven from JavaScript: inputs in, then `poll()` for what to do.
#[wasm_bindgen]
#[allow(missing_debug_implementations)]
pub struct Engine {
    connection: Connection,
    protocol: Protocol,
}

fn set(object: &Object, key: &str, value: JsValue) {
    let _ = Reflect::set(object, &key.into(), &value);
}

fn bytes_out(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).into()
}

fn value_out(value: &RawValue) -> JsValue {
    match value.protocol() {
        Protocol::Json => String::from_utf8_lossy(value.as_bytes()).as_ref().into(),
        Protocol::MessagePack => bytes_out(value.as_bytes()),
    }
}

fn error_out(error: &talkback_core::Error) -> JsValue {
    error.to_string().into()
}

fn value_in(protocol: Protocol, value: &JsValue) -> RawValue {
    let bytes = match protocol {
        Protocol::Json => value.as_string().unwrap_or_default().into_bytes(),
        Protocol::MessagePack => Uint8Array::new(value).to_vec(),
    };
    RawValue::from_encoded(protocol, bytes.into())
}

fn text(value: Option<String>) -> String {
    value.unwrap_or_default()
}

#[wasm_bindgen]
impl Engine {
    /// `transports`: the bits of `HttpTransportType`; `headers`: `[name, value]` pairs.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: String,
        messagepack: bool,
        transports: u8,
        stateful: bool,
        skip_negotiation: bool,
        policy: Option<Function>,
        headers: Array,
        user_agent: String,
        has_token_factory: bool,
    ) -> Engine {
        let protocol = if messagepack {
            Protocol::MessagePack
        } else {
            Protocol::Json
        };
        let mut config = Config::new(url);
        config.protocol = protocol;
        let mut set = TransportSet::only(TransportKind::WebSockets);
        for kind in [TransportKind::ServerSentEvents, TransportKind::LongPolling] {
            if transports & kind.bit() != 0 {
                set = set.with(kind);
            }
        }
        config.transports = set;
        config.stateful_reconnect = stateful;
        config.skip_negotiation = skip_negotiation;
        config.reconnect_policy =
            policy.map(|f| Box::new(JsPolicy::new(f)) as Box<dyn ReconnectPolicy>);
        config.headers = headers
            .iter()
            .map(|pair| {
                let pair = Array::from(&pair);
                (text(pair.get(0).as_string()), text(pair.get(1).as_string()))
            })
            .collect();
        config.user_agent = user_agent;
        config.user_agent_header = "X-SignalR-User-Agent".into();
        config.has_access_token_factory = has_token_factory;
        config.access_token_in_query = true;
        config.headers_on_websocket = false;
        Engine {
            connection: Connection::new(config),
            protocol,
        }
    }

    /// Starts; the error's text if the connection cannot start.
    pub fn start(&mut self) -> Option<String> {
        let started = self.connection.start(Instant::now());
        started.err().map(|e| e.to_string())
    }

    /// Stops (the engine ends the transport, then says `closed`).
    pub fn stop(&mut self) {
        self.connection.stop(Instant::now())
    }

    /// The state, as the order of `talkback_core::State`.
    pub fn state(&self) -> u8 {
        self.connection.state() as u8
    }

    /// The connection id, once negotiated.
    pub fn connection_id(&self) -> Option<String> {
        self.connection.connection_id().map(str::to_owned)
    }

    /// `kind` 0 send, 1 invoke, 2 stream: `[invocationId, op]`.
    pub fn call(
        &mut self,
        kind: u8,
        target: String,
        arguments: Array,
        streams: Vec<String>,
    ) -> Result<Array, JsValue> {
        let arguments = arguments
            .iter()
            .map(|v| value_in(self.protocol, &v))
            .collect();
        let now = Instant::now();
        let c = &mut self.connection;
        let called = match kind {
            0 => c
                .send_with_streams(now, target, arguments, streams)
                .map(|op| (String::new(), op)),
            1 => c.invoke(now, target, arguments, streams),
            _ => c.stream(now, target, arguments, streams),
        };
        let (id, op) = called.map_err(|e| error_out(&e))?;
        Ok(Array::of2(&id.into(), &(op as f64).into()))
    }

    /// Cancels a stream the server is sending.
    pub fn cancel(&mut self, id: &str) {
        self.connection.cancel_stream(Instant::now(), id)
    }

    /// A new id for a stream the client uploads.
    pub fn new_upload(&mut self) -> String {
        self.connection.new_upload_stream()
    }

    /// Sends one item of an upload: the op whose `written` event tells it went out.
    pub fn upload_item(&mut self, id: &str, item: JsValue) -> Result<f64, JsValue> {
        let item = value_in(self.protocol, &item);
        let op = self.connection.upload_item(Instant::now(), id, item);
        op.map(|op| op as f64).map_err(|e| error_out(&e))
    }

    /// Ends an upload, with an error text or not.
    pub fn upload_complete(&mut self, id: &str, error: Option<String>) -> Result<f64, JsValue> {
        let op = self.connection.upload_complete(Instant::now(), id, error);
        op.map(|op| op as f64).map_err(|e| error_out(&e))
    }

    /// `kind` 0 a value, 1 an error text, 2 no result, 3 several results.
    pub fn client_result(&mut self, id: &str, kind: u8, value: JsValue) {
        let result = match kind {
            0 => ClientResult::Value(value_in(self.protocol, &value)),
            1 => ClientResult::Error(text(value.as_string())),
            2 => ClientResult::NoResult,
            _ => ClientResult::MultipleResults,
        };
        self.connection
            .complete_client_result(Instant::now(), id, result)
    }

    /// The access-token factory's answer to a `token` transmit.
    pub fn access_token(&mut self, token: Option<String>, error: Option<String>) {
        let token = error.map_or(Ok(token), Err);
        self.connection.handle_access_token(Instant::now(), token)
    }

    /// `kind` 0 response, 1 head, 2 chunk, 3 end, 4 failed (`status` 1: timed out).
    pub fn http(
        &mut self,
        id: f64,
        kind: u8,
        status: u16,
        body: Option<Vec<u8>>,
        message: Option<String>,
    ) {
        let body = body.unwrap_or_default().into();
        let event = match kind {
            0 => HttpEvent::Response { status, body },
            1 => HttpEvent::Head { status },
            2 => HttpEvent::Chunk(body),
            3 => HttpEvent::End { error: message },
            _ => HttpEvent::Failed {
                timed_out: status == 1,
                message: text(message),
            },
        };
        let id = RequestId(id as u64);
        self.connection.handle_http(Instant::now(), id, event)
    }

    /// `kind` 0 opened, 1 message, 2 closed, 3 failed.
    pub fn websocket(
        &mut self,
        kind: u8,
        code: Option<u16>,
        data: Option<Vec<u8>>,
        message: Option<String>,
    ) {
        let event = match kind {
            0 => WebSocketEvent::Opened,
            1 => WebSocketEvent::Message(data.unwrap_or_default().into()),
            2 => WebSocketEvent::Closed {
                code,
                reason: text(message),
            },
            _ => WebSocketEvent::Failed {
                status: code,
                message: text(message),
            },
        };
        self.connection.handle_websocket(Instant::now(), event)
    }

    /// The time given by `next_timeout()` has come.
    pub fn timeout(&mut self) {
        self.connection.handle_timeout(Instant::now())
    }

    /// Milliseconds until `timeout()` is due, or -1.
    pub fn next_timeout(&self) -> f64 {
        let due = self.connection.poll_timeout();
        due.map_or(-1.0, |t| {
            t.saturating_duration_since(Instant::now()).as_millis() as f64
        })
    }

    /// What to do now, then what happened: plain objects, transmits first.
    pub fn poll(&mut self) -> Array {
        let out = Array::new();
        while let Some(transmit) = self.connection.poll_transmit() {
            out.push(&transmit_out(transmit));
        }
        while let Some(event) = self.connection.poll_event() {
            out.push(&event_out(event));
        }
        out
    }
}

fn transmit_out(transmit: Transmit) -> Object {
    let o = Object::new();
    match transmit {
        Transmit::Http(request) => {
            set(&o, "t", "http".into());
            set(&o, "id", (request.id.0 as f64).into());
            let method = match request.method {
                HttpMethod::Get => "GET",
                HttpMethod::Post => "POST",
                HttpMethod::Delete => "DELETE",
            };
            set(&o, "method", method.into());
            set(&o, "url", request.url.into());
            let headers = Array::new();
            for (name, value) in request.headers {
                headers.push(&Array::of2(&name.into(), &value.into()));
            }
            set(&o, "headers", headers.into());
            set(&o, "body", bytes_out(&request.body));
            let timeout = request.timeout.map(|d| d.as_millis() as f64);
            set(&o, "timeout", timeout.into());
            set(&o, "streaming", request.streaming.into());
        }
        Transmit::AbortHttp(id) => {
            set(&o, "t", "abort".into());
            set(&o, "id", (id.0 as f64).into());
        }
        Transmit::FetchAccessToken => set(&o, "t", "token".into()),
        Transmit::OpenWebSocket { url, .. } => {
            set(&o, "t", "open".into());
            set(&o, "url", url.into());
        }
        Transmit::WebSocketSend { data, .. } => {
            set(&o, "t", "send".into());
            set(&o, "data", bytes_out(&data));
        }
        Transmit::CloseWebSocket => set(&o, "t", "close".into()),
    }
    o
}

fn event_out(event: Event) -> Object {
    let o = Object::new();
    let (name, id) = match event {
        Event::StateChanged { to, .. } => {
            set(&o, "to", (to as u8).into());
            ("state", None)
        }
        Event::Started { connection_id } => ("started", connection_id),
        Event::StartFailed(e) => {
            set(&o, "error", error_out(&e));
            ("startFailed", None)
        }
        Event::Reconnecting(e) => {
            set(&o, "error", error_out(&e));
            ("reconnecting", None)
        }
        Event::Reconnected { connection_id } => ("reconnected", connection_id),
        Event::Closed(e) => {
            set(&o, "error", e.map_or(JsValue::NULL, |e| error_out(&e)));
            ("closed", None)
        }
        Event::Invocation {
            target,
            arguments,
            invocation_id,
        } => {
            set(&o, "target", target.into());
            let values = Array::new();
            for argument in &arguments {
                values.push(&value_out(argument));
            }
            set(&o, "arguments", values.into());
            ("invocation", invocation_id)
        }
        Event::InvocationCompleted { id, result } => {
            match result {
                Ok(value) => set(
                    &o,
                    "value",
                    value.as_ref().map_or(JsValue::UNDEFINED, value_out),
                ),
                Err(e) => set(&o, "error", error_out(&e)),
            }
            ("completed", Some(id))
        }
        Event::StreamItem { id, item } => {
            set(&o, "value", value_out(&item));
            ("item", Some(id))
        }
        Event::StreamCompleted { id, result } => {
            if let Err(e) = result {
                set(&o, "error", error_out(&e));
            }
            ("streamCompleted", Some(id))
        }
        Event::Written { op, result } => {
            set(&o, "op", (op as f64).into());
            if let Err(e) = result {
                set(&o, "error", error_out(&e));
            }
            ("written", None)
        }
    };
    set(&o, "e", name.into());
    set(&o, "id", id.into());
    o
}
