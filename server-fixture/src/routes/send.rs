//! `POST` sends (SSE and long polling) with their body limit and timeout, and the long-polling
//! `DELETE` that ends a connection.

use super::helpers::text;
use super::App;
use crate::registry::{Conn, Inbound};
use crate::session;
use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use talkback_core::transport::TransportKind;

pub(super) async fn send(
    shared: App,
    id: Option<String>,
    request: axum::extract::Request,
) -> Response {
    let Some(id) = id else {
        return text(StatusCode::BAD_REQUEST, "Connection ID required");
    };
    let Some(conn) = shared.by_token(&id) else {
        return text(StatusCode::NOT_FOUND, "No Connection with that ID");
    };
    if conn.transport.get() == Some(&TransportKind::WebSockets) {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST requests are not allowed for WebSocket connections.",
        );
    }
    let Some(busy) = PostBusy::claim(&conn) else {
        return StatusCode::CONFLICT.into_response();
    };
    let limit = post_limit(&shared.config);
    let body = read_body(
        request.into_body(),
        limit,
        shared.config.request_body_timeout,
    )
    .await;
    drop(busy);
    let body = match body {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body is larger than {limit} bytes."),
            )
        }
        Err(BodyError::Broken) => {
            return text(StatusCode::BAD_REQUEST, "Failed to read the request body.")
        }
        Err(BodyError::Stalled) => {
            tracing::debug!(connection = %conn.id, "a POST body stalled: 408");
            let mut response = text(
                StatusCode::REQUEST_TIMEOUT,
                "The request body was not received in time.",
            );
            // The rest of that body is not read: the HTTP connection cannot be reused.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    if conn.is_closed() || conn.pipe.inbound.send(Inbound::Data(body)).await.is_err() {
        return text(StatusCode::NOT_FOUND, "No Connection with that ID");
    }
    StatusCode::OK.into_response()
}

/// The largest POST body accepted: `max_post_body`, but never less than what one message of
/// the configured maximum size needs (with room for its framing).
pub(crate) fn post_limit(config: &crate::Config) -> usize {
    config
        .max_post_body
        .max(config.max_receive_message_size.saturating_add(16))
}

/// Marks a connection's POST in progress (a second one gets 409) until dropped, also when the
/// request is dropped mid-body (the client went away).
struct PostBusy<'a>(&'a Conn);

impl<'a> PostBusy<'a> {
    fn claim(conn: &'a Conn) -> Option<Self> {
        let mut busy = conn.post_busy.lock();
        if *busy {
            return None;
        }
        *busy = true;
        Some(PostBusy(conn))
    }
}

impl Drop for PostBusy<'_> {
    fn drop(&mut self) {
        *self.0.post_busy.lock() = false;
    }
}

enum BodyError {
    /// Over the limit; the rest of the body was read and dropped.
    TooLarge,
    /// The client broke off the body.
    Broken,
    /// No data for the request-body timeout.
    Stalled,
}

/// Reads a body up to `limit` bytes. A larger body is read to its end and dropped (so the
/// answer, `413`, reaches a client or proxy that is still sending, instead of a reset). A body
/// that sends nothing for `timeout` fails with [`BodyError::Stalled`].
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut too_large = false;
    loop {
        let chunk = match tokio::time::timeout(timeout, stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => return Err(BodyError::Stalled),
        };
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if too_large {
            continue;
        }
        if buffer.len() + chunk.len() > limit {
            too_large = true;
            buffer = Vec::new();
            continue;
        }
        buffer.extend_from_slice(&chunk);
    }
    if too_large {
        Err(BodyError::TooLarge)
    } else {
        Ok(Bytes::from(buffer))
    }
}

pub(super) fn delete(shared: App, id: Option<String>) -> Response {
    let Some(id) = id else {
        return text(StatusCode::BAD_REQUEST, "Connection ID required");
    };
    let Some(conn) = shared.by_token(&id) else {
        return text(StatusCode::NOT_FOUND, "No Connection with that ID");
    };
    if conn.transport.get() != Some(&TransportKind::LongPolling) {
        return text(
            StatusCode::BAD_REQUEST,
            "Cannot terminate this connection using the DELETE endpoint.",
        );
    }
    session::ensure_started(&shared, &conn);
    let _ = conn.pipe.inbound.try_send(Inbound::Closed);
    conn.poll_cancel.notify_waiters();
    StatusCode::ACCEPTED.into_response()
}
