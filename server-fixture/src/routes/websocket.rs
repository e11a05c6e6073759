//! The WebSockets transport: the upgrade (with its per-socket buffers and size limits), the
//! socket task that moves frames between the client and the session, and the closing handshake.

use super::App;
use crate::registry::{Conn, Inbound, Outbound};
use crate::session;
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use talkback_core::protocol::Protocol;

/// The WebSocket read buffer per socket (see [`websocket`]), allocated for every socket: also
/// the most one read takes from the socket (a larger frame is read in several).
const WS_READ_BUFFER: usize = 512;

pub(super) fn websocket(
    shared: App,
    conn: Arc<Conn>,
    upgrade: Option<WebSocketUpgrade>,
) -> Response {
    let Some(upgrade) = upgrade else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let reattach = {
        let mut attached = conn.socket_attached.lock();
        let had_session = conn.pipe.session_side.lock().is_none();
        if had_session && !conn.stateful_active.load(Ordering::SeqCst) {
            return StatusCode::CONFLICT.into_response();
        }
        *attached = true;
        had_session
    };
    // Refused as soon as the limit is crossed: tungstenite checks a frame's length in its
    // header, before reading the payload, against both limits (and a fragmented message as
    // its fragments add up), so an oversized message is never read nor buffered. The room
    // over the hub limit is the framing of one hub message (the JSON record separator, the
    // MessagePack length prefix); a message a little over the hub limit reaches the session,
    // whose framer refuses it the same way.
    let limit = ws_message_limit(&shared.config);
    upgrade
        .max_frame_size(limit)
        .max_message_size(limit)
        // Memory per idle socket: tungstenite's defaults are a 128 KiB read buffer, allocated
        // and zero-filled up front, and a 128 KiB write buffer target. A small read buffer
        // (it grows to a larger frame's size while that frame is read) and eager writes (the
        // session's bounded outbound queue already batches, and each send is awaited) keep an
        // idle connection to a few KB. The write buffer needs no cap of its own: it only grows
        // past one frame when writes fail, and then the connection ends.
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| run_websocket(shared, conn, socket, reattach))
}

/// The largest WebSocket message (and frame) accepted: one hub message of the configured
/// maximum size with its framing. A larger one is refused from its frame header, with Close
/// [`CLOSE_TOO_BIG`].
///
/// Unlike ASP.NET Core, whose limit applies to each hub message only, several hub messages
/// batched into one WebSocket message count together here. Clients may batch (the native
/// client sends calls made together as one message of up to 4 KiB, as the .NET client does), so
/// a client that batches must keep its messages under this limit, not only each hub message.
pub(super) fn ws_message_limit(config: &crate::Config) -> usize {
    config.max_receive_message_size.saturating_add(16)
}

/// The WebSocket close code for a message over the size limit (RFC 6455 7.4.1, "Message Too
/// Big").
const CLOSE_TOO_BIG: u16 = 1009;

/// Whether a WebSocket read failed because a frame or message announced more than the limit
/// (tungstenite's capacity error, raised from the frame header).
fn over_limit(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

async fn run_websocket(shared: App, conn: Arc<Conn>, mut socket: WebSocket, reattach: bool) {
    // The old socket of a stateful connection gives way to this one.
    let mut kill = conn.install_kill();
    session::ensure_started(&shared, &conn);
    let outbound = conn.pipe.outbound.clone();
    let mut outbound = outbound.lock().await;
    if reattach {
        // Frames queued for the dead socket are in the replay buffer; Sequence goes first.
        while outbound.try_recv().is_ok() {}
        let _ = conn.pipe.inbound.send(Inbound::Reattached).await;
    }
    let binary = || conn.protocol.get() == Some(&Protocol::MessagePack);
    let mut ended = false;
    // Cleared when a message over the limit was refused: the rest of the stream is that
    // message's payload, never read; the session's Close goes out, then the socket closes.
    let mut reading = true;
    let mut close_code = 1000;
    // A queued item taken out while coalescing that did not fit in the message: the next one.
    let mut held: Option<Outbound> = None;
    let mut first = !reattach;
    loop {
        tokio::select! {
            message = socket.recv(), if reading => match message {
                // Once the session has ended its receiver is gone and what arrives is dropped;
                // the loop goes on until the session's last frames (its Close) are sent.
                Some(Ok(Message::Text(text))) => {
                    // The text's own buffer, not a copy.
                    let _ = conn.pipe.inbound.send(Inbound::Data(Bytes::from(text))).await;
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = conn.pipe.inbound.send(Inbound::Data(bytes)).await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    // RFC 6455 5.5.1: the client's Close is answered with a Close (tungstenite
                    // queued one echoing its code) before the TCP connection closes.
                    answer_close(&mut socket).await;
                    break;
                }
                Some(Err(error)) if over_limit(&error) => {
                    tracing::debug!(connection = %conn.id, "a WebSocket message over the size limit: refused");
                    reading = false;
                    close_code = CLOSE_TOO_BIG;
                    // The session answers with its Close message, then ends (below).
                    if conn.pipe.inbound.send(Inbound::TooLarge).await.is_err() {
                        break;
                    }
                }
                Some(Err(_)) | None => break,
            },
            frame = next_outbound(&mut held, &mut outbound) => match frame {
                Some(Outbound::Frame(bytes)) => {
                    // The first frame of a new connection is the handshake response: it goes
                    // alone, so a client that reads it as its own message is served too.
                    let frames = if first {
                        first = false;
                        vec![bytes]
                    } else {
                        coalesce(bytes, &mut outbound, &mut held)
                    };
                    let mut failed = false;
                    for message in messages(frames, binary()) {
                        // A client that does not read must not pin this task.
                        tokio::select! {
                            sent = socket.send(message) => if sent.is_err() { failed = true; break; },
                            _ = &mut kill => { failed = true; break; }
                        }
                    }
                    if failed {
                        break;
                    }
                }
                Some(Outbound::End) | None => {
                    ended = true;
                    let close = axum::extract::ws::CloseFrame { code: close_code, reason: "".into() };
                    let sent = tokio::select! {
                        sent = socket.send(Message::Close(Some(close))) => sent.is_ok(),
                        _ = &mut kill => false,
                    };
                    if sent && reading {
                        linger(&mut socket).await;
                    }
                    break;
                }
            },
            _ = &mut kill => {
                tracing::debug!(connection = %conn.id, "dropping the WebSocket");
                break;
            }
        }
    }
    drop(socket);
    *conn.socket_attached.lock() = false;
    drop(outbound);
    if !ended {
        let _ = conn.pipe.inbound.send(Inbound::Closed).await;
    }
}

/// How long a closing WebSocket waits for the client's close frame, or for its own answer to
/// the client's close frame to be written.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// After our close frame, reads and drops what the client still sends until its own close
/// frame (RFC 6455 7.1.1: the server closes the TCP connection after the handshake). Closing a
/// socket with unread data makes the kernel answer with a reset, and a reset can discard the
/// Close message still waiting in the client's receive buffer.
async fn linger(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// After the client's close frame: writes the answering close frame that tungstenite queued
/// when it read the client's (it goes out on the next read, which then reports the end).
async fn answer_close(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

/// The most bytes of queued frames sent together as one WebSocket message (a single larger
/// frame still goes alone, whole).
const COALESCE_LIMIT: usize = 64 * 1024;

/// The next item for the socket: the one held back by [`coalesce`] first, then the queue.
async fn next_outbound(
    held: &mut Option<Outbound>,
    outbound: &mut crate::queue::Receiver<Outbound>,
) -> Option<Outbound> {
    match held.take() {
        Some(item) => Some(item),
        None => outbound.recv().await,
    }
}

/// `first` and the frames queued right behind it, in order, while they add up to at most
/// [`COALESCE_LIMIT`] bytes; the first queued item that does not fit (a frame too large, or
/// the end) is left in `held` for the next turn.
///
/// ASP.NET Core's server does the same: its WebSocket transport
/// (`WebSocketsServerTransport.StartSending`, dotnet/aspnetcore
/// `src/SignalR/common/Http.Connections/src/Internal/Transports/WebSocketsServerTransport.cs`)
/// reads whatever the application pipe holds and sends that whole buffer as one WebSocket
/// message, so hub messages written while a send was in progress leave together. Each record
/// is self-delimiting (the JSON record separator, the MessagePack length prefix), so clients
/// split such a message as they split a batch.
fn coalesce(
    first: Bytes,
    outbound: &mut crate::queue::Receiver<Outbound>,
    held: &mut Option<Outbound>,
) -> Vec<Bytes> {
    let mut total = first.len();
    let mut frames = vec![first];
    while total < COALESCE_LIMIT {
        let Ok(item) = outbound.try_recv() else { break };
        match item {
            Outbound::Frame(bytes) if total + bytes.len() <= COALESCE_LIMIT => {
                total += bytes.len();
                frames.push(bytes);
            }
            other => {
                *held = Some(other);
                break;
            }
        }
    }
    frames
}

/// The WebSocket messages for frames taken together: one message of all of them (binary for
/// MessagePack, text for JSON). A text batch that is not UTF-8 (the JSON writers never produce
/// one) goes out as frames were sent before coalescing: one message each, text if it is UTF-8
/// and binary otherwise.
fn messages(frames: Vec<Bytes>, binary: bool) -> Vec<Message> {
    let joined = if frames.len() == 1 {
        frames[0].clone()
    } else {
        let mut joined = Vec::with_capacity(frames.iter().map(Bytes::len).sum());
        for frame in &frames {
            joined.extend_from_slice(frame);
        }
        Bytes::from(joined)
    };
    if binary {
        return vec![Message::Binary(joined)];
    }
    if let Ok(text) = Utf8Bytes::try_from(joined) {
        return vec![Message::Text(text)];
    }
    frames
        .into_iter()
        .map(|frame| match Utf8Bytes::try_from(frame.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(frame),
        })
        .collect()
}
