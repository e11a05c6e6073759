//! The admin (fault) endpoints under `/admin`, and the guard every admin request passes: the
//! `X-Talkback-Admin` header (or token) and a local `Host` (see [`super::router`]).

use super::helpers::text;
use super::App;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::time::Duration;
use talkback_core::transport::TransportKind;

/// The header every admin request carries (its value is the admin token when one is set).
const ADMIN_HEADER: &str = "x-talkback-admin";

/// Lets an admin request through only with the admin header (or token) and a local `Host`.
pub(super) async fn admin_guard(
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

/// `GET /admin/connections[?hub=name]`: the live connection ids.
pub(super) async fn admin_connections(
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
pub(super) async fn admin_connection(
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
pub(super) async fn admin_faults(
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
