//! The HTTP side: the router (hub routes with CORS, admin routes without, `/health` and
//! `/metrics`) and the dispatch of every `/hubs/{hub}` request to its transport, following
//! docs/protocol/transport.md for the server.
//!
//! - [`negotiate`]: `POST /hubs/{hub}/negotiate`.
//! - [`websocket`], [`sse`], [`long_polling`]: the three transports (GET).
//! - [`send`]: `POST` sends and the long-polling `DELETE`.
//! - [`admin`]: the fault endpoints under `/admin` and their guard.
//! - [`helpers`]: small answers and request readers the others share.

mod admin;
mod helpers;
mod long_polling;
mod negotiate;
mod send;
mod sse;
mod websocket;

pub(crate) use helpers::{access_token, text};
pub(crate) use negotiate::negotiate_for;

use crate::registry::{RequestInfo, Shared};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use talkback_core::transport::TransportKind;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

type App = Arc<Shared>;

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
        .route("/hubs/{hub}/negotiate", any(negotiate::negotiate))
        .route("/hubs/{hub}", any(connect))
        // A base URL ending in `/` (`/hubs/chat/` gives `/hubs/chat/negotiate`), as ASP.NET routes.
        .route("/hubs/{hub}/", any(connect))
        .merge(crate::azure::client_routes(&shared))
        .layer(cors);
    let mut app = hubs;
    if shared.config.admin_enabled {
        let admin = Router::new()
            .route("/admin/connections", get(admin::admin_connections))
            .route(
                "/admin/connections/{id}/{action}",
                post(admin::admin_connection),
            )
            .route("/admin/faults/{action}", post(admin::admin_faults))
            .route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                admin::admin_guard,
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
        Method::POST => return send::send(shared, id, request).await,
        Method::DELETE => return send::delete(shared, id),
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
        TransportKind::WebSockets => websocket::websocket(shared, conn, upgrade),
        TransportKind::ServerSentEvents => sse::sse(shared, conn),
        TransportKind::LongPolling => long_polling::long_poll(shared, conn).await,
    }
}
