//! The client side of the service: `/client/negotiate?hub=H`, `/client/?hub=H` (every
//! transport, POST sends and long-polling DELETE), and the app-server-style negotiate
//! `/api/negotiate?hub=H[&userId=U]` that redirects a client there with a token
//! (docs/protocol/azure.md, "How clients reach the service"; checklist items 95–98).

// Handlers answer early with a ready `Response` as the error of their helpers (axum's idiom).
#![allow(clippy::result_large_err)]

use super::{names, App, AzureState, CONNECTION_LIMIT, MESSAGE_LIMIT};
use crate::routes::{access_token, connect_for, negotiate_for, text};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use talkback_core::azure::{encode_query_value, generate_token, TokenError, TokenRequest};

/// The client routes (merged under the hub routes' CORS layer); empty without Azure mode.
pub(crate) fn client_routes(shared: &App) -> Router<App> {
    if shared.azure.is_none() {
        return super::none();
    }
    Router::new()
        .route("/client/negotiate", any(negotiate))
        .route("/client/", any(connect))
        .route("/client", any(connect))
        .route("/api/negotiate", any(app_negotiate))
}

fn azure(shared: &App) -> Option<Arc<AzureState>> {
    shared.azure.clone()
}

/// The `Host` the request named (what a token's `aud` is compared with), `localhost` if none.
pub(super) fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost")
}

/// The client URL of a wire hub name on the host the request reached.
fn client_url(headers: &HeaderMap, wire: &str) -> String {
    format!(
        "http://{}/client/?hub={}",
        host(headers),
        encode_query_value(wire)
    )
}

/// The `hub` query parameter as a wire name (lower-cased), or a 400.
fn wire_hub(query: &HashMap<String, String>) -> Result<String, Response> {
    let Some(hub) = query.get("hub") else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "The 'hub' query parameter is required.",
        ));
    };
    if !names::valid_hub(hub) {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "Invalid hub name: it must match ^[A-Za-z][A-Za-z0-9_`,.[\\]]{0,127}$.",
        ));
    }
    Ok(hub.to_ascii_lowercase())
}

/// Validates the client's token for the client URL of `wire`: its user id, or a 401.
fn authenticate(
    azure: &AzureState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    wire: &str,
) -> Result<Option<String>, Response> {
    let Some(token) = access_token(headers, query) else {
        return Err(unauthorized("An access token is required."));
    };
    let expected = client_url(headers, wire);
    match azure
        .validator
        .validate(&token, &expected, SystemTime::now())
    {
        Ok(valid) => Ok(valid.user_id),
        Err(e) => {
            tracing::debug!(error = %e, "client token refused: 401");
            Err(unauthorized(&format!("The access token is not valid: {e}")))
        }
    }
}

/// The checks every `/client/` request passes first, in the service's order: the Azure mode is
/// on (else 404), the method is one the route takes (405), the `hub` parameter names a hub
/// (400) and the token is valid for that hub's client URL (401). Gives the mode, the wire hub
/// name and the token's user.
fn admit(
    shared: &App,
    method_allowed: bool,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(Arc<AzureState>, String, Option<String>), Response> {
    let Some(azure) = azure(shared) else {
        return Err(StatusCode::NOT_FOUND.into_response());
    };
    if !method_allowed {
        return Err(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    let wire = wire_hub(query)?;
    let user = authenticate(&azure, headers, query, &wire)?;
    Ok((azure, wire, user))
}

fn unauthorized(message: &str) -> Response {
    let mut response = text(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// `POST /client/negotiate?hub=H`: the token checked, then the fixture's negotiate for the hub.
async fn negotiate(
    State(shared): State<App>,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (azure, wire, user) = match admit(&shared, method == Method::POST, &headers, &query) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let hub = match azure.client_hub(&shared, &wire) {
        Ok(hub) => hub,
        Err(error) => {
            let body = serde_json::json!({ "error": error }).to_string();
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
    };
    if azure.quota_spent() {
        return text(StatusCode::TOO_MANY_REQUESTS, MESSAGE_LIMIT);
    }
    if shared.all(None).len() >= azure.config.max_client_connections {
        tracing::info!(
            max = azure.config.max_client_connections,
            "connection cap reached: 429"
        );
        return text(StatusCode::TOO_MANY_REQUESTS, CONNECTION_LIMIT);
    }
    negotiate_for(&shared, &hub, user, &headers, &query)
}

/// `/client/?hub=H` (GET: a transport; POST: a send; DELETE: end long polling).
async fn connect(
    State(shared): State<App>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Response {
    let (azure, wire, user) = match admit(&shared, true, request.headers(), &query) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let hub = match azure.client_hub(&shared, &wire) {
        Ok(hub) => hub,
        Err(error) => return text(StatusCode::NOT_FOUND, error),
    };
    connect_for(shared, &hub, user, query, request).await
}

/// `POST|GET /api/negotiate?hub=H[&userId=U]`: what an app server's negotiate (or the
/// Functions `SignalRConnectionInfo` binding) answers, `{"url": <client URL>, "accessToken":
/// <token>}`. The user is `userId`, else the user of the request's own bearer token (read as
/// the fixture's `/hubs` routes read it, without a signature check: this stands in for the
/// app's authentication).
async fn app_negotiate(
    State(shared): State<App>,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(azure) = azure(&shared) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if method != Method::POST && method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(hub) = query.get("hub") else {
        return text(
            StatusCode::BAD_REQUEST,
            "The 'hub' query parameter is required.",
        );
    };
    if !names::valid_hub(hub) {
        return text(
            StatusCode::BAD_REQUEST,
            "Invalid hub name: it must match ^[A-Za-z][A-Za-z0-9_`,.[\\]]{0,127}$.",
        );
    }
    let wire = azure.wire_name(hub, None);
    if let Err(error) = azure.client_hub(&shared, &wire) {
        return text(StatusCode::NOT_FOUND, error);
    }
    let user = match query.get("userId") {
        Some(user) if !names::valid_id(user) => {
            return text(
                StatusCode::BAD_REQUEST,
                "Invalid userId: 1 to 1024 bytes, not only whitespace.",
            )
        }
        Some(user) => Some(user.clone()),
        None => access_token(&headers, &query).and_then(|t| crate::user_from_token(&t)),
    };
    let Some(key) = azure.primary_key() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "No access key configured.");
    };
    let url = client_url(&headers, &wire);
    let mut request = TokenRequest::new(url.clone());
    if let Some(user) = user {
        request = request.user_id(user);
    }
    match generate_token(key, &request, SystemTime::now()) {
        Ok(token) => {
            let body = serde_json::json!({ "url": url, "accessToken": token }).to_string();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e @ TokenError::TooLong { .. }) => text(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
