//! The runtime's WebSockets with tokio-tungstenite: one task per socket opens it, then reads it
//! and writes the frames the driver hands it.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use talkback_core::client::{Outgoing, SocketClosed, WebSocket, WebSocketRequest};
use talkback_core::{TransferFormat, WebSocketEvent};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::PollSender;

/// Frames queued for one socket's writer.
pub(crate) const WRITE_QUEUE: usize = 64;

/// Events queued from the socket's task to the driver.
const EVENT_QUEUE: usize = 64;

/// How long to wait for the server's answer to our close frame before calling the socket closed.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 8 * 1024;

/// Aborts the socket's task when the driver drops the socket's events.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens a socket: one task opens it, then reads and writes it; its events come back on a
/// queue, and the frames to send go to it on another (whose room is the sink's `poll_ready`).
pub(crate) fn open(request: WebSocketRequest) -> WebSocket {
    let (out_tx, out_rx) = mpsc::channel(WRITE_QUEUE);
    let (events_tx, mut events_rx) = mpsc::channel(EVENT_QUEUE);
    let task = tokio::spawn(run(request, events_tx, out_rx));
    let guard = AbortOnDrop(task.abort_handle());
    let events = futures::stream::poll_fn(move |cx| {
        let _owned = &guard;
        events_rx.poll_recv(cx)
    });
    WebSocket {
        events: Box::pin(events),
        frames: Box::pin(Frames(PollSender::new(out_tx))),
    }
}

/// The frames sink: the writer's queue, whose every error is [`SocketClosed`].
struct Frames(PollSender<Outgoing>);

impl futures::Sink<Outgoing> for Frames {
    type Error = SocketClosed;

    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), SocketClosed>> {
        self.0.poll_reserve(cx).map_err(|_| SocketClosed)
    }

    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Outgoing) -> Result<(), SocketClosed> {
        self.0.send_item(item).map_err(|_| SocketClosed)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), SocketClosed>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), SocketClosed>> {
        self.0.close();
        std::task::Poll::Ready(Ok(()))
    }
}

fn failed(status: Option<u16>, message: String) -> WebSocketEvent {
    WebSocketEvent::Failed { status, message }
}

async fn run(
    request: WebSocketRequest,
    io: mpsc::Sender<WebSocketEvent>,
    mut out: mpsc::Receiver<Outgoing>,
) {
    let WebSocketRequest {
        url,
        headers,
        max_message_size,
    } = request;
    let mut request = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            let _ = io.send(failed(None, e.to_string())).await;
            return;
        }
    };
    for (name, value) in &headers {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) else {
            let message = format!("invalid header '{name}' for the WebSocket request");
            let _ = io.send(failed(None, message)).await;
            return;
        };
        request.headers_mut().append(name, value);
    }
    // Small buffers that grow on demand: tungstenite's defaults reserve 128 KiB per socket,
    // which dominated the memory of an idle connection.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size));
    // The handshake's state is large (TLS included) and needed only once: on the heap while it
    // runs, so that the task of an open socket keeps only what reading and writing need.
    let connecting = Box::pin(tokio_tungstenite::connect_async_with_config(
        request,
        Some(config),
        true,
    ));
    let stream = match connecting.await {
        Ok((stream, _response)) => stream,
        Err(WsError::Http(response)) => {
            let status = response.status();
            let message = format!(
                "WebSocket failed to connect: the server answered the upgrade with {status}"
            );
            let _ = io.send(failed(Some(status.as_u16()), message)).await;
            return;
        }
        Err(e) => {
            let message = format!("WebSocket failed to connect: {e}");
            let _ = io.send(failed(None, message)).await;
            return;
        }
    };
    if io.send(WebSocketEvent::Opened).await.is_err() {
        return;
    }
    let (mut sink, mut source) = stream.split();

    let writer_io = io.clone();
    let writer = async move {
        while let Some(item) = out.recv().await {
            let result = match item {
                Outgoing::Frame(data, TransferFormat::Binary) => {
                    sink.send(Message::Binary(data)).await
                }
                Outgoing::Frame(data, TransferFormat::Text) => {
                    match Utf8Bytes::try_from(data.clone()) {
                        Ok(text) => sink.send(Message::Text(text)).await,
                        Err(_) => sink.send(Message::Binary(data)).await,
                    }
                }
                Outgoing::Close => {
                    let frame = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    // Wait for the server's close frame, but not forever.
                    tokio::time::sleep(CLOSE_TIMEOUT).await;
                    let closed = WebSocketEvent::Closed {
                        code: None,
                        reason: "the server did not answer the close frame".into(),
                    };
                    let _ = writer_io.send(closed).await;
                    return;
                }
            };
            if let Err(e) = result {
                let closed = WebSocketEvent::Closed {
                    code: None,
                    reason: format!("WebSocket write failed: {e}"),
                };
                let _ = writer_io.send(closed).await;
                return;
            }
        }
        // The driver dropped the socket: close it quietly.
        let _ = sink.close().await;
        std::future::pending::<()>().await;
    };

    let reader = async {
        loop {
            let event = match source.next().await {
                Some(Ok(Message::Text(text))) => WebSocketEvent::Message(Bytes::from(text)),
                Some(Ok(Message::Binary(data))) => WebSocketEvent::Message(data),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (None, String::new()),
                    };
                    let _ = io.send(WebSocketEvent::Closed { code, reason }).await;
                    return;
                }
                Some(Err(e)) => {
                    let closed = WebSocketEvent::Closed {
                        code: None,
                        reason: format!("WebSocket read failed: {e}"),
                    };
                    let _ = io.send(closed).await;
                    return;
                }
                None => {
                    let closed = WebSocketEvent::Closed {
                        code: None,
                        reason: "the connection ended without a close frame".into(),
                    };
                    let _ = io.send(closed).await;
                    return;
                }
            };
            if io.send(event).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}
