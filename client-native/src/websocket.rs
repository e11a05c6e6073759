//! The runtime's WebSockets with tokio-tungstenite, without a task of their own: the socket's
//! events stream and its frames sink share the socket, and whoever polls them (the connection's
//! driver task) opens, reads and writes it directly. No queue and no task hop lies between the
//! driver and the socket, and the frames handed to the sink between two flushes go out in one
//! write.

use crate::handshake::{self, Transport};
use bytes::Bytes;
use futures::{Sink, Stream};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use talkback_core::client::{Outgoing, SocketClosed, WebSocket, WebSocketRequest};
use talkback_core::{TransferFormat, WebSocketEvent};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// How long to wait for the server's answer to our close frame before calling the socket closed.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// tungstenite's read buffer, which every open socket keeps (it grows for a larger frame). Small:
/// it is filled from memory, not from the network ([`Transport`] reads a burst at a time into a
/// buffer each thread shares, and hands it out in pieces this size).
const READ_BUFFER: usize = 256;

/// Frames buffered before they are written without waiting for the flush. The driver hands the
/// sink every waiting frame, then flushes once: a burst of calls goes out in few writes.
const WRITE_BUFFER: usize = 16 * 1024;

type Stream_ = WebSocketStream<Transport>;
type Connecting = Pin<Box<dyn Future<Output = Result<Stream_, WebSocketEvent>> + Send>>;

enum Phase {
    /// The TCP connection and the upgrade, on the heap while they run (the handshake's state is
    /// large and needed only once).
    Connecting(Connecting),
    Open(Box<Stream_>),
    /// Failed, closed or gone: nothing more to read or write.
    Ended,
}

struct Socket {
    phase: Phase,
    /// `Opened` is to be reported (by the events stream) before anything else.
    opened: bool,
    /// The last event to report, decided outside the events stream (a failed write, an
    /// unanswered close) or before it was polled (an invalid request).
    terminal: Option<WebSocketEvent>,
    /// The events stream reported its last event.
    finished: bool,
    /// Our close frame was sent: the server has [`CLOSE_TIMEOUT`] to answer it.
    close_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Who waits for events, and who waits to write (woken when the other side makes progress
    /// they cannot see, such as the socket opening).
    events_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

fn remember(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(slot: &Option<Waker>) {
    if let Some(waker) = slot {
        waker.wake_by_ref();
    }
}

fn failed(status: Option<u16>, message: String) -> WebSocketEvent {
    WebSocketEvent::Failed { status, message }
}

fn closed(reason: String) -> WebSocketEvent {
    WebSocketEvent::Closed { code: None, reason }
}

impl Socket {
    /// Drives the opening; ready once it is over (open or failed).
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Connecting(connecting) = &mut self.phase else {
            return Poll::Ready(());
        };
        let outcome = match connecting.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        match outcome {
            Ok(stream) => {
                self.phase = Phase::Open(Box::new(stream));
                self.opened = true;
            }
            Err(event) => self.end(event),
        }
        wake(&self.events_waker);
        wake(&self.writer_waker);
        Poll::Ready(())
    }

    /// Ends the socket with `event` as its last report (unless one was decided already).
    fn end(&mut self, event: WebSocketEvent) {
        self.phase = Phase::Ended;
        self.close_deadline = None;
        if self.terminal.is_none() && !self.finished {
            self.terminal = Some(event);
        }
        wake(&self.events_waker);
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<WebSocketEvent>> {
        remember(&mut self.events_waker, cx);
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if self.opened {
                self.opened = false;
                return Poll::Ready(Some(WebSocketEvent::Opened));
            }
            if let Some(event) = self.terminal.take() {
                self.finished = true;
                return Poll::Ready(Some(event));
            }
            let stream = match &mut self.phase {
                Phase::Connecting(_) => {
                    if self.poll_connect(cx).is_pending() {
                        return Poll::Pending;
                    }
                    continue;
                }
                Phase::Ended => {
                    self.finished = true;
                    return Poll::Ready(None);
                }
                Phase::Open(stream) => stream,
            };
            let next = Pin::new(&mut **stream).poll_next(cx);
            let event = match next {
                Poll::Pending => {
                    if let Some(deadline) = &mut self.close_deadline {
                        if deadline.as_mut().poll(cx).is_ready() {
                            let reason = "the server did not answer the close frame";
                            self.end(closed(reason.into()));
                            continue;
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(Message::Text(text)))) => {
                    WebSocketEvent::Message(Bytes::from(text))
                }
                Poll::Ready(Some(Ok(Message::Binary(data)))) => WebSocketEvent::Message(data),
                Poll::Ready(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => {
                    continue
                }
                Poll::Ready(Some(Ok(Message::Close(frame)))) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (None, String::new()),
                    };
                    self.end(WebSocketEvent::Closed { code, reason });
                    continue;
                }
                Poll::Ready(Some(Err(e))) => {
                    self.end(closed(format!("WebSocket read failed: {e}")));
                    continue;
                }
                Poll::Ready(None) => {
                    self.end(closed("the connection ended without a close frame".into()));
                    continue;
                }
            };
            return Poll::Ready(Some(event));
        }
    }

    /// The open stream, for writing; `Err` once nothing more can be written.
    fn writable(&mut self, cx: &mut Context<'_>) -> Poll<Result<&mut Stream_, SocketClosed>> {
        if self.close_deadline.is_some() || self.terminal.is_some() || self.finished {
            return Poll::Ready(Err(SocketClosed));
        }
        if let Phase::Connecting(_) = self.phase {
            remember(&mut self.writer_waker, cx);
            if self.poll_connect(cx).is_pending() {
                return Poll::Pending;
            }
        }
        match &mut self.phase {
            Phase::Open(stream) => Poll::Ready(Ok(&mut **stream)),
            _ => Poll::Ready(Err(SocketClosed)),
        }
    }

    fn write_failed(&mut self, e: &WsError) -> SocketClosed {
        self.end(closed(format!("WebSocket write failed: {e}")));
        SocketClosed
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        let stream = match self.writable(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(stream)) => stream,
        };
        match Pin::new(stream).poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.write_failed(&e))),
        }
    }

    fn start_send(&mut self, item: Outgoing) -> Result<(), SocketClosed> {
        let Phase::Open(stream) = &mut self.phase else {
            return Err(SocketClosed);
        };
        if self.close_deadline.is_some() {
            return Err(SocketClosed);
        }
        let message = match item {
            Outgoing::Frame(data, TransferFormat::Binary) => Message::Binary(data),
            // The engine's text frames are JSON it encoded itself: valid UTF-8, checked once.
            Outgoing::Frame(data, TransferFormat::Text) => match Utf8Bytes::try_from(data) {
                Ok(text) => Message::Text(text),
                Err(e) => {
                    self.end(closed(format!(
                        "WebSocket write failed: a text frame is not UTF-8: {e}"
                    )));
                    return Err(SocketClosed);
                }
            },
            Outgoing::Close => {
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                // Wait for the server's close frame, but not forever (the events stream
                // watches the deadline).
                self.close_deadline = Some(Box::pin(tokio::time::sleep(CLOSE_TIMEOUT)));
                wake(&self.events_waker);
                Message::Close(Some(frame))
            }
        };
        match Pin::new(&mut **stream).start_send(message) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.write_failed(&e)),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        let Phase::Open(stream) = &mut self.phase else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(&mut **stream).poll_flush(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.write_failed(&e))),
        }
    }
}

/// One socket, shared by its events stream and its frames sink (both polled by the driver, so
/// the lock is never contended there).
#[derive(Clone)]
struct Shared(Arc<Mutex<Socket>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Socket> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Events(Shared);

impl Stream for Events {
    type Item = WebSocketEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WebSocketEvent>> {
        self.0.lock().poll_event(cx)
    }
}

/// The frames sink; every error is [`SocketClosed`] (the events stream says why).
struct Frames(Shared);

impl Sink<Outgoing> for Frames {
    type Error = SocketClosed;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        self.0.lock().poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Outgoing) -> Result<(), SocketClosed> {
        self.0.lock().start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        self.0.lock().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SocketClosed>> {
        self.0.lock().poll_flush(cx)
    }
}

/// The upgrade request with the request's headers, or why it cannot be made.
fn upgrade_request(
    url: &str,
    headers: &[(String, String)],
) -> Result<http::Request<()>, WebSocketEvent> {
    let mut request = url
        .into_client_request()
        .map_err(|e| failed(None, e.to_string()))?;
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) else {
            let message = format!("invalid header '{name}' for the WebSocket request");
            return Err(failed(None, message));
        };
        request.headers_mut().append(name, value);
    }
    Ok(request)
}

/// Opens a socket. Nothing runs until the events stream or the frames sink is polled; dropping
/// both drops the socket.
pub(crate) fn open(request: WebSocketRequest) -> WebSocket {
    let WebSocketRequest {
        url,
        headers,
        max_message_size,
    } = request;
    // Small buffers: tungstenite's defaults reserve 128 KiB per socket, which dominated the
    // memory of an idle connection.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size));
    let (phase, terminal) = match upgrade_request(&url, &headers) {
        Ok(request) => {
            let connecting: Connecting = Box::pin(handshake::connect(request, config));
            (Phase::Connecting(connecting), None)
        }
        Err(event) => (Phase::Ended, Some(event)),
    };
    let shared = Shared(Arc::new(Mutex::new(Socket {
        phase,
        opened: false,
        terminal,
        finished: false,
        close_deadline: None,
        events_waker: None,
        writer_waker: None,
    })));
    WebSocket {
        events: Box::pin(Events(shared.clone())),
        frames: Box::pin(Frames(shared)),
    }
}
