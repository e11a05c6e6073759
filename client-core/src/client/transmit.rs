//! Performing the engine's transmits through the [`Runtime`], and collecting what the network
//! answers: HTTP outcomes, WebSocket events, access tokens.

use super::runtime::{BoxFuture, BoxStream, Outgoing, Runtime, WebSocket, WebSocketRequest};
use crate::connection::GiveBackRoom;
use crate::protocol::TransferFormat;
use crate::{Connection, HttpEvent, RequestId, Transmit, WebSocketEvent};
use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use futures_util::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The largest WebSocket message that hub messages are gathered into (a larger message goes
/// alone). Servers read the hub messages of a frame one by one (checklist item 1: one frame may
/// hold several records), as the .NET client's pipe sends whatever it has buffered in one
/// message. Kept small, for servers stricter than ASP.NET Core that count a whole WebSocket
/// message against their message-size limit (the fixture does; 32 KB by default): a burst of
/// small calls still shares few messages.
const BATCH_LIMIT: usize = 4 * 1024;

/// The room a batch starts with (it grows up to [`BATCH_LIMIT`]).
const BATCH_START: usize = 512;

/// An access-token factory, boxed.
pub(crate) type TokenFactory = Arc<shared_fn!(Fn() -> BoxFuture<Result<Option<String>, String>>)>;

/// Something the network answered, for the engine.
pub(crate) enum Input {
    Http(RequestId, HttpEvent),
    WebSocket(WebSocketEvent),
    Token(Result<Option<String>, String>),
}

/// Shows a payload in a trace log.
pub(crate) fn describe(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) => text.replace('\u{1e}', "\\x1e"),
        Err(_) => format!("{data:02x?}"),
    }
}

/// The IO of one connection: its HTTP requests in flight, its WebSocket and the frames waiting
/// for the socket's writer, and the access-token fetches.
pub(crate) struct Io {
    runtime: Arc<dyn Runtime>,
    token_factory: Option<TokenFactory>,
    log_message_content: bool,
    max_message_size: usize,
    http: HashMap<RequestId, BoxStream<HttpEvent>>,
    /// The current socket. There is one at a time, and a replaced socket is dropped (which
    /// closes it), so no report of an older socket can reach the engine.
    socket: Option<WebSocket>,
    /// Hub messages gathered into the next WebSocket message (see [`Batch`]).
    batch: Batch,
    /// Frames the socket's writer has not taken yet; calls wait while any are here.
    outbox: VecDeque<Outgoing>,
    /// Frames were handed to the socket since its last flush.
    unflushed: bool,
    /// The socket's sink failed: it takes nothing more (a sink is not polled after an error).
    writer_gone: bool,
    tokens: Vec<oneshot::Receiver<Result<Option<String>, String>>>,
    /// The last look at the network found nothing, and nothing was started since: every source
    /// has the driver's waker, so looking again before the driver is woken finds nothing either
    /// (and costs a pass through the WebSocket's reader). Cleared when the driver is woken.
    quiet: bool,
}

impl Io {
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        token_factory: Option<TokenFactory>,
        log_message_content: bool,
        max_message_size: usize,
    ) -> Self {
        Io {
            runtime,
            token_factory,
            log_message_content,
            max_message_size,
            http: HashMap::new(),
            socket: None,
            batch: Batch::Empty,
            outbox: VecDeque::new(),
            unflushed: false,
            writer_gone: false,
            tokens: Vec::new(),
            quiet: false,
        }
    }

    /// The driver was woken: the network may have something again.
    pub(crate) fn woken(&mut self) {
        self.quiet = false;
    }

    /// Whether frames wait for the socket's writer or its flush.
    pub(crate) fn needs_write(&self) -> bool {
        !self.outbox.is_empty() || self.unflushed || !matches!(self.batch, Batch::Empty)
    }

    /// Gives back the room of the empty queue of frames (a burst made it grow).
    pub(crate) fn trim(&mut self) {
        self.outbox.give_back_if_empty();
    }

    /// Whether the socket's writer is behind (calls wait then).
    pub(crate) fn is_writer_behind(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Performs one transmit. Only a token fetch without a factory answers the engine at once.
    pub(crate) fn perform(
        &mut self,
        conn: &mut Connection,
        transmit: Transmit,
        cx: &mut Context<'_>,
    ) {
        match transmit {
            Transmit::Http(request) => {
                tracing::debug!(id = request.id.0, method = ?request.method, url = %request.url, "HTTP request");
                if self.log_message_content && !request.body.is_empty() {
                    tracing::trace!(id = request.id.0, body = %describe(&request.body), "HTTP request body");
                }
                let id = request.id;
                let stream = self.runtime.http(request);
                self.http.insert(id, stream);
                self.quiet = false;
            }
            Transmit::AbortHttp(id) => {
                if self.finish_http(id) {
                    tracing::debug!(id = id.0, "HTTP request aborted");
                }
            }
            Transmit::FetchAccessToken => match &self.token_factory {
                Some(factory) => {
                    let fetch = factory();
                    let (tx, rx) = oneshot::channel();
                    self.runtime.spawn(Box::pin(async move {
                        let _ = tx.send(fetch.await);
                    }));
                    self.tokens.push(rx);
                    self.quiet = false;
                }
                None => conn.handle_access_token(self.runtime.now(), Ok(None)),
            },
            Transmit::OpenWebSocket { url, headers } => {
                tracing::debug!(%url, "opening WebSocket");
                self.batch = Batch::Empty;
                self.outbox.clear();
                self.unflushed = false;
                self.writer_gone = false;
                self.socket = Some(self.runtime.websocket(WebSocketRequest {
                    url,
                    headers,
                    max_message_size: self.max_message_size,
                }));
                self.quiet = false;
            }
            Transmit::WebSocketSend { data, format } => {
                if self.log_message_content {
                    tracing::trace!(data = %describe(&data), "WebSocket send");
                } else {
                    tracing::trace!(bytes = data.len(), "WebSocket send");
                }
                if let Some(full) = self.batch.add(data, format) {
                    self.write(full, cx);
                }
            }
            Transmit::CloseWebSocket => {
                tracing::debug!("closing WebSocket");
                self.seal(cx);
                self.write(Outgoing::Close, cx);
            }
        }
    }

    /// Hands a frame to the socket's writer, queueing it when the writer is busy (calls then
    /// wait until the queue drains). Nothing is flushed here: the driver flushes once it has
    /// nothing more to take, so that a burst of frames goes out in one write.
    fn write(&mut self, item: Outgoing, cx: &mut Context<'_>) {
        let socket = match &mut self.socket {
            Some(socket) if !self.writer_gone => socket,
            _ => {
                tracing::debug!("no open WebSocket for an outgoing frame; dropped");
                return;
            }
        };
        if self.outbox.is_empty() {
            // The usual case: straight to the writer, without the queue (which then never
            // allocates on a connection whose writer keeps up).
            match socket.frames.as_mut().poll_ready(cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => {
                    if socket.frames.as_mut().start_send(item).is_err() {
                        self.writer_failed();
                    } else {
                        self.unflushed = true;
                    }
                    return;
                }
                Poll::Ready(Err(_)) => {
                    self.writer_failed();
                    return;
                }
            }
        }
        self.outbox.push_back(item);
    }

    /// Moves waiting frames to the socket's writer without flushing it; ready once nothing
    /// waits.
    pub(crate) fn poll_feed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let socket = match &mut self.socket {
            Some(socket) if !self.writer_gone => socket,
            _ => {
                self.outbox.clear();
                self.unflushed = false;
                return Poll::Ready(());
            }
        };
        while !self.outbox.is_empty() {
            match socket.frames.as_mut().poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => {
                    self.writer_failed();
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(())) => {
                    let item = self.outbox.pop_front().expect("the outbox is not empty");
                    if socket.frames.as_mut().start_send(item).is_err() {
                        self.writer_failed();
                        return Poll::Ready(());
                    }
                    self.unflushed = true;
                }
            }
        }
        Poll::Ready(())
    }

    /// Hands the gathered hub messages to the socket's writer as one message.
    fn seal(&mut self, cx: &mut Context<'_>) {
        if let Some(frame) = self.batch.take() {
            self.write(frame, cx);
        }
    }

    /// Moves waiting frames to the socket's writer and flushes it; ready once nothing waits.
    pub(crate) fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.seal(cx);
        if self.poll_feed(cx).is_pending() {
            return Poll::Pending;
        }
        if !self.unflushed {
            return Poll::Ready(());
        }
        let Some(socket) = &mut self.socket else {
            self.unflushed = false;
            return Poll::Ready(());
        };
        match socket.frames.as_mut().poll_flush(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) => self.unflushed = false,
            Poll::Ready(Err(_)) => self.writer_failed(),
        }
        Poll::Ready(())
    }

    /// The socket's sink failed. The socket's events report its end; until then, frames for it
    /// are dropped.
    fn writer_failed(&mut self) {
        self.writer_gone = true;
        self.batch = Batch::Empty;
        self.outbox.clear();
        self.unflushed = false;
    }

    /// Forgets the request `id` (whether it was in flight). The map lets go of its table once
    /// no request is left: a WebSocket connection keeps none after its negotiation.
    fn finish_http(&mut self, id: RequestId) -> bool {
        let found = self.http.remove(&id).is_some();
        if self.http.is_empty() && self.http.capacity() > 0 {
            self.http = HashMap::new();
        }
        found
    }

    /// The next answer from the network, if one is ready: the socket first, then HTTP
    /// outcomes, then tokens.
    pub(crate) fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        if self.quiet {
            return Poll::Pending;
        }
        if let Some(socket) = &mut self.socket {
            match socket.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    self.log_websocket(&event);
                    if matches!(
                        event,
                        WebSocketEvent::Failed { .. } | WebSocketEvent::Closed { .. }
                    ) {
                        self.socket = None;
                        self.batch = Batch::Empty;
                        self.outbox.clear();
                        self.unflushed = false;
                    }
                    return Poll::Ready(Input::WebSocket(event));
                }
                Poll::Ready(None) => {
                    // A socket reports `Failed` or `Closed` before its events end; one that did
                    // not is gone all the same.
                    self.socket = None;
                    self.batch = Batch::Empty;
                    self.outbox.clear();
                    self.unflushed = false;
                    return Poll::Ready(Input::WebSocket(WebSocketEvent::Closed {
                        code: None,
                        reason: "the WebSocket ended without a close".into(),
                    }));
                }
                Poll::Pending => {}
            }
        }
        let mut ready = None;
        for (id, stream) in self.http.iter_mut() {
            if let Poll::Ready(event) = stream.as_mut().poll_next(cx) {
                ready = Some((*id, event));
                break;
            }
        }
        if let Some((id, event)) = ready {
            let Some(event) = event else {
                // The stream ended without a final outcome: the request is over.
                self.finish_http(id);
                return Poll::Ready(Input::Http(
                    id,
                    HttpEvent::Failed {
                        timed_out: false,
                        message: "the HTTP request ended without an outcome".into(),
                    },
                ));
            };
            self.log_http(id, &event);
            if matches!(
                event,
                HttpEvent::Response { .. } | HttpEvent::Failed { .. } | HttpEvent::End { .. }
            ) {
                self.finish_http(id);
            }
            return Poll::Ready(Input::Http(id, event));
        }
        for i in 0..self.tokens.len() {
            if let Poll::Ready(token) = self.tokens[i].poll_unpin(cx) {
                drop(self.tokens.swap_remove(i));
                let token = token.unwrap_or_else(|_| {
                    Err("the access-token factory was dropped before it answered".into())
                });
                return Poll::Ready(Input::Token(token));
            }
        }
        self.quiet = true;
        Poll::Pending
    }

    fn log_http(&self, id: RequestId, event: &HttpEvent) {
        match event {
            HttpEvent::Response { status, body } => {
                tracing::debug!(id = id.0, status, bytes = body.len(), "HTTP response");
                if self.log_message_content && !body.is_empty() {
                    tracing::trace!(id = id.0, body = %describe(body), "HTTP response body");
                }
            }
            HttpEvent::Failed { message, .. } => {
                tracing::debug!(id = id.0, %message, "HTTP request failed");
            }
            HttpEvent::End { error } => tracing::debug!(id = id.0, ?error, "HTTP stream ended"),
            HttpEvent::Head { status } => tracing::debug!(id = id.0, status, "HTTP stream opened"),
            HttpEvent::Chunk(data) => {
                if self.log_message_content {
                    tracing::trace!(id = id.0, data = %describe(data), "HTTP stream chunk");
                }
            }
        }
    }

    fn log_websocket(&self, event: &WebSocketEvent) {
        match event {
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
            }
            WebSocketEvent::Closed { code, reason } => {
                tracing::debug!(?code, %reason, "WebSocket closed");
            }
        }
    }
}

/// Hub messages waiting to go out together as one WebSocket message: those the engine queued
/// since the driver last wrote (a burst of calls). One message alone goes out as it is, without
/// a copy; the next one of the same format starts a buffer holding both.
enum Batch {
    Empty,
    One(Bytes, TransferFormat),
    Many(BytesMut, TransferFormat),
}

impl Batch {
    /// Adds a hub message; returns the batch to send first when this one cannot join it (a
    /// different format, or the message would grow past [`BATCH_LIMIT`]).
    fn add(&mut self, data: Bytes, format: TransferFormat) -> Option<Outgoing> {
        let fits = |len: usize, batch_format: TransferFormat| {
            batch_format == format && len + data.len() <= BATCH_LIMIT
        };
        match self {
            Batch::Empty => {
                *self = Batch::One(data, format);
                None
            }
            Batch::One(first, first_format) if fits(first.len(), *first_format) => {
                // Room for a burst of small messages: few regrowths while it gathers.
                let room = (first.len() + data.len()).max(BATCH_START) * 2;
                let mut joined = BytesMut::with_capacity(room.min(BATCH_LIMIT));
                joined.extend_from_slice(first);
                joined.extend_from_slice(&data);
                *self = Batch::Many(joined, format);
                None
            }
            Batch::Many(joined, batch_format) if fits(joined.len(), *batch_format) => {
                joined.extend_from_slice(&data);
                None
            }
            _ => {
                let full = self.take();
                *self = Batch::One(data, format);
                full
            }
        }
    }

    /// The gathered messages as one frame, leaving the batch empty.
    fn take(&mut self) -> Option<Outgoing> {
        match std::mem::replace(self, Batch::Empty) {
            Batch::Empty => None,
            Batch::One(data, format) => Some(Outgoing::Frame(data, format)),
            Batch::Many(joined, format) => Some(Outgoing::Frame(joined.freeze(), format)),
        }
    }
}
