//! `BrowserRuntime` in headless Chromium and Firefox against a real fixture on loopback.
//!
//! Run with `scripts/wasm-browser-tests.sh`: it starts `talkback-fixture` on an OS-chosen port
//! and passes its URL in `TALKBACK_FIXTURE_URL`, read here when the tests are compiled.

#![cfg(target_arch = "wasm32")]

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use talkback_core::client::{BoxStream, Outgoing, Runtime, WebSocketRequest};
use talkback_core::{
    HttpEvent, HttpMethod, HttpRequest, Instant, RequestId, TransferFormat, WebSocketEvent,
};
use talkback_wasm::BrowserRuntime;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The fixture's base URL (`http://127.0.0.1:PORT`), fixed when the tests were compiled.
fn fixture() -> &'static str {
    // Not `env!`: without the variable the crate still compiles (clippy, `--no-run`), and
    // each test says what is missing.
    match option_env!("TALKBACK_FIXTURE_URL") {
        Some(url) => url,
        None => panic!(
            "TALKBACK_FIXTURE_URL was not set when these tests were compiled: \
             run them with scripts/wasm-browser-tests.sh"
        ),
    }
}

const RS: char = '\u{1e}';
const HANDSHAKE: &str = "{\"protocol\":\"json\",\"version\":1}\u{1e}";
const ADD: &str =
    "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Add\",\"arguments\":[1,2]}\u{1e}";

fn request(method: HttpMethod, url: String) -> HttpRequest {
    HttpRequest {
        id: RequestId(1),
        method,
        url,
        headers: vec![("X-Requested-With".into(), "XMLHttpRequest".into())],
        body: Bytes::new(),
        timeout: Some(Duration::from_secs(10)),
        streaming: false,
    }
}

async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// The next event, or a panic after `ms` milliseconds.
async fn next_within<T>(stream: &mut BoxStream<T>, ms: u32) -> Option<T> {
    match select(stream.next(), Box::pin(sleep(ms))).await {
        Either::Left((item, _)) => item,
        Either::Right(_) => panic!("nothing arrived within {ms} ms"),
    }
}

/// Performs a non-streaming request and returns its one event, checking the stream ends.
async fn one_response(runtime: &BrowserRuntime, request: HttpRequest) -> HttpEvent {
    collect_one(runtime.http(request)).await
}

/// The one event of a non-streaming request, checking the stream ends after it.
async fn collect_one(mut events: BoxStream<HttpEvent>) -> HttpEvent {
    let event = next_within(&mut events, 15_000).await.expect("an event");
    assert!(
        next_within(&mut events, 5_000).await.is_none(),
        "the stream ends after its one event"
    );
    event
}

/// Negotiates a connection with the test hub and returns its connection token.
async fn negotiate(runtime: &BrowserRuntime) -> String {
    let url = format!("{}/hubs/test/negotiate?negotiateVersion=1", fixture());
    match one_response(runtime, request(HttpMethod::Post, url)).await {
        HttpEvent::Response { status: 200, body } => {
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            json["connectionToken"]
                .as_str()
                .expect("a connectionToken")
                .to_owned()
        }
        other => panic!("negotiate: {other:?}"),
    }
}

fn connect_url(token: &str) -> String {
    format!("{}/hubs/test?id={token}", fixture())
}

/// POSTs hub messages for an SSE or long-polling connection.
async fn post(runtime: &BrowserRuntime, token: &str, payload: &str) {
    let mut send = request(HttpMethod::Post, connect_url(token));
    send.headers
        .push(("Content-Type".into(), "text/plain;charset=UTF-8".into()));
    send.body = Bytes::copy_from_slice(payload.as_bytes());
    match one_response(runtime, send).await {
        HttpEvent::Response { status: 200, .. } => {}
        other => panic!("POST {payload:?}: {other:?}"),
    }
}

/// Runs `body` (the source of a JavaScript function) and returns its result.
fn js(body: &str) -> JsValue {
    js_sys::Function::new_no_args(body)
        .call0(&JsValue::UNDEFINED)
        .expect("the script runs")
}

#[wasm_bindgen_test]
async fn negotiate_post_gets_200_and_json() {
    let runtime = BrowserRuntime::new();
    let url = format!("{}/hubs/test/negotiate?negotiateVersion=1", fixture());
    let HttpEvent::Response { status, body } =
        one_response(&runtime, request(HttpMethod::Post, url)).await
    else {
        panic!("expected a Response");
    };
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(json["negotiateVersion"], 1);
    assert!(json["connectionId"].is_string());
    let transports: Vec<&str> = json["availableTransports"]
        .as_array()
        .expect("availableTransports")
        .iter()
        .filter_map(|t| t["transport"].as_str())
        .collect();
    assert!(transports.contains(&"WebSockets"), "{transports:?}");
}

#[wasm_bindgen_test]
async fn fetch_is_looked_up_per_request_with_credentials_and_signal() {
    // Wrap the global `fetch` after the module loaded: the runtime must use the wrapper.
    js("const real = globalThis.fetch;
        globalThis.__talkbackRealFetch = real;
        globalThis.__talkbackInits = [];
        globalThis.fetch = function (input, init) {
            globalThis.__talkbackInits.push(init);
            return real.call(globalThis, input, init);
        };");
    let restore = || js("globalThis.fetch = globalThis.__talkbackRealFetch;");
    let url = || format!("{}/hubs/test/negotiate?negotiateVersion=1", fixture());
    // The request starts when it is made, before its stream is polled.
    let pending = BrowserRuntime::new().http(request(HttpMethod::Post, url()));
    let started = js("return globalThis.__talkbackInits.length;");
    let default = collect_one(pending).await;
    let same_origin = one_response(
        &BrowserRuntime::new().with_credentials(false),
        request(HttpMethod::Post, url()),
    )
    .await;
    let inits = js(
        "return globalThis.__talkbackInits.map(i => [i.method, i.credentials, \
                    i.signal instanceof AbortSignal, i.headers.get('x-requested-with')].join());",
    );
    restore();
    assert_eq!(started.as_f64(), Some(1.0));
    assert!(matches!(default, HttpEvent::Response { status: 200, .. }));
    assert!(matches!(
        same_origin,
        HttpEvent::Response { status: 200, .. }
    ));
    let inits: Vec<String> = js_sys::Array::from(&inits)
        .iter()
        .filter_map(|v| v.as_string())
        .collect();
    assert_eq!(
        inits,
        [
            "POST,include,true,XMLHttpRequest",
            "POST,same-origin,true,XMLHttpRequest"
        ]
    );
}

#[wasm_bindgen_test]
async fn websocket_handshake_and_invocation() {
    let runtime = BrowserRuntime::new();
    let token = negotiate(&runtime).await;
    let url = connect_url(&token).replacen("http", "ws", 1);
    let mut socket = runtime.websocket(WebSocketRequest {
        url,
        headers: vec![("Authorization".into(), "ignored in browsers".into())],
        max_message_size: 1 << 20,
    });
    // Written before the socket opened: the runtime holds them until it has.
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from(HANDSHAKE),
            TransferFormat::Text,
        ))
        .await
        .expect("handshake queued");
    assert_eq!(
        next_within(&mut socket.events, 10_000).await,
        Some(WebSocketEvent::Opened)
    );
    let mut received = String::new();
    while !received.contains(RS) {
        match next_within(&mut socket.events, 10_000).await {
            Some(WebSocketEvent::Message(data)) => {
                received.push_str(std::str::from_utf8(&data).expect("UTF-8"))
            }
            other => panic!("expected the handshake response, got {other:?}"),
        }
    }
    assert!(received.starts_with("{}\u{1e}"), "{received:?}");
    socket
        .frames
        .send(Outgoing::Frame(Bytes::from(ADD), TransferFormat::Text))
        .await
        .expect("invocation sent");
    let completion = loop {
        if let Some(found) = received
            .split(RS)
            .find(|m| m.contains("\"type\":3"))
            .map(str::to_owned)
        {
            break found;
        }
        match next_within(&mut socket.events, 10_000).await {
            Some(WebSocketEvent::Message(data)) => {
                received.push_str(std::str::from_utf8(&data).expect("UTF-8"))
            }
            other => panic!("expected the completion, got {other:?}"),
        }
    };
    let completion: serde_json::Value = serde_json::from_str(&completion).expect("JSON");
    assert_eq!(completion["invocationId"], "1");
    assert_eq!(completion["result"], 3);

    socket.frames.send(Outgoing::Close).await.expect("close");
    loop {
        match next_within(&mut socket.events, 5_000).await {
            Some(WebSocketEvent::Message(_)) => {}
            Some(WebSocketEvent::Closed { code, .. }) => {
                // 1000 when the server answers our close frame. The fixture today drops the
                // socket after reading it without sending its own (axum queues the answer but
                // the socket is dropped before it is flushed), which the browser reports as
                // 1006; either way the runtime reports the browser's code and ends the stream.
                assert!(matches!(code, Some(1000 | 1006)), "{code:?}");
                break;
            }
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert_eq!(next_within(&mut socket.events, 5_000).await, None);
    assert!(socket
        .frames
        .send(Outgoing::Frame(Bytes::from(ADD), TransferFormat::Text))
        .await
        .is_err());
}

#[wasm_bindgen_test]
async fn websocket_binary_frames_reach_the_server() {
    // A MessagePack handshake is JSON; everything after it binary. Here only the framing
    // matters: a JSON handshake sent as a binary frame is still answered.
    let runtime = BrowserRuntime::new();
    let url = format!("{}/hubs/test", fixture()).replacen("http", "ws", 1);
    let mut socket = runtime.websocket(WebSocketRequest {
        url,
        headers: vec![],
        max_message_size: 1 << 20,
    });
    assert_eq!(
        next_within(&mut socket.events, 10_000).await,
        Some(WebSocketEvent::Opened)
    );
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from(HANDSHAKE),
            TransferFormat::Binary,
        ))
        .await
        .expect("sent");
    match next_within(&mut socket.events, 10_000).await {
        Some(WebSocketEvent::Message(data)) => {
            assert!(data.starts_with(b"{}\x1e"), "{data:?}")
        }
        other => panic!("expected the handshake response, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn websocket_refused_before_open_is_failed() {
    let runtime = BrowserRuntime::new();
    // An unknown connection id: the server answers the upgrade with 404.
    let url = connect_url("no-such-connection").replacen("http", "ws", 1);
    let mut socket = runtime.websocket(WebSocketRequest {
        url,
        headers: vec![],
        max_message_size: 1 << 20,
    });
    match next_within(&mut socket.events, 10_000).await {
        Some(WebSocketEvent::Failed {
            status: None,
            message,
        }) => {
            assert!(
                message.starts_with("WebSocket failed to connect."),
                "{message}"
            )
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(next_within(&mut socket.events, 5_000).await, None);
}

#[wasm_bindgen_test]
async fn websocket_constructor_is_looked_up_per_socket() {
    js("const Real = globalThis.WebSocket;
        globalThis.__talkbackRealWebSocket = Real;
        globalThis.__talkbackSocketUrls = [];
        globalThis.WebSocket = class extends Real {
            constructor(url, protocols) {
                super(url, protocols);
                globalThis.__talkbackSocketUrls.push(String(url));
            }
        };");
    let runtime = BrowserRuntime::new();
    let url = format!("{}/hubs/test?probe=1", fixture()).replacen("http", "ws", 1);
    let mut socket = runtime.websocket(WebSocketRequest {
        url: url.clone(),
        headers: vec![],
        max_message_size: 1 << 20,
    });
    js("globalThis.WebSocket = globalThis.__talkbackRealWebSocket;");
    let urls = js("return globalThis.__talkbackSocketUrls.join(' ');");
    assert_eq!(urls.as_string().as_deref(), Some(url.as_str()));
    assert_eq!(
        next_within(&mut socket.events, 10_000).await,
        Some(WebSocketEvent::Opened)
    );
    // A malformed URL: the constructor throws, the socket fails at once.
    let mut bad = runtime.websocket(WebSocketRequest {
        url: "not a url".into(),
        headers: vec![],
        max_message_size: 1 << 20,
    });
    assert!(matches!(
        next_within(&mut bad.events, 1_000).await,
        Some(WebSocketEvent::Failed { status: None, .. })
    ));
}

#[wasm_bindgen_test]
async fn sse_streams_head_then_chunks() {
    let runtime = BrowserRuntime::new();
    let token = negotiate(&runtime).await;
    let mut sse = request(HttpMethod::Get, connect_url(&token));
    sse.headers
        .push(("Accept".into(), "text/event-stream".into()));
    sse.streaming = true;
    // The timeout covers the request until its head, not the stream that follows.
    sse.timeout = Some(Duration::from_millis(300));
    let mut events = runtime.http(sse);
    assert_eq!(
        next_within(&mut events, 10_000).await,
        Some(HttpEvent::Head { status: 200 })
    );
    let mut received = Vec::new();
    while received.len() < 3 {
        match next_within(&mut events, 10_000).await {
            Some(HttpEvent::Chunk(chunk)) => received.extend_from_slice(&chunk),
            other => panic!("expected a chunk, got {other:?}"),
        }
    }
    assert!(received.starts_with(b":\r\n"), "{received:?}");
    // Sends go by POST; the handshake response comes back as an event on the stream, after
    // the timeout would have passed had it applied to the whole stream.
    sleep(500).await;
    post(&runtime, &token, HANDSHAKE).await;
    let expected = b"data: {}\x1e\r\n\r\n";
    while !received.windows(expected.len()).any(|w| w == expected) {
        match next_within(&mut events, 10_000).await {
            Some(HttpEvent::Chunk(chunk)) => received.extend_from_slice(&chunk),
            other => panic!("expected a chunk, got {other:?}"),
        }
    }
}

#[wasm_bindgen_test]
async fn long_poll_past_a_1_ms_timeout_is_timed_out() {
    let runtime = BrowserRuntime::new();
    let token = negotiate(&runtime).await;
    // The first poll returns at once; the second waits for data.
    let first = one_response(&runtime, request(HttpMethod::Get, connect_url(&token))).await;
    assert!(
        matches!(first, HttpEvent::Response { status: 200, .. }),
        "{first:?}"
    );
    let mut poll = request(HttpMethod::Get, connect_url(&token));
    poll.timeout = Some(Duration::from_millis(1));
    match one_response(&runtime, poll).await {
        HttpEvent::Failed { timed_out, .. } => assert!(timed_out),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn network_failure_is_not_timed_out() {
    let runtime = BrowserRuntime::new();
    // Nothing listens on port 1.
    let mut refused = request(HttpMethod::Get, "http://127.0.0.1:1/".into());
    refused.timeout = Some(Duration::from_secs(10));
    match one_response(&runtime, refused).await {
        HttpEvent::Failed { timed_out, .. } => assert!(!timed_out),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn dropping_an_http_stream_aborts_the_request() {
    js("const real = globalThis.fetch;
        globalThis.__talkbackRealFetch = real;
        globalThis.__talkbackSignals = [];
        globalThis.fetch = function (input, init) {
            globalThis.__talkbackSignals.push(init.signal);
            return real.call(globalThis, input, init);
        };");
    let runtime = BrowserRuntime::new();
    let token = negotiate(&runtime).await;
    let first = one_response(&runtime, request(HttpMethod::Get, connect_url(&token))).await;
    assert!(
        matches!(first, HttpEvent::Response { status: 200, .. }),
        "{first:?}"
    );
    post(&runtime, &token, HANDSHAKE).await;
    // Drain what the handshake queued (its response and the hub's Welcome).
    let mut received = String::new();
    while !received.contains("Welcome") {
        match one_response(&runtime, request(HttpMethod::Get, connect_url(&token))).await {
            HttpEvent::Response { status: 200, body } => {
                received.push_str(std::str::from_utf8(&body).expect("UTF-8"))
            }
            other => panic!("poll: {other:?}"),
        }
    }
    // A poll that waits: started, then dropped.
    let mut poll = request(HttpMethod::Get, connect_url(&token));
    poll.timeout = None;
    let mut events = runtime.http(poll);
    match select(events.next(), Box::pin(sleep(500))).await {
        Either::Left((event, _)) => panic!("the poll should wait, got {event:?}"),
        Either::Right(_) => {}
    }
    drop(events);
    let aborted = js("const s = globalThis.__talkbackSignals;
                      return s[s.length - 1].aborted;");
    js("globalThis.fetch = globalThis.__talkbackRealFetch;");
    // The server let go of the aborted poll: a message sent now waits for the next poll
    // instead of being written to the dead one.
    sleep(300).await;
    post(&runtime, &token, ADD).await;
    let mut poll = request(HttpMethod::Get, connect_url(&token));
    poll.timeout = Some(Duration::from_secs(5));
    match one_response(&runtime, poll).await {
        HttpEvent::Response { status: 200, body } => {
            let body = std::str::from_utf8(&body).expect("UTF-8");
            assert!(body.contains("\"result\":3"), "{body:?}");
        }
        other => panic!("the next poll should get the completion, got {other:?}"),
    }
    assert_eq!(
        aborted.as_bool(),
        Some(true),
        "the dropped poll's signal is aborted"
    );
}

#[wasm_bindgen_test]
async fn sleep_until_waits_at_least_the_time_asked() {
    let runtime = BrowserRuntime::new();
    for ms in [1u64, 20, 75] {
        let start = runtime.now();
        let deadline = start + Duration::from_millis(ms);
        runtime.sleep_until(deadline).await;
        assert!(runtime.now() >= deadline);
        assert!(start.elapsed() >= Duration::from_millis(ms));
    }
    // A deadline in the past resolves at once.
    let start = Instant::now();
    let past = start.checked_sub(Duration::from_millis(5)).unwrap_or(start);
    runtime.sleep_until(past).await;
    assert!(start.elapsed() < Duration::from_millis(50));
}

#[wasm_bindgen_test]
async fn spawn_runs_tasks_to_their_end() {
    let runtime = BrowserRuntime::new();
    let (tx, rx) = futures_channel::oneshot::channel();
    let inner = runtime.clone();
    runtime.spawn(Box::pin(async move {
        inner
            .sleep_until(inner.now() + Duration::from_millis(5))
            .await;
        let _ = tx.send(42);
    }));
    assert_eq!(rx.await, Ok(42));
}

/// Opens a WebSocket to the test hub (negotiation skipped), completes the JSON handshake and
/// returns the socket with the connection id from the hub's `Welcome`.
async fn open_hub_socket(
    runtime: &BrowserRuntime,
    max_message_size: usize,
) -> (talkback_core::client::WebSocket, String) {
    let url = format!("{}/hubs/test", fixture()).replacen("http", "ws", 1);
    let mut socket = runtime.websocket(WebSocketRequest {
        url,
        headers: vec![],
        max_message_size,
    });
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from(HANDSHAKE),
            TransferFormat::Text,
        ))
        .await
        .expect("handshake queued");
    assert_eq!(
        next_within(&mut socket.events, 10_000).await,
        Some(WebSocketEvent::Opened)
    );
    let mut received = String::new();
    loop {
        if let Some(welcome) = received.split(RS).find(|m| m.contains("Welcome")) {
            let welcome: serde_json::Value = serde_json::from_str(welcome).expect("JSON");
            let id = welcome["arguments"][0].as_str().expect("an id").to_owned();
            return (socket, id);
        }
        match next_within(&mut socket.events, 10_000).await {
            Some(WebSocketEvent::Message(data)) => {
                received.push_str(std::str::from_utf8(&data).expect("UTF-8"))
            }
            other => panic!("expected the handshake and Welcome, got {other:?}"),
        }
    }
}

/// Wraps the global `WebSocket` so that the sockets the runtime makes can be inspected.
fn spy_on_websockets() {
    js("const Real = globalThis.WebSocket;
        globalThis.__talkbackRealWebSocket = Real;
        globalThis.__talkbackSockets = [];
        globalThis.WebSocket = class extends Real {
            constructor(url, protocols) {
                super(url, protocols);
                globalThis.__talkbackSockets.push(this);
            }
        };");
}

/// Puts the browser's `WebSocket` back; returns the `readyState` of each socket made meanwhile.
fn stop_spying_on_websockets() -> Vec<f64> {
    let states = js("globalThis.WebSocket = globalThis.__talkbackRealWebSocket;
                     return globalThis.__talkbackSockets.map(s => s.readyState);");
    js_sys::Array::from(&states)
        .iter()
        .filter_map(|v| v.as_f64())
        .collect()
}

// `WebSocket.readyState` values.
const OPEN: f64 = 1.0;
const CLOSING: f64 = 2.0;

#[wasm_bindgen_test]
async fn dropping_both_ends_closes_the_websocket() {
    let runtime = BrowserRuntime::new();
    spy_on_websockets();
    let (socket, _) = open_hub_socket(&runtime, 1 << 20).await;
    let open = js("return globalThis.__talkbackSockets.map(s => s.readyState);");
    drop(socket);
    let states = stop_spying_on_websockets();
    assert_eq!(js_sys::Array::from(&open).get(0).as_f64(), Some(OPEN));
    assert_eq!(states.len(), 1);
    assert!(states[0] >= CLOSING, "readyState {}", states[0]);
}

#[wasm_bindgen_test]
async fn a_message_over_the_limit_closes_the_socket() {
    let runtime = BrowserRuntime::new();
    spy_on_websockets();
    let (mut socket, _) = open_hub_socket(&runtime, 200).await;
    let big = "x".repeat(300);
    let echo = format!(
        "{{\"type\":1,\"invocationId\":\"9\",\"target\":\"Echo\",\"arguments\":[\"{big}\"]}}\u{1e}"
    );
    socket
        .frames
        .send(Outgoing::Frame(Bytes::from(echo), TransferFormat::Text))
        .await
        .expect("sent");
    loop {
        match next_within(&mut socket.events, 10_000).await {
            Some(WebSocketEvent::Message(data)) => assert!(data.len() <= 200),
            Some(WebSocketEvent::Closed { code, reason }) => {
                assert_eq!(code, Some(1009), "{reason}");
                break;
            }
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert_eq!(next_within(&mut socket.events, 5_000).await, None);
    // The browser socket is closed too, not only reported closed (the socket is still held).
    let states = stop_spying_on_websockets();
    assert_eq!(states.len(), 1);
    assert!(states[0] >= CLOSING, "readyState {}", states[0]);
    drop(socket);
}
