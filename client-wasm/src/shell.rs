//! `BrowserRuntime` as a [`Shell`]: the browser's defaults for
//! [`crate::HubConnectionBuilder`], and the builder option only a browser has.

use crate::runtime::BrowserRuntime;
use js_sys::Reflect;
use std::sync::Arc;
use talkback_core::client::{Runtime, Shell};
use talkback_core::Config;
use wasm_bindgen::JsValue;

/// The browser's defaults, as the official JavaScript client has them in a browser:
///
/// - the user agent goes in `X-SignalR-User-Agent` ([`crate::user_agent()`]), since scripts may
///   not set `User-Agent`;
/// - no headers on the WebSocket and the Server-Sent Events request (a browser's `WebSocket`
///   and `EventSource` cannot set any): the access token goes in the `access_token` query
///   there, and in `Authorization` on the other (fetch) requests;
/// - `X-Requested-With: XMLHttpRequest` on every fetch request, as the official fetch and XHR
///   clients send it;
/// - the hub URL is parsed by the browser's `URL` when the builder is created; a relative one
///   (`/hubs/chat`, `hubs/chat`, `//host/hubs/chat`) is resolved against the document's base
///   URL (`document.baseURI`, which honours `<base href>`) or, in a Web Worker, the worker's
///   `location.href`;
/// - cookies go along (`credentials: "include"`); see
///   [`HubConnectionBuilderExt::with_credentials`].
impl Shell for BrowserRuntime {
    fn runtime() -> Arc<dyn Runtime> {
        Arc::new(BrowserRuntime::new())
    }

    fn configure(config: &mut Config) {
        config.user_agent = crate::user_agent();
        config.user_agent_header = "X-SignalR-User-Agent".into();
        config.headers_on_websocket = false;
        config.access_token_in_query = true;
        config
            .headers
            .push(("X-Requested-With".into(), "XMLHttpRequest".into()));
        if let Some(url) = resolve_url(&config.url) {
            config.url = url;
        }
    }
}

/// The shell of the npm package's connections in Node.js (`index.js` tells the bindings), with
/// the official JavaScript client's Node.js behaviour:
///
/// - the user agent goes in `User-Agent` (the bindings add it as a header, with the Node.js
///   version and platform: [`crate::node_user_agent`]);
/// - headers go on the WebSocket upgrade and the Server-Sent Events request (user headers, the
///   user agent, `Authorization`), as the official client gives them to `ws` and `eventsource`
///   there; the access token is not put in the query;
/// - `X-Requested-With: XMLHttpRequest` on every fetch request, as the official fetch client
///   sends it in Node.js too (the bindings' runtime takes it off the WebSocket upgrade and the
///   Server-Sent Events request, which the official client makes without it);
/// - an absolute hub URL is normalized by `URL`; a relative one is left as it is (there is no
///   document to resolve it against).
///
/// The runtime is the browser's: Node.js has `fetch`, `AbortController`, `setTimeout` and a
/// streaming `Response.body`; its WebSockets come from the factory `index.js` gives.
#[cfg(feature = "js-api")]
pub(crate) struct NodeShell;

#[cfg(feature = "js-api")]
impl Shell for NodeShell {
    fn runtime() -> Arc<dyn Runtime> {
        Arc::new(BrowserRuntime::new())
    }

    fn configure(config: &mut Config) {
        config.user_agent = String::new();
        config.user_agent_header = "User-Agent".into();
        config.headers_on_websocket = true;
        config.access_token_in_query = false;
        config
            .headers
            .push(("X-Requested-With".into(), "XMLHttpRequest".into()));
        if let Some(url) = resolve_url(&config.url) {
            config.url = url;
        }
    }
}

/// Browser-only options of [`crate::HubConnectionBuilder`].
pub trait HubConnectionBuilderExt {
    /// Whether HTTP requests carry the browser's cookies and HTTP authentication to other
    /// origins: `true` (the default) is fetch's `credentials: "include"`, `false` is
    /// `"same-origin"` (the official client's `withCredentials`). A WebSocket always carries
    /// its own origin's cookies. This sets the connection's runtime
    /// ([`BrowserRuntime::with_credentials`]), replacing one given with `with_runtime`.
    fn with_credentials(self, include: bool) -> Self;
}

impl HubConnectionBuilderExt for crate::HubConnectionBuilder {
    fn with_credentials(self, include: bool) -> Self {
        self.with_runtime(Arc::new(BrowserRuntime::new().with_credentials(include)))
    }
}

/// `url` parsed by the browser's `URL` (normalized: an IDNA host, percent-encoded path and
/// query, no dot segments), resolved against the page's (or worker's) base URL when it has no
/// scheme. `None` when the browser cannot parse it, or it is relative and there is no base
/// (the builder then reports the URL as it was given). The engine has no URL parser of its own
/// in the browser (`talkback_core::hub_url`), so this is where a hub URL is normalized.
pub(crate) fn resolve_url(url: &str) -> Option<String> {
    let parsed = if has_scheme(url) {
        web_sys::Url::new(url)
    } else {
        web_sys::Url::new_with_base(url, &base_url()?)
    };
    parsed.ok().map(|resolved| resolved.href())
}

/// Whether `url` starts with a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`).
fn has_scheme(url: &str) -> bool {
    let Some((scheme, _)) = url.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `document.baseURI` in a page, `location.href` in a worker, read now.
fn base_url() -> Option<String> {
    let global = js_sys::global();
    let get = |target: &JsValue, key: &str| Reflect::get(target, &JsValue::from_str(key)).ok();
    if let Some(document) = get(&global, "document").filter(JsValue::is_object) {
        if let Some(base) = get(&document, "baseURI").and_then(|b| b.as_string()) {
            return Some(base);
        }
    }
    let location = get(&global, "location").filter(JsValue::is_object)?;
    get(&location, "href").and_then(|href| href.as_string())
}
