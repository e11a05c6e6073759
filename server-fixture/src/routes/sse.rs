//! The Server-Sent Events transport: one streaming response per connection, fed from the
//! session's outbound queue; the client's sends arrive as POSTs ([`super::send`]).

use super::helpers::dropped;
use super::App;
use crate::registry::{Conn, Inbound, Outbound};
use crate::session;
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Tells the session when the SSE response is dropped (the client went away).
struct SseGuard {
    conn: Arc<Conn>,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        let _ = self.conn.pipe.inbound.try_send(Inbound::Closed);
    }
}

pub(super) fn sse(shared: App, conn: Arc<Conn>) -> Response {
    {
        let mut attached = conn.socket_attached.lock();
        if *attached || conn.pipe.session_side.lock().is_none() {
            return StatusCode::CONFLICT.into_response();
        }
        *attached = true;
    }
    session::ensure_started(&shared, &conn);
    let outbound = conn.pipe.outbound.clone();
    let guard = SseGuard { conn: conn.clone() };
    let kill = conn.install_kill();
    let preamble =
        futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b":\r\n")) });
    let events = futures::stream::unfold(
        (outbound, guard, kill, false),
        |(outbound, guard, mut kill, done)| async move {
            if done {
                return None;
            }
            let next = {
                let mut rx = outbound.lock().await;
                tokio::select! {
                    biased;
                    _ = &mut kill => Err(()),
                    frame = rx.recv() => Ok(frame),
                }
            };
            match next {
                Ok(Some(Outbound::Frame(bytes))) => {
                    let mut event = Vec::with_capacity(bytes.len() + 16);
                    talkback_core::sse::format_event(&bytes, &mut event);
                    Some((Ok(Bytes::from(event)), (outbound, guard, kill, false)))
                }
                Ok(Some(Outbound::End) | None) => None,
                // Abort the response mid-stream: the client sees a broken connection.
                Err(()) => Some((Err(dropped()), (outbound, guard, kill, true))),
            }
        },
    );
    use futures::StreamExt;
    let body = Body::from_stream(preamble.chain(events));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache,no-store")
        .header(header::PRAGMA, "no-cache")
        .header(header::CONTENT_ENCODING, "identity")
        .header("X-Accel-Buffering", "no")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
