//! Keep-alive in a hidden tab, in headless Chromium and Firefox against the fixture (run with
//! `scripts/wasm-browser-tests.sh`, which passes the fixture's URL in `TALKBACK_FIXTURE_URL`).
//!
//! Chrome runs a background tab's chained timers once a minute after five minutes
//! (dotnet/aspnetcore #31079), so a keep-alive Ping that waits for its timer goes out long after
//! the server's client timeout. The engine also sends a due Ping when network input arrives.
//! Here the global `setTimeout` is wrapped so that the client's keep-alive timer is held back
//! to 60 s, and the global `WebSocket` so that the Pings the client sends are counted: the
//! Pings keep coming while the server's messages do. The wrappers are plain JavaScript, so the
//! test asks the same of Firefox.
//!
//! A separate test binary: the test runner gives each binary 20 s.

#![cfg(target_arch = "wasm32")]

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use std::future::Future;
use std::time::Duration;
use talkback_wasm::{HubConnectionBuilder, TransportKind, TransportSet};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn hub_url() -> String {
    match option_env!("TALKBACK_FIXTURE_URL") {
        Some(url) => format!("{url}/hubs/test"),
        None => panic!(
            "TALKBACK_FIXTURE_URL was not set when these tests were compiled: \
             run them with scripts/wasm-browser-tests.sh"
        ),
    }
}

/// `f`, or a panic after 10 seconds.
async fn within<F: Future>(f: F) -> F::Output {
    let timer = gloo_timers::future::TimeoutFuture::new(10_000);
    match select(Box::pin(f), timer).await {
        Either::Left((output, _)) => output,
        Either::Right(_) => panic!("not finished within 10 s"),
    }
}

fn run_js(code: &str) -> JsValue {
    js_sys::Function::new_no_args(code)
        .call0(&JsValue::NULL)
        .expect("the test's JavaScript runs")
}

/// A hidden tab, roughly, until dropped: timers of 0.7 to 5 s fire after 60 s (the client's
/// 1 s keep-alive timer among them; the tests' own 10 s limit is untouched), and every JSON
/// Ping the page sends over a WebSocket is counted in `globalThis.__talkbackPings`. The
/// runtime looks both globals up when it uses them, so the wrappers apply.
struct HiddenTab;

impl HiddenTab {
    fn install() -> Self {
        run_js(
            r#"const setTimeout0 = globalThis.setTimeout, WebSocket0 = globalThis.WebSocket;
               globalThis.__talkbackOriginals = { setTimeout0, WebSocket0 };
               globalThis.__talkbackPings = 0;
               globalThis.setTimeout = function (handler, ms, ...rest) {
                   const delay = ms >= 700 && ms <= 5000 ? 60000 : ms;
                   return setTimeout0.call(globalThis, handler, delay, ...rest);
               };
               globalThis.WebSocket = class extends WebSocket0 {
                   send(data) {
                       const text = typeof data === "string" ? data : new TextDecoder().decode(data);
                       if (text === '{"type":6}\x1e') globalThis.__talkbackPings += 1;
                       return super.send(data);
                   }
               };"#,
        );
        HiddenTab
    }

    fn reset_pings(&self) {
        run_js("globalThis.__talkbackPings = 0;");
    }

    fn pings(&self) -> f64 {
        run_js("return globalThis.__talkbackPings;")
            .as_f64()
            .unwrap_or_default()
    }
}

impl Drop for HiddenTab {
    fn drop(&mut self) {
        run_js(
            "const o = globalThis.__talkbackOriginals;
             globalThis.setTimeout = o.setTimeout0;
             globalThis.WebSocket = o.WebSocket0;
             delete globalThis.__talkbackOriginals;
             delete globalThis.__talkbackPings;",
        );
    }
}

#[wasm_bindgen_test]
async fn with_its_keep_alive_timer_throttled_the_client_pings_as_the_servers_messages_arrive() {
    let tab = HiddenTab::install();
    let conn = HubConnectionBuilder::new(hub_url())
        .with_transports(TransportSet::only(TransportKind::WebSockets))
        .with_keep_alive_interval(Duration::from_secs(1))
        .build()
        .expect("builds");
    within(conn.start()).await.expect("starts");
    tab.reset_pings();
    // The server sends an item every 400 ms for about 4.8 s; the client writes nothing after
    // the invocation, so only Pings keep it from falling silent. Its timer would first fire
    // after 60 s.
    let stream = within(conn.stream::<i64>("Counter", (12, 400)))
        .await
        .expect("the stream starts");
    let items: Vec<i64> = within(stream.map(|item| item.expect("an item")).collect()).await;
    assert_eq!(items.len(), 12);
    let pings = tab.pings();
    // About one a second (five or so); none without the network-driven keep-alive.
    assert!(pings >= 3.0, "{pings} Pings in about 4.8 s");
    drop(tab);
    within(conn.stop()).await.expect("stops");
}
