//! The long-polling transport: the first poll that starts the connection, polls that wait for
//! data (a newer poll supersedes an older one), and polls that break off after a drop fault.

use super::helpers::{dropped, text};
use super::App;
use crate::registry::{Conn, Outbound};
use crate::session;
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Frames one long-poll answer may batch.
const MAX_POLL_BATCH: usize = 1024 * 1024;

/// A 200 whose body breaks off: the client sees a network error.
fn aborted_response() -> Response {
    let body = futures::stream::once(async { Err::<Bytes, _>(dropped()) });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn no_cache(status: StatusCode, body: Bytes) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        .header(header::PRAGMA, "no-cache")
        .header(header::EXPIRES, "Thu, 01 Jan 1970 00:00:00 GMT")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(super) async fn long_poll(shared: App, conn: Arc<Conn>) -> Response {
    if conn.broken.load(Ordering::SeqCst) && conn.pipe.session_side.lock().is_none() {
        // After a drop fault: fail like the network did (see `Conn::broken`).
        if conn.is_closed() {
            return text(StatusCode::NOT_FOUND, "No Connection with that ID");
        }
        return aborted_response();
    }
    if conn.pipe.session_side.lock().is_some() {
        // The first poll starts the connection and returns at once, without data.
        session::ensure_started(&shared, &conn);
        *conn.poll_idle_since.lock() = Some(std::time::Instant::now());
        return no_cache(StatusCode::OK, Bytes::new());
    }
    let generation = conn.poll_generation.fetch_add(1, Ordering::SeqCst) + 1;
    conn.poll_cancel.notify_waiters();
    *conn.poll_idle_since.lock() = None;
    let response = poll_once(&shared, &conn, generation).await;
    if conn.poll_generation.load(Ordering::SeqCst) == generation {
        *conn.poll_idle_since.lock() = Some(std::time::Instant::now());
    }
    response
}

/// Shows a waiting long poll in [`crate::ConnectionInfo::long_poll_waiting`] while it lives.
struct PollWaiting<'a>(&'a Conn);

impl<'a> PollWaiting<'a> {
    fn start(conn: &'a Conn) -> Self {
        conn.poll_waiting.store(true, Ordering::SeqCst);
        conn.changed();
        PollWaiting(conn)
    }
}

impl Drop for PollWaiting<'_> {
    fn drop(&mut self) {
        self.0.poll_waiting.store(false, Ordering::SeqCst);
        self.0.changed();
    }
}

async fn poll_once(shared: &App, conn: &Arc<Conn>, generation: u64) -> Response {
    let superseded = || conn.poll_generation.load(Ordering::SeqCst) != generation;
    let outbound = conn.pipe.outbound.clone();
    let mut kill = conn.install_kill();
    if conn.kill_pending.swap(false, Ordering::SeqCst) {
        return aborted_response();
    }
    let mut rx = outbound.lock().await;
    if superseded() {
        return no_cache(StatusCode::NO_CONTENT, Bytes::new());
    }
    // Declared after `rx`, so it is dropped first: a newer poll only sees the flag once the
    // older one has cleared it.
    let _waiting = PollWaiting::start(conn);
    let deadline = tokio::time::Instant::now() + shared.config.long_poll_timeout;
    let first = loop {
        // Armed before the generation is read, so a newer poll's notify_waiters (which follows
        // its generation bump) cannot fall between the check and the wait.
        let cancel = conn.poll_cancel.notified();
        tokio::pin!(cancel);
        cancel.as_mut().enable();
        if superseded() {
            return no_cache(StatusCode::NO_CONTENT, Bytes::new());
        }
        tokio::select! {
            // A dropped transport ends the session too, which queues its end: the drop must
            // win, or the poll would answer 204 and the client would see a clean close.
            biased;
            _ = &mut kill => {
                if superseded() {
                    return no_cache(StatusCode::NO_CONTENT, Bytes::new());
                }
                return aborted_response();
            }
            frame = rx.recv() => break frame,
            _ = tokio::time::sleep_until(deadline) => return no_cache(StatusCode::OK, Bytes::new()),
            // Woken for a newer poll (checked at the top) or another reason: wait again.
            _ = &mut cancel => {}
        }
    };
    let mut body = Vec::new();
    match first {
        Some(Outbound::Frame(bytes)) => body.extend_from_slice(&bytes),
        Some(Outbound::End) | None => return no_cache(StatusCode::NO_CONTENT, Bytes::new()),
    }
    while body.len() < MAX_POLL_BATCH {
        match rx.try_recv() {
            Ok(Outbound::Frame(bytes)) => body.extend_from_slice(&bytes),
            Ok(Outbound::End) | Err(_) => break,
        }
    }
    no_cache(StatusCode::OK, Bytes::from(body))
}
