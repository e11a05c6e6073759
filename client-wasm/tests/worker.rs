//! `BrowserRuntime` in a dedicated Web Worker (no `window`, no `document`) in headless Chromium
//! and Firefox, against the fixture that `scripts/wasm-browser-tests.sh` starts.

#![cfg(target_arch = "wasm32")]

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use talkback_core::client::{BoxStream, Outgoing, Runtime, WebSocketRequest};
use talkback_core::{
    HttpEvent, HttpMethod, HttpRequest, RequestId, TransferFormat, WebSocketEvent,
};
use talkback_wasm::{
    BoxError, BrowserRuntime, HubConnectionBuilder, Protocol, TransportKind, TransportSet,
};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_dedicated_worker);

fn fixture() -> &'static str {
    match option_env!("TALKBACK_FIXTURE_URL") {
        Some(url) => url,
        None => panic!(
            "TALKBACK_FIXTURE_URL was not set when these tests were compiled: \
             run them with scripts/wasm-browser-tests.sh"
        ),
    }
}

async fn next_within<T>(stream: &mut BoxStream<T>, ms: u32) -> Option<T> {
    let timer = gloo_timers::future::TimeoutFuture::new(ms);
    match select(stream.next(), timer).await {
        Either::Left((item, _)) => item,
        Either::Right(_) => panic!("nothing arrived within {ms} ms"),
    }
}

#[wasm_bindgen_test]
fn runs_in_a_worker() {
    let global = js_sys::global();
    let has =
        |name: &str| js_sys::Reflect::has(&global, &JsValue::from_str(name)).expect("Reflect.has");
    assert!(!has("window") && !has("document"));
    assert!(has("WorkerGlobalScope"));
}

#[wasm_bindgen_test]
async fn fetch_websocket_and_timers_work_in_a_worker() {
    let runtime = BrowserRuntime::new();
    let start = runtime.now();
    runtime.sleep_until(start + Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));

    let mut negotiate = runtime.http(HttpRequest {
        id: RequestId(1),
        method: HttpMethod::Post,
        url: format!("{}/hubs/test/negotiate?negotiateVersion=1", fixture()),
        headers: vec![("X-Requested-With".into(), "XMLHttpRequest".into())],
        body: Bytes::new(),
        timeout: Some(Duration::from_secs(10)),
        streaming: false,
    });
    let token = match next_within(&mut negotiate, 10_000).await {
        Some(HttpEvent::Response { status: 200, body }) => {
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            json["connectionToken"]
                .as_str()
                .expect("a token")
                .to_owned()
        }
        other => panic!("negotiate: {other:?}"),
    };

    let url = format!("{}/hubs/test?id={token}", fixture()).replacen("http", "ws", 1);
    let mut socket = runtime.websocket(WebSocketRequest {
        url,
        headers: vec![],
        max_message_size: 1 << 20,
    });
    socket
        .frames
        .send(Outgoing::Frame(
            Bytes::from("{\"protocol\":\"json\",\"version\":1}\u{1e}"),
            TransferFormat::Text,
        ))
        .await
        .expect("queued");
    assert_eq!(
        next_within(&mut socket.events, 10_000).await,
        Some(WebSocketEvent::Opened)
    );
    match next_within(&mut socket.events, 10_000).await {
        Some(WebSocketEvent::Message(data)) => assert!(data.starts_with(b"{}\x1e"), "{data:?}"),
        other => panic!("expected the handshake response, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn the_rust_client_api_works_in_a_worker() {
    // A scheme-relative URL resolves against the worker's `location.href` (no document here).
    let host = fixture().trim_start_matches("http:");
    for (transport, protocol) in [
        (TransportKind::WebSockets, Protocol::MessagePack),
        (TransportKind::ServerSentEvents, Protocol::Json),
        (TransportKind::LongPolling, Protocol::Json),
    ] {
        let conn = HubConnectionBuilder::new(format!("{host}/hubs/test"))
            .with_transports(TransportSet::only(transport))
            .with_protocol(protocol)
            .with_access_token_factory(|| async { Ok::<_, BoxError>("worker".to_string()) })
            .build()
            .expect("builds");
        let started = select(
            Box::pin(conn.start()),
            gloo_timers::future::TimeoutFuture::new(10_000),
        )
        .await;
        let Either::Left((started, _)) = started else {
            panic!("{transport:?}: start timed out");
        };
        started.expect("starts");
        let sum: i64 = conn.invoke("Add", (20, 22)).await.expect("Add");
        assert_eq!(sum, 42);
        let user: Option<String> = conn.invoke("GetUserId", ()).await.expect("GetUserId");
        assert_eq!(user.as_deref(), Some("worker"));
        let items: Vec<i64> = conn
            .stream::<i64>("Counter", (3, 0))
            .await
            .expect("stream")
            .map(|item| item.expect("an item"))
            .collect()
            .await;
        assert_eq!(items, [0, 1, 2]);
        conn.stop().await.expect("stops");
    }
}
