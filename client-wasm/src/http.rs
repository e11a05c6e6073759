//! The engine's HTTP requests with `fetch`: negotiate, long polls, POST sends, DELETE, and the
//! Server-Sent Events stream; or, for the JavaScript API's `httpClient` option, with a JavaScript
//! function for every request but the SSE stream ([`perform_with`]).
//!
//! # Why `fetch` streaming, and not `EventSource`, for Server-Sent Events
//!
//! The SSE transport reads `response.body` of a `fetch` as it arrives instead of using the
//! browser's `EventSource`:
//! - `EventSource` cannot set request headers: no `Authorization`, no user headers, and no
//!   `X-Requested-With` / `X-SignalR-User-Agent` header, which the engine sends on every
//!   request of a connection;
//! - the engine already parses the event stream itself (`talkback_core::sse`), for the native
//!   shell too, so `EventSource`'s parser would only be a second, different one;
//! - one code path: every request of every transport goes through `fetch` with the same
//!   credentials, abort and error handling, and `EventSource` reports no status code and
//!   retries by itself, which the engine's own reconnect logic would have to fight.

use crate::js;
use bytes::Bytes;
use futures_core::Stream;
use futures_util::future::{select, Either};
use futures_util::stream;
use gloo_timers::future::TimeoutFuture;
use js_sys::{Array, ArrayBuffer, Promise, Reflect, Uint8Array};
use std::pin::Pin;
use std::task::{Context, Poll};
use talkback_core::client::BoxStream;
use talkback_core::{HttpEvent, HttpMethod, HttpRequest};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, AbortSignal, Headers, ReadableStreamDefaultReader, RequestCredentials,
    RequestInit, Response,
};

/// The largest non-streaming response body accepted, in bytes (a long poll may batch many
/// messages); a larger body is reported as [`HttpEvent::Failed`].
pub const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// Performs `request` with the global `fetch` (looked up now) and yields its events. The
/// request and its timeout timer start at once, before the stream is first polled. Dropping
/// the stream aborts the request.
pub(crate) fn perform(request: HttpRequest, credentials: bool) -> BoxStream<HttpEvent> {
    perform_using(request, credentials, None)
}

/// [`perform`] with `fetch_fn` in place of the global `fetch` when given: a function called as
/// `fetch` is, `(url, init)`, that returns a Promise of a `Response` (the JavaScript API's
/// cookie-keeping `fetch` in Node.js).
pub(crate) fn perform_using(
    request: HttpRequest,
    credentials: bool,
    fetch_fn: Option<&js_sys::Function>,
) -> BoxStream<HttpEvent> {
    let controller = match AbortController::new() {
        Ok(controller) => controller,
        Err(e) => {
            let failed = failed(format!(
                "cannot create an AbortController: {}",
                js::describe(&e)
            ));
            return Box::pin(stream::iter([failed]));
        }
    };
    let start = Start {
        streaming: request.streaming,
        hooked: false,
        timer: request.timeout.map(js::sleep),
        fetch: fetch(&request, credentials, &controller.signal(), fetch_fn),
        controller: controller.clone(),
    };
    events(start, controller)
}

/// Performs the non-streaming `request` with the JavaScript function `hook` instead of `fetch`
/// (the JavaScript API's custom `httpClient`, adapted in `npm/src/index.js`), and yields its one
/// event. The call is `hook(method, url, headers, body, timeoutMs, signal)`: `headers` a flat
/// array `[name, value, ...]`, `body` a `Uint8Array` or `undefined`, `timeoutMs` the request's
/// timeout (enforced by the hook, as the official client leaves it to its `HttpClient`),
/// `signal` an `AbortSignal` aborted when the engine drops the request before its answer. The
/// hook returns a Promise of `[status, content]` (`content` a string or a `Uint8Array`), or
/// rejects with `[message, timedOut]`.
#[cfg(feature = "js-api")]
pub(crate) fn perform_with(hook: &js_sys::Function, request: HttpRequest) -> BoxStream<HttpEvent> {
    let controller = match AbortController::new() {
        Ok(controller) => controller,
        Err(e) => return Box::pin(stream::iter([failed(js::describe(&e))])),
    };
    let headers = Array::new();
    for (name, value) in &request.headers {
        headers.push(&JsValue::from_str(name));
        headers.push(&JsValue::from_str(value));
    }
    let args = Array::of3(
        &JsValue::from_str(method_name(request.method)),
        &JsValue::from_str(&request.url),
        &headers,
    );
    args.push(&if request.body.is_empty() {
        JsValue::UNDEFINED
    } else {
        Uint8Array::from(&request.body[..]).into()
    });
    args.push(
        &request
            .timeout
            .map_or(JsValue::UNDEFINED, |t| JsValue::from(t.as_millis() as f64)),
    );
    args.push(&controller.signal());
    let fetch = hook
        .apply(&JsValue::NULL, &args)
        .map(|answer| JsFuture::from(Promise::resolve(&answer)))
        .map_err(|e| js::describe(&e));
    let start = Start {
        streaming: false,
        hooked: true,
        timer: None,
        fetch,
        controller: controller.clone(),
    };
    events(start, controller)
}

fn events(start: Start, controller: AbortController) -> BoxStream<HttpEvent> {
    let events = stream::unfold(State::Start(Box::new(start)), step);
    Box::pin(HttpStream {
        events: Box::pin(events),
        controller,
        done: false,
    })
}

fn method_name(method: HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Delete => "DELETE",
    }
}

/// The events of one request; aborts the request when dropped before its last event.
struct HttpStream {
    events: Pin<Box<dyn Stream<Item = HttpEvent>>>,
    controller: AbortController,
    /// The last event has been yielded.
    done: bool,
}

impl Stream for HttpStream {
    type Item = HttpEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<HttpEvent>> {
        let next = self.events.as_mut().poll_next(cx);
        if let Poll::Ready(event) = &next {
            self.done |= !matches!(event, Some(HttpEvent::Head { .. } | HttpEvent::Chunk(_)));
        }
        next
    }
}

impl Drop for HttpStream {
    fn drop(&mut self) {
        // Before the end, the browser cancels the request (and closes its connection), and
        // every pending promise of it rejects; a hook sees its `signal` aborted. After the
        // end there is nothing to cancel, and a hook's signal stays as it was.
        if !self.done {
            self.controller.abort();
        }
    }
}

/// A request in flight, before its first event.
struct Start {
    streaming: bool,
    /// `fetch` is the promise of a hook ([`perform_with`]), not of `fetch`.
    hooked: bool,
    /// The `fetch` promise, or why `fetch` could not be called.
    fetch: Result<JsFuture, String>,
    /// The request's timeout (see [`Start::run`]).
    timer: Option<TimeoutFuture>,
    controller: AbortController,
}

enum State {
    Start(Box<Start>),
    Reading(ReadableStreamDefaultReader),
    End(Option<String>),
    Done,
}

async fn step(state: State) -> Option<(HttpEvent, State)> {
    match state {
        State::Start(start) => Some(start.run().await),
        State::Reading(reader) => Some(read_chunk(reader).await),
        State::End(error) => Some((HttpEvent::End { error }, State::Done)),
        State::Done => None,
    }
}

fn failed(message: String) -> HttpEvent {
    HttpEvent::Failed {
        timed_out: false,
        message,
    }
}

impl Start {
    /// Waits for the request's first event: the whole response, or the head of a streaming
    /// one, or the failure. The request's timeout covers this part (for a streaming request,
    /// until the head), as in the native shell.
    async fn run(self) -> (HttpEvent, State) {
        let Start {
            streaming,
            hooked,
            fetch,
            timer,
            controller,
        } = self;
        let work = Box::pin(response(fetch, streaming, hooked));
        let Some(timer) = timer else {
            return work.await;
        };
        match select(work, timer).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(((), _)) => {
                // Only this timer is a timeout to the engine (see `HttpEvent::Failed`).
                controller.abort();
                let timed_out = HttpEvent::Failed {
                    timed_out: true,
                    message: "The request timed out.".into(),
                };
                (timed_out, State::Done)
            }
        }
    }
}

async fn response(
    fetch: Result<JsFuture, String>,
    streaming: bool,
    hooked: bool,
) -> (HttpEvent, State) {
    let outcome = match fetch {
        Ok(fetch) => fetch.await,
        Err(message) => return (failed(message), State::Done),
    };
    if hooked {
        return (hook_event(outcome), State::Done);
    }
    let response = match outcome {
        Ok(response) => response.unchecked_into::<Response>(),
        Err(e) => return (failed(js::describe(&e)), State::Done),
    };
    let status = response.status();
    if streaming {
        let head = HttpEvent::Head { status };
        return match response.body() {
            Some(body) => (head, State::Reading(body.get_reader().unchecked_into())),
            // No body at all (a polyfilled fetch, or a status without content).
            None => (head, State::End(None)),
        };
    }
    match read_body(&response).await {
        Ok(body) => (HttpEvent::Response { status, body }, State::Done),
        Err(message) => (failed(message), State::Done),
    }
}

/// Calls `fetch_fn`, or the global `fetch`, for `request`.
fn fetch(
    request: &HttpRequest,
    credentials: bool,
    signal: &AbortSignal,
    fetch_fn: Option<&js_sys::Function>,
) -> Result<JsFuture, String> {
    let init = RequestInit::new();
    init.set_method(method_name(request.method));
    let headers = Headers::new().map_err(|e| js::describe(&e))?;
    for (name, value) in &request.headers {
        // Headers a browser forbids scripts to set (`User-Agent` in some) are dropped by the
        // browser without an error; an invalid name or value throws.
        headers
            .append(name, value)
            .map_err(|e| format!("invalid header '{name}': {}", js::describe(&e)))?;
    }
    init.set_headers(&headers);
    if !request.body.is_empty() {
        init.set_body(&Uint8Array::from(&request.body[..]));
    }
    init.set_credentials(if credentials {
        RequestCredentials::Include
    } else {
        RequestCredentials::SameOrigin
    });
    init.set_signal(Some(signal));
    let fetch = match fetch_fn {
        Some(f) => f.clone(),
        None => js::global_function("fetch")?,
    };
    // `fetch` must be called with the global object as `this` ("Illegal invocation").
    let promise = fetch
        .call2(&js_sys::global(), &JsValue::from_str(&request.url), &init)
        .map_err(|e| js::describe(&e))?;
    let promise: Promise = promise.unchecked_into();
    Ok(JsFuture::from(promise))
}

/// The event for what a hook's promise gave: `[status, content]`, or a rejection
/// `[message, timedOut]` (see [`perform_with`]). The hook is `index.js`'s own adapter, which
/// gives a number and a string or `Uint8Array`; anything else reads as status 0 or no body.
fn hook_event(outcome: Result<JsValue, JsValue>) -> HttpEvent {
    let (first, second, rejected) = match &outcome {
        Ok(value) | Err(value) if Array::is_array(value) => {
            let pair: &Array = value.unchecked_ref();
            (pair.get(0), pair.get(1), outcome.is_err())
        }
        Ok(_) => (JsValue::UNDEFINED, JsValue::UNDEFINED, false),
        Err(e) => return failed(js::describe(e)),
    };
    if rejected {
        return HttpEvent::Failed {
            timed_out: second.is_truthy(),
            message: first.as_string().unwrap_or_default(),
        };
    }
    let body = match second.dyn_ref::<Uint8Array>() {
        // Bytes are measured before they are copied into the wasm memory.
        Some(bytes) if bytes.length() as usize > MAX_RESPONSE_BODY => None,
        Some(bytes) => Some(bytes.to_vec()),
        None => Some(second.as_string().unwrap_or_default().into_bytes()),
    };
    match body.filter(|body| body.len() <= MAX_RESPONSE_BODY) {
        Some(body) => HttpEvent::Response {
            // A number out of range saturates, and NaN is 0.
            status: first.as_f64().unwrap_or_default() as u16,
            body: Bytes::from(body),
        },
        None => failed(too_large()),
    }
}

fn too_large() -> String {
    format!("the response body exceeds the limit of {MAX_RESPONSE_BODY} bytes")
}

/// The whole body of a non-streaming response, at most [`MAX_RESPONSE_BODY`] bytes.
///
/// The body is read with `arrayBuffer()`, so the browser buffers it outside the wasm memory;
/// the bound keeps an oversized body from being copied into the wasm memory (which cannot
/// shrink, and is limited to 4 GiB). A `Content-Length` over the bound is refused before any
/// of it is read.
async fn read_body(response: &Response) -> Result<Bytes, String> {
    let declared = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_RESPONSE_BODY as u64) {
        return Err(too_large());
    }
    let promise = response.array_buffer().map_err(|e| js::describe(&e))?;
    let buffer: JsValue = JsFuture::from(promise)
        .await
        .map_err(|e| js::describe(&e))?;
    let buffer: ArrayBuffer = buffer.unchecked_into();
    if buffer.byte_length() as usize > MAX_RESPONSE_BODY {
        return Err(too_large());
    }
    Ok(Bytes::from(Uint8Array::new(&buffer).to_vec()))
}

/// The next non-empty chunk of a streaming body, or its end.
async fn read_chunk(reader: ReadableStreamDefaultReader) -> (HttpEvent, State) {
    loop {
        let result: Result<JsValue, JsValue> = JsFuture::from(reader.read()).await;
        let result = match result {
            Ok(result) => result,
            Err(e) => {
                let error = Some(js::describe(&e));
                return (HttpEvent::End { error }, State::Done);
            }
        };
        let done = Reflect::get(&result, &JsValue::from_str("done"))
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if done {
            return (HttpEvent::End { error: None }, State::Done);
        }
        let value = Reflect::get(&result, &JsValue::from_str("value")).unwrap_or_default();
        let Some(chunk) = value.dyn_ref::<Uint8Array>() else {
            let error = Some("the response body yielded something other than bytes".into());
            return (HttpEvent::End { error }, State::Done);
        };
        if chunk.length() > 0 {
            let chunk = Bytes::from(chunk.to_vec());
            return (HttpEvent::Chunk(chunk), State::Reading(reader));
        }
    }
}
