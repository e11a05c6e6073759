//! WebSockets with the browser's `WebSocket`.
//!
//! One [`Socket`] owns the browser socket and the four event-handler closures. Its handlers
//! push [`WebSocketEvent`]s into a channel that backs the `events` stream; the `frames` sink
//! calls `send` directly. Both ends share the `Socket`; when both are dropped it removes its
//! handlers and closes the browser socket.
//!
//! The socket is made by the global `WebSocket` constructor, or by a JavaScript factory
//! `(url, headers) => socket` ([`open_with`]): the npm package's, which gives the `WebSocket`
//! connection option's constructor, or in Node.js the `ws` package's, with the upgrade's
//! headers. Any object with the browser `WebSocket`'s properties works (`onopen`,
//! `onmessage`, `onclose`, `onerror`, `binaryType`, `readyState`, `send`, `close`).

use crate::js;
use bytes::Bytes;
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_sink::Sink;
use futures_util::future::{select, Either};
use js_sys::{Array, ArrayBuffer, Function, Reflect, Uint8Array};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use talkback_core::client::{Outgoing, SocketClosed, WebSocket, WebSocketRequest};
use talkback_core::{TransferFormat, WebSocketEvent};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent};

/// How long to wait for the server's answer to our close frame before calling the socket
/// closed (as the native shell does).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The official JavaScript client's text for a socket that closed before it opened (browsers
/// do not tell scripts why: no status code, no reason).
const FAILED_TO_CONNECT: &str = "WebSocket failed to connect. The connection could not be found \
on the server, either the endpoint may not be a SignalR endpoint, the connection ID is not \
present on the server, or there is a proxy blocking WebSockets. If you have multiple servers \
check that sticky sessions are enabled.";

// `WebSocket.readyState` values.
const CONNECTING: u16 = 0;
const OPEN: u16 = 1;

/// Opens a WebSocket with the global `WebSocket` constructor (looked up now). The request's
/// headers are ignored: browsers cannot set headers on a WebSocket.
pub(crate) fn open(request: WebSocketRequest) -> WebSocket {
    open_with(request, None)
}

/// Opens a WebSocket with `factory`, called as `factory(url, headers)` with the request's
/// headers as a flat array `[name, value, ...]` (it decides which of them it can send), or
/// with the global `WebSocket` constructor when there is none.
pub(crate) fn open_with(request: WebSocketRequest, factory: Option<&Function>) -> WebSocket {
    let (tx, rx) = mpsc::unbounded();
    match Socket::connect(&request, factory, tx.clone()) {
        Ok(socket) => {
            let socket = Rc::new(socket);
            WebSocket {
                events: Box::pin(Events {
                    rx,
                    _socket: Some(socket.clone()),
                }),
                frames: Box::pin(Frames {
                    socket: Some(socket),
                }),
            }
        }
        Err(message) => {
            let _ = tx.unbounded_send(WebSocketEvent::Failed {
                status: None,
                message,
            });
            tx.close_channel();
            WebSocket {
                events: Box::pin(Events { rx, _socket: None }),
                frames: Box::pin(Frames { socket: None }),
            }
        }
    }
}

/// What the handlers share with the sink.
struct Shared {
    ws: web_sys::WebSocket,
    events: mpsc::UnboundedSender<WebSocketEvent>,
    max_message_size: usize,
    opened: Cell<bool>,
    /// `Failed` or `Closed` was reported: nothing more is.
    finished: Cell<bool>,
    /// Frames written before the socket opened (the browser refuses `send` until then).
    queue: RefCell<VecDeque<Outgoing>>,
    /// Ends the wait of [`Shared::bound_close`] once the socket has finished, so that no timer
    /// is left (in Node.js a pending timer keeps the process alive).
    close_wait: RefCell<Option<oneshot::Sender<()>>>,
}

impl Shared {
    fn emit(&self, event: WebSocketEvent) {
        if !self.finished.get() {
            let _ = self.events.unbounded_send(event);
        }
    }

    /// Reports the last event and ends the events stream.
    fn finish(&self, event: WebSocketEvent) {
        if !self.finished.replace(true) {
            let _ = self.events.unbounded_send(event);
            self.events.close_channel();
        }
        self.close_wait.borrow_mut().take();
    }

    fn on_open(self: &Rc<Self>) {
        self.opened.set(true);
        self.emit(WebSocketEvent::Opened);
        let queued = std::mem::take(&mut *self.queue.borrow_mut());
        for item in queued {
            if self.send_now(item).is_err() {
                break;
            }
        }
    }

    fn on_message(&self, event: &MessageEvent) {
        let data = event.data();
        let message = if let Some(text) = data.as_string() {
            Ok(Bytes::from(text))
        } else if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
            let len = buffer.byte_length() as usize;
            if len > self.max_message_size {
                Err(len)
            } else {
                Ok(Bytes::from(Uint8Array::new(buffer).to_vec()))
            }
        } else {
            // A Blob: only if someone changed `binaryType` behind our back.
            let _ = self.ws.close();
            self.finish(WebSocketEvent::Closed {
                code: Some(1003),
                reason: "the WebSocket delivered a message that is neither text nor an ArrayBuffer"
                    .into(),
            });
            return;
        };
        let len = match message {
            Ok(bytes) if bytes.len() <= self.max_message_size => {
                self.emit(WebSocketEvent::Message(bytes));
                return;
            }
            Ok(bytes) => bytes.len(),
            Err(len) => len,
        };
        // The browser has already read it; the limit still ends the socket, as the native
        // shell's does (close code 1009: message too big).
        let reason = format!(
            "The message of {len} bytes exceeds the limit of {} bytes.",
            self.max_message_size
        );
        // Scripts may only close with 1000 or 3000-4999 (anything else throws), so the
        // server sees a close without a status; the engine sees 1009.
        let _ = self.ws.close();
        self.finish(WebSocketEvent::Closed {
            code: Some(1009),
            reason,
        });
    }

    fn on_close(&self, event: &CloseEvent) {
        if !self.opened.get() {
            self.finish(WebSocketEvent::Failed {
                status: None,
                message: FAILED_TO_CONNECT.into(),
            });
            return;
        }
        let code = event.code();
        // The official client treats an unclean close as an error whatever its code; the
        // engine does so for every code but 1000, and for "no code" (which it shows as 1006).
        let code = if code == 1000 && !event.was_clean() {
            None
        } else {
            Some(code)
        };
        self.finish(WebSocketEvent::Closed {
            code,
            reason: event.reason(),
        });
    }

    fn send_now(self: &Rc<Self>, item: Outgoing) -> Result<(), SocketClosed> {
        let sent = match &item {
            Outgoing::Frame(data, TransferFormat::Text) => match std::str::from_utf8(data) {
                Ok(text) => self.ws.send_with_str(text),
                // Not UTF-8: a text frame cannot carry it (as in the native shell).
                Err(_) => send_bytes(&self.ws, data),
            },
            Outgoing::Frame(data, TransferFormat::Binary) => send_bytes(&self.ws, data),
            Outgoing::Close => {
                let closed = self.ws.close_with_code(1000);
                self.bound_close();
                closed
            }
        };
        sent.map_err(|_| SocketClosed)
    }

    /// Reports `Closed` after [`CLOSE_TIMEOUT`] if the server has not answered our close frame
    /// by then (browsers themselves wait much longer). The timer is cleared as soon as the
    /// socket finishes (or is dropped).
    fn bound_close(self: &Rc<Self>) {
        let weak: Weak<Self> = Rc::downgrade(self);
        let (done, finished) = oneshot::channel::<()>();
        *self.close_wait.borrow_mut() = Some(done);
        wasm_bindgen_futures::spawn_local(async move {
            // `finished` resolves (cancelled) when the sender is dropped: by `finish`, or with
            // the socket; the timer is then dropped, which clears it.
            if let Either::Right(_) = select(js::sleep(CLOSE_TIMEOUT), finished).await {
                return;
            }
            if let Some(shared) = weak.upgrade() {
                shared.finish(WebSocketEvent::Closed {
                    code: None,
                    reason: "the server did not answer the close frame".into(),
                });
            }
        });
    }
}

/// The browser socket and its handlers; removes them and closes the socket when dropped.
struct Socket {
    shared: Rc<Shared>,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

/// Sends `data` as a binary frame, from a copy in JavaScript memory: a view of the wasm memory
/// would be read after `send` returns by a socket that sends later (Node.js's `ws`, while it
/// compresses), when the memory may have changed.
fn send_bytes(ws: &web_sys::WebSocket, data: &[u8]) -> Result<(), JsValue> {
    ws.send_with_array_buffer_view(&Uint8Array::from(data))
}

thread_local! {
    /// A handler that does nothing, left as `onerror` on a socket being let go: Node.js's `ws`
    /// reports the end of a socket closed while connecting as an `error` event, and an
    /// emitter's `error` with no listener ends the process.
    static IGNORE: JsValue = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {}).into_js_value();
}

impl Socket {
    fn connect(
        request: &WebSocketRequest,
        factory: Option<&Function>,
        events: mpsc::UnboundedSender<WebSocketEvent>,
    ) -> Result<Socket, String> {
        let url = JsValue::from_str(&request.url);
        // Throws for a malformed URL (a `SyntaxError`).
        let ws = match factory {
            Some(factory) => {
                let headers = Array::new();
                for (name, value) in &request.headers {
                    headers.push(&JsValue::from_str(name));
                    headers.push(&JsValue::from_str(value));
                }
                factory.call2(&JsValue::NULL, &url, &headers)
            }
            None => {
                let constructor = js::global_function("WebSocket")?;
                Reflect::construct(&constructor, &Array::of1(&url))
            }
        }
        .map_err(|e| format!("WebSocket failed to connect: {}", js::describe(&e)))?;
        let max_message_size = request.max_message_size;
        // Not `dyn_into`: a wrapper or polyfill need not be an instance of the browser's class.
        let ws: web_sys::WebSocket = ws.unchecked_into();
        ws.set_binary_type(BinaryType::Arraybuffer);
        let shared = Rc::new(Shared {
            ws: ws.clone(),
            events,
            max_message_size,
            opened: Cell::new(false),
            finished: Cell::new(false),
            queue: RefCell::new(VecDeque::new()),
            close_wait: RefCell::new(None),
        });
        let s = shared.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| s.on_open());
        let s = shared.clone();
        let on_message =
            Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| s.on_message(&e));
        let s = shared.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| s.on_close(&e));
        // An error is always followed by a close event, which reports it: before the socket
        // opened as `Failed`, after as `Closed` with the browser's code (1006).
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_: Event| {});
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Socket {
            shared,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            _on_error: on_error,
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let ws = &self.shared.ws;
        // Removed before the closures are freed, so the browser never calls a freed closure.
        ws.set_onopen(None);
        ws.set_onmessage(None);
        ws.set_onclose(None);
        IGNORE.with(|ignore| ws.set_onerror(Some(ignore.unchecked_ref())));
        if ws.ready_state() <= OPEN {
            let _ = ws.close();
        }
        self.shared.finished.set(true);
        self.shared.events.close_channel();
        self.shared.close_wait.borrow_mut().take();
    }
}

/// The events stream: what the handlers reported, in order; ends after `Failed` or `Closed`.
struct Events {
    rx: mpsc::UnboundedReceiver<WebSocketEvent>,
    _socket: Option<Rc<Socket>>,
}

impl Stream for Events {
    type Item = WebSocketEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WebSocketEvent>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

/// The frames sink.
///
/// `poll_ready` is always ready while the socket lives: a browser `WebSocket` has no
/// backpressure to wait on. `send` never blocks; the browser queues what it cannot write yet
/// (`bufferedAmount`) and fires no event when that queue drains, so waiting for it would mean
/// polling with a timer. The engine bounds what it has outstanding itself (stream and upload
/// windows, the stateful-reconnect buffer), so the browser's queue stays bounded too.
struct Frames {
    socket: Option<Rc<Socket>>,
}

impl Frames {
    fn live(&self) -> Result<&Rc<Shared>, SocketClosed> {
        match &self.socket {
            Some(socket)
                if !socket.shared.finished.get() && socket.shared.ws.ready_state() <= OPEN =>
            {
                Ok(&socket.shared)
            }
            _ => Err(SocketClosed),
        }
    }
}

impl Sink<Outgoing> for Frames {
    type Error = SocketClosed;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        Poll::Ready(self.live().map(|_| ()))
    }

    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<(), SocketClosed> {
        let shared = self.live()?;
        if shared.ws.ready_state() == CONNECTING {
            // Sent by `on_open`, in order.
            shared.queue.borrow_mut().push_back(item);
            return Ok(());
        }
        shared.send_now(item)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        Poll::Ready(Ok(()))
    }
}
