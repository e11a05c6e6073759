//! `POST /hubs/{hub}/negotiate`: the negotiate versions, stateful reconnect, the transports
//! offered, and the expiry of a connection that never opens a transport.

use super::helpers::{access_token, query_value, text};
use super::App;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use talkback_core::negotiate::{AvailableTransport, NegotiateConnection, NegotiateResponse};
use talkback_core::protocol::TransferFormat;
use talkback_core::transport::TransportKind;

fn negotiate_error(text: String) -> Response {
    let body = NegotiateResponse::Error(text).to_json();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) async fn negotiate(
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
