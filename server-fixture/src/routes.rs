//! The HTTP side: negotiate, the three transports, POST sends, DELETE, CORS, the admin
//! (fault) endpoints, `/health` and `/metrics`, following docs/protocol/transport.md for the server.

use crate::registry::{Conn, Inbound, Outbound, RequestInfo, Shared};
use crate::session;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use talkback_core::negotiate::{AvailableTransport, NegotiateConnection, NegotiateResponse};
use talkback_core::protocol::{Protocol, TransferFormat};
use talkback_core::transport::TransportKind;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

type App = Arc<Shared>;

/// The WebSocket read buffer per socket (see [`websocket`]), allocated for every socket: also
/// the most one read takes from the socket (a larger frame is read in several).
const WS_READ_BUFFER: usize = 512;

/// Frames one long-poll answer may batch.
const MAX_POLL_BATCH: usize = 1024 * 1024;

/// The header every admin request carries (its value is the admin token when one is set).
pub(crate) const ADMIN_HEADER: &str = "x-talkback-admin";

/// The router of a fixture: the hub routes with CORS, the admin routes (if enabled) without.
///
/// **Why a page cannot use the admin routes**: they answer no CORS at all, so a page on
/// another origin cannot read their answers, and every admin request must carry the custom
/// `X-Talkback-Admin` header, which a page can only send after a CORS preflight, which these
/// routes fail. A form or a `no-cors` fetch cannot set it. The `Host` must be a loopback name or
/// the configured host, so a DNS-rebound page (same origin as far as the browser knows) is
/// refused too. With an admin token, the header must carry it.
pub(crate) fn router(shared: App) -> Router {
    let allowed: Vec<String> = shared
        .config
        .cors_origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
        .collect();
    let allow_origin = AllowOrigin::predicate(move |origin, _| {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        if allowed.is_empty() {
            // Any origin, but never the opaque `null` (sandboxed frames, `file:` pages) with
            // credentials unless it is listed.
            origin != "null"
        } else {
            allowed.contains(&origin)
        }
    });
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600));
    let hubs = Router::new()
        .route("/hubs/{hub}/negotiate", any(negotiate))
        .route("/hubs/{hub}", any(connect))
        // A base URL ending in `/` (`/hubs/chat/` gives `/hubs/chat/negotiate`), as ASP.NET routes.
        .route("/hubs/{hub}/", any(connect))
        .merge(crate::azure::client_routes(&shared))
        .layer(cors);
    let mut app = hubs;
    if shared.config.admin_enabled {
        let admin = Router::new()
            .route("/admin/connections", get(admin_connections))
            .route("/admin/connections/{id}/{action}", post(admin_connection))
            .route("/admin/faults/{action}", post(admin_faults))
            .route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                admin_guard,
            ));
        app = app.merge(admin);
    }
    // Read-only and answered without CORS: a page on another origin cannot read them.
    let observe = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    app.merge(observe)
        .merge(crate::demo::routes())
        .merge(crate::azure::rest_routes(&shared))
        .with_state(shared)
}

/// `GET /health`: `200 ok` while the fixture serves.
async fn health() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

/// `GET /metrics`: the counters in the Prometheus text format (see `metrics.rs`).
async fn metrics(State(shared): State<App>) -> Response {
    let mut body = shared.metrics.render();
    if let Some(backplane) = &shared.backplane {
        backplane.stats.render(&mut body);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Lets an admin request through only with the admin header (or token) and a local `Host`.
async fn admin_guard(
    State(shared): State<App>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let given = headers.get(ADMIN_HEADER).and_then(|v| v.to_str().ok());
    let authorized = match (&shared.config.admin_token, given) {
        (_, None) => false,
        (Some(token), Some(given)) => constant_time_eq(token.as_bytes(), given.as_bytes()),
        (None, Some(given)) => !given.is_empty(),
    };
    if !authorized {
        tracing::warn!(path = %request.uri().path(), "admin request without the X-Talkback-Admin header (or token): 403");
        return text(
            StatusCode::FORBIDDEN,
            "admin requests need the X-Talkback-Admin header (with the admin token, if one is set)",
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !local_host(host, &shared.config.host) {
        tracing::warn!(%host, "admin request for a foreign Host: 403");
        return text(
            StatusCode::FORBIDDEN,
            "admin requests must name a local Host",
        );
    }
    next.run(request).await
}

/// Whether a `Host` header names this machine (a loopback name or the configured host).
fn local_host(host: &str, configured: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "::1"
        || name.starts_with("127.")
        || name == configured.to_ascii_lowercase().trim_matches(['[', ']'])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn query_value<'a>(query: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// The access token: the `Authorization: Bearer` header wins over the `access_token` query.
pub(crate) fn access_token(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    bearer.or_else(|| query.get("access_token").cloned())
}

fn negotiate_error(text: String) -> Response {
    let body = NegotiateResponse::Error(text).to_json();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn negotiate(
    State(shared): State<App>,
    Path(hub): Path<String>,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(hub) = shared.static_hub(&hub) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let user = access_token(&headers, &query).and_then(|t| crate::user_from_token(&t));
    negotiate_for(&shared, &hub, user, &headers, &query)
}

/// Negotiate (a POST) for a connection of `hub` on behalf of `user` (also used by the Azure
/// service mode, which resolves the hub and authenticates the user itself).
pub(crate) fn negotiate_for(
    shared: &App,
    hub: &crate::hub::Hub,
    user: Option<String>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Response {
    if shared.faults.refusing_new() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "new connections are refused (fault)",
        );
    }
    if !shared.token_accepted(access_token(headers, query).as_deref()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let version = match query_value(query, "negotiateVersion") {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(v) => v,
            Err(_) => {
                return negotiate_error(
                    "The client requested a non-integer protocol version.".into(),
                )
            }
        },
    };
    if version < i64::from(shared.config.min_negotiate_version) {
        return negotiate_error(format!(
            "The client requested version '{version}', but the server does not support this version."
        ));
    }
    let version = version.clamp(0, 1) as u32;
    let asked_stateful =
        query_value(query, "useStatefulReconnect").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let stateful = asked_stateful && shared.config.allow_stateful_reconnect;
    let conn = shared.create(hub, user, stateful, version);
    let mut transports = Vec::new();
    for kind in [
        TransportKind::WebSockets,
        TransportKind::ServerSentEvents,
        TransportKind::LongPolling,
    ] {
        if !shared.config.transports.contains(kind) || shared.faults.negotiate_refuses(kind) {
            continue;
        }
        let formats = if kind == TransportKind::ServerSentEvents {
            vec![TransferFormat::Text]
        } else {
            vec![TransferFormat::Text, TransferFormat::Binary]
        };
        transports.push(AvailableTransport {
            transport: kind.name().into(),
            transfer_formats: formats,
        });
    }
    let body = NegotiateResponse::Connection(NegotiateConnection {
        connection_id: conn.id.clone(),
        connection_token: conn.token.clone(),
        negotiate_version: version,
        available_transports: transports,
        use_stateful_reconnect: stateful,
    })
    .to_json();
    // A negotiated connection that opens no transport within the handshake timeout is
    // forgotten (one queue entry meanwhile, no task).
    shared.expire_unless_connected(&conn);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Every request to `/hubs/{hub}` (GET: a transport; POST: a send; DELETE: end long polling).
async fn connect(
    State(shared): State<App>,
    Path(hub): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Response {
    let Some(hub) = shared.static_hub(&hub) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let user = access_token(request.headers(), &query).and_then(|t| crate::user_from_token(&t));
    connect_for(shared, &hub, user, query, request).await
}

/// A transport request (GET), a send (POST) or a long-polling DELETE for a connection of
/// `hub`; `user` owns a connection created here without negotiate (also used by the Azure
/// service mode, which resolves the hub and authenticates the user itself).
pub(crate) async fn connect_for(
    shared: App,
    hub: &crate::hub::Hub,
    user: Option<String>,
    query: HashMap<String, String>,
    request: axum::extract::Request,
) -> Response {
    let method = request.method().clone();
    let headers = request.headers().clone();
    let id = query.get("id").cloned();
    if !shared.token_accepted(access_token(&headers, &query).as_deref()) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match method {
        Method::GET => {}
        Method::POST => return send(shared, id, request).await,
        Method::DELETE => return delete(shared, id),
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
    let (mut parts, _body) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .ok();
    let kind = if upgrade.is_some() {
        TransportKind::WebSockets
    } else if headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
    {
        TransportKind::ServerSentEvents
    } else {
        TransportKind::LongPolling
    };
    if !shared.config.transports.contains(kind) || shared.faults.connect_refuses(kind) {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "{} transport not supported by this end point type",
                kind.name()
            ),
        );
    }
    let conn = match id {
        Some(id) => match shared.by_token(&id) {
            Some(conn) => conn,
            None => return text(StatusCode::NOT_FOUND, "No Connection with that ID"),
        },
        None if kind == TransportKind::WebSockets => {
            // skipNegotiation: a connection without negotiate.
            if shared.faults.refusing_new() {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "new connections are refused (fault)",
                );
            }
            shared.create(hub, user, false, 1)
        }
        None => return text(StatusCode::BAD_REQUEST, "Connection ID required"),
    };
    if conn.is_closed() && kind != TransportKind::LongPolling {
        return text(StatusCode::NOT_FOUND, "No Connection with that ID");
    }
    if *conn.transport.get_or_init(|| kind) != kind {
        return text(
            StatusCode::BAD_REQUEST,
            "Cannot change transports mid-connection",
        );
    }
    let _ = conn.request.set(RequestInfo {
        query: query.clone(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned()))
            })
            .collect(),
    });
    match kind {
        TransportKind::WebSockets => websocket(shared, conn, upgrade),
        TransportKind::ServerSentEvents => sse(shared, conn),
        TransportKind::LongPolling => long_poll(shared, conn).await,
    }
}

// ---------------------------------------------------------------------- WebSockets

fn websocket(shared: App, conn: Arc<Conn>, upgrade: Option<WebSocketUpgrade>) -> Response {
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
    // Frames a little over the hub limit still reach the session, which closes with the
    // reference error; far larger ones are cut off by the WebSocket layer.
    let max = shared.config.max_receive_message_size;
    upgrade
        .max_message_size(max.saturating_mul(4).saturating_add(1024))
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
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                // Once the session has ended its receiver is gone and what arrives is dropped;
                // the loop goes on until the session's last frames (its Close) are sent.
                Some(Ok(Message::Text(text))) => {
                    let bytes = Bytes::copy_from_slice(text.as_bytes());
                    let _ = conn.pipe.inbound.send(Inbound::Data(bytes)).await;
                }
                Some(Ok(Message::Binary(bytes))) => {
                    let _ = conn.pipe.inbound.send(Inbound::Data(bytes)).await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            frame = outbound.recv() => match frame {
                Some(Outbound::Frame(bytes)) => {
                    let message = if binary() {
                        Message::Binary(bytes)
                    } else {
                        match String::from_utf8(bytes.to_vec()) {
                            Ok(text) => Message::Text(text.into()),
                            Err(_) => Message::Binary(bytes),
                        }
                    };
                    // A client that does not read must not pin this task.
                    tokio::select! {
                        sent = socket.send(message) => if sent.is_err() { break; },
                        _ = &mut kill => break,
                    }
                }
                Some(Outbound::End) | None => {
                    ended = true;
                    let close = axum::extract::ws::CloseFrame { code: 1000, reason: "".into() };
                    if socket.send(Message::Close(Some(close))).await.is_ok() {
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

/// How long a closing WebSocket waits for the client's close frame.
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

// ---------------------------------------------------------------------- Server-Sent Events

/// Tells the session when the SSE response is dropped (the client went away).
struct SseGuard {
    conn: Arc<Conn>,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        let _ = self.conn.pipe.inbound.try_send(Inbound::Closed);
    }
}

fn sse(shared: App, conn: Arc<Conn>) -> Response {
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

fn dropped() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "transport dropped (fault)",
    )
}

// ---------------------------------------------------------------------- long polling

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

async fn long_poll(shared: App, conn: Arc<Conn>) -> Response {
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
            _ = conn.poll_cancel.notified() => {
                if superseded() {
                    return no_cache(StatusCode::NO_CONTENT, Bytes::new());
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if superseded() {
                    return no_cache(StatusCode::NO_CONTENT, Bytes::new());
                }
            }
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

// ---------------------------------------------------------------------- POST and DELETE

async fn send(shared: App, id: Option<String>, request: axum::extract::Request) -> Response {
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

fn delete(shared: App, id: Option<String>) -> Response {
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

// ---------------------------------------------------------------------- admin

/// `GET /admin/connections[?hub=name]`: the live connection ids.
async fn admin_connections(
    State(shared): State<App>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut ids: Vec<String> = shared
        .all(query.get("hub").map(String::as_str))
        .iter()
        .map(|c| c.id.clone())
        .collect();
    ids.sort();
    axum::Json(ids).into_response()
}

/// `POST /admin/connections/{id}/{drop|abort|stop-pings|resume-pings|drop-after?n=N|delay?ms=N}`.
async fn admin_connection(
    State(shared): State<App>,
    Path((id, action)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(conn) = shared.by_id(&id) else {
        return text(StatusCode::NOT_FOUND, "No Connection with that ID");
    };
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<u64>().ok());
    match action.as_str() {
        "drop" => conn.drop_transport(),
        "abort" => conn.abort(),
        "stop-pings" => conn.faults.stop_pings(true),
        "resume-pings" => conn.faults.stop_pings(false),
        "drop-after" => match number("n") {
            Some(n) => conn.faults.drop_after(n),
            None => return text(StatusCode::BAD_REQUEST, "drop-after needs ?n=N"),
        },
        "delay" => match number("ms") {
            Some(ms) => conn.faults.delay_messages(Duration::from_millis(ms)),
            None => return text(StatusCode::BAD_REQUEST, "delay needs ?ms=N"),
        },
        _ => return text(StatusCode::NOT_FOUND, format!("unknown action '{action}'")),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /admin/faults/{stop-pings|resume-pings|refuse-new?ms=N|refuse-transport?transport=T&at=negotiate|connect|allow-transport?transport=T|reset}`.
async fn admin_faults(
    State(shared): State<App>,
    Path(action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let transport = query
        .get("transport")
        .and_then(|t| TransportKind::from_name(t));
    match action.as_str() {
        "stop-pings" => shared.faults.stop_pings(true),
        "resume-pings" => shared.faults.stop_pings(false),
        "refuse-new" => {
            let ms = query
                .get("ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(60_000);
            shared
                .faults
                .refuse_new_connections(Duration::from_millis(ms));
        }
        "refuse-transport" | "allow-transport" => {
            let Some(kind) = transport else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "needs ?transport=WebSockets|ServerSentEvents|LongPolling",
                );
            };
            let refuse = action == "refuse-transport";
            match query.get("at").map(String::as_str) {
                Some("negotiate") => shared.faults.refuse_at_negotiate(kind, refuse),
                Some("connect") | None => shared.faults.refuse_at_connect(kind, refuse),
                Some(_) => return text(StatusCode::BAD_REQUEST, "at=negotiate|connect"),
            }
        }
        "reset" => shared.faults.reset(),
        _ => return text(StatusCode::NOT_FOUND, format!("unknown action '{action}'")),
    }
    StatusCode::NO_CONTENT.into_response()
}
