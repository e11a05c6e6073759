//! The data-plane REST API: v1 under `/api/v1/...` and 2022-06-01 under
//! `/api/...?api-version=2022-06-01`, plus `/api/openapi.json` (docs/protocol/azure.md,
//! "Data-plane REST API"; checklist items 99–106).
//!
//! Every call but health needs `Authorization: Bearer <token>` signed with an access key, its
//! `aud` the request URL (with or without the query string and the port). Bad input gets a 4xx
//! with a JSON `{"code", "message"}` body, never a 5xx: a header block over 16 KB gets 431, a
//! body over 1 MB gets 413, a bad name, `ttl` or payload gets 400, an unknown route 404 and a
//! known route with another method 405. Existence checks answer 200 or 404 with the service's
//! `x-ms-error-code`. Every send goes through the fixture's fan-out seam.

// Handlers answer early with a ready `Response` as the error of their helpers (axum's idiom);
// its size does not matter on this path.
#![allow(clippy::result_large_err)]

use super::{names, pieces, App, AzureState, MESSAGE_LIMIT};
use crate::fanout::{Audience, Outgoing};
use crate::registry::{Command, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The REST body limit (1 MB, per the service's documentation).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// The REST header limit (16 KB, per the service's documentation).
pub(crate) const MAX_HEADERS: usize = 16 * 1024;
/// The OpenAPI 3 document of the routes served here.
const OPENAPI: &str = include_str!("openapi.json");
/// The longest group `ttl` accepted, in seconds (the service keeps a user at most a year).
const MAX_TTL_SECS: u64 = 365 * 24 * 60 * 60;

/// The REST routes (no CORS: server-to-server); empty without Azure mode.
pub(crate) fn rest_routes(shared: &App) -> Router<App> {
    if shared.azure.is_none() {
        return super::none();
    }
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/{*path}", any(rest))
}

/// `GET /api/openapi.json`.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    V1,
    V2022,
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

/// An error answer: `{"code": .., "message": ..}`, and `x-ms-error-code` for the service's
/// named codes.
fn error(code: StatusCode, error_code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "code": error_code, "message": message.into() }).to_string();
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if error_code.contains('.') {
        if let Ok(value) = header::HeaderValue::from_str(error_code) {
            response.headers_mut().insert("x-ms-error-code", value);
        }
    }
    response
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn not_found_route() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "No REST API route matches this path.",
    )
}

/// Percent-decodes the path segments after `/api/`.
fn segments(path: &str) -> Result<Vec<String>, Response> {
    let rest = path.strip_prefix("/api/").unwrap_or("");
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad_request("A path segment is not valid UTF-8 once decoded."))
        })
        .collect()
}

/// Everything one REST call works with.
struct Call {
    shared: Arc<Shared>,
    azure: Arc<AzureState>,
    api: Api,
    /// The fixture-internal hub name.
    hub: String,
    query: Vec<(String, String)>,
}

impl Call {
    fn query_all(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn query(&self, key: &str) -> Option<&str> {
        self.query_all(key).into_iter().next_back()
    }

    fn connection_exists(&self, id: &str) -> bool {
        self.shared
            .by_id(id)
            .is_some_and(|c| c.hub.eq_ignore_ascii_case(&self.hub) && !c.is_closed())
    }

    fn user_connections(&self, user: &str) -> Vec<Arc<crate::registry::Conn>> {
        let mut conns = self.shared.all(Some(&self.hub));
        conns.retain(|c| c.user.as_deref() == Some(user));
        conns
    }

    fn reason(&self) -> Option<String> {
        self.query("reason")
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
    }

    /// Sends a Close (with the reason) to each connection, except the excluded ones.
    fn close(&self, conns: Vec<Arc<crate::registry::Conn>>) {
        let excluded = self.query_all("excluded");
        let reason = self.reason();
        for conn in conns {
            if excluded.contains(&conn.id.as_str()) {
                continue;
            }
            conn.push(Command::Close {
                error: reason.clone(),
                allow_reconnect: self.azure.config.close_allow_reconnect,
            });
        }
    }

    /// Sends the payload in `body` to `audience` (202), after counting it against the quota.
    fn send(&self, audience: Audience<'_>, recipients: usize, body: &[u8]) -> Response {
        let (target, arguments) = match payload(body) {
            Ok(payload) => payload,
            Err(response) => return response,
        };
        let count = pieces(body.len()).saturating_mul(recipients as u64);
        if count > 0 && !self.azure.count_messages(&self.shared, count) {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "Quota.Message",
                MESSAGE_LIMIT,
            );
        }
        let message = Outgoing::new(&target, &arguments);
        match self.shared.fan_out.send(&self.hub, audience, &message) {
            Ok(()) => status(StatusCode::ACCEPTED),
            Err(e) => bad_request(format!("The arguments cannot be sent: {e}")),
        }
    }

    /// `ttl` in seconds, if given: the membership's expiry.
    fn ttl(&self) -> Result<Option<Instant>, Response> {
        let Some(ttl) = self.query("ttl") else {
            return Ok(None);
        };
        match ttl.parse::<u64>() {
            Ok(secs) if secs <= MAX_TTL_SECS => {
                Ok(Instant::now().checked_add(Duration::from_secs(secs)))
            }
            _ => Err(bad_request(format!(
                "ttl must be a whole number of seconds from 0 to {MAX_TTL_SECS}."
            ))),
        }
    }
}

/// The `{target, arguments}` payload (keys in any ASCII case).
fn payload(body: &[u8]) -> Result<(String, Vec<Value>), Response> {
    if body.is_empty() {
        return Err(bad_request(
            "A JSON body {\"target\": .., \"arguments\": [..]} is required.",
        ));
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad_request(
            "The body must be a JSON object {\"target\": .., \"arguments\": [..]}.",
        ));
    };
    let field = |name: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let target = match field("target") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            return Err(bad_request(
                "The 'target' field must be a non-empty string.",
            ))
        }
    };
    let arguments = match field("arguments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(bad_request("The 'arguments' field must be an array.")),
    };
    Ok((target, arguments))
}

/// Reads a body up to [`MAX_BODY`]: 413 beyond, 408 when it stalls.
async fn read_body(body: Body, timeout: Duration) -> Result<Vec<u8>, Response> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(timeout, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => return Ok(buffer),
            Ok(Some(Err(_))) => return Err(bad_request("Failed to read the request body.")),
            Err(_) => {
                return Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "RequestTimeout",
                    "The request body was not received in time.",
                ))
            }
        };
        if buffer.len() + chunk.len() > MAX_BODY {
            let mut response = error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("The request body is larger than {MAX_BODY} bytes."),
            );
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return Err(response);
        }
        buffer.extend_from_slice(&chunk);
    }
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
}

/// Every `/api/...` request but `/api/negotiate` and `/api/openapi.json`.
async fn rest(State(shared): State<App>, request: axum::extract::Request) -> Response {
    let Some(azure) = shared.azure.clone() else {
        return not_found_route();
    };
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let segments = match segments(parts.uri.path()) {
        Ok(s) => s,
        Err(response) => return response,
    };
    let (api, rest) = match segments.first().map(String::as_str) {
        Some("v1") => (Api::V1, &segments[1..]),
        _ => (Api::V2022, &segments[..]),
    };
    if rest.len() == 1 && rest[0] == "health" {
        let version = query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
            .map(|(_, v)| v.as_str());
        if api == Api::V2022
            && version.is_some_and(|v| v != talkback_core::azure::API_VERSION_2022_06_01)
        {
            return bad_request(format!(
                "The api-version must be '{}'.",
                talkback_core::azure::API_VERSION_2022_06_01
            ));
        }
        return match method {
            Method::HEAD | Method::GET => status(StatusCode::OK),
            _ => method_not_allowed(&method, "GET, HEAD"),
        };
    }
    if rest.len() < 2 || rest[0] != "hubs" {
        return not_found_route();
    }
    let version = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.as_str());
    if api == Api::V2022 && version != Some(talkback_core::azure::API_VERSION_2022_06_01) {
        return bad_request(format!(
            "The api-version query parameter is required and must be '{}' (or use /api/v1/).",
            talkback_core::azure::API_VERSION_2022_06_01
        ));
    }
    let hub = &rest[1];
    if !names::valid_hub(hub) {
        return bad_request(
            "Invalid hub name: it must match ^[A-Za-z][A-Za-z0-9_`,.[\\]]{0,127}$.",
        );
    }
    let application = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("application"))
        .map(|(_, v)| v.as_str());
    if application.is_some_and(|a| !names::valid_hub(a)) {
        return bad_request(
            "Invalid application name: it must match ^[A-Za-z][A-Za-z0-9_`,.[\\]]{0,127}$.",
        );
    }
    let tail: Vec<&str> = rest[2..].iter().map(String::as_str).collect();
    for name in names_in(&tail) {
        if let Err(response) = name {
            return response;
        }
    }
    if header_bytes(&parts.headers) > MAX_HEADERS {
        let mut response = error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "RequestHeaderFieldsTooLarge",
            format!("The request headers are larger than {MAX_HEADERS} bytes."),
        );
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return response;
    }
    // Authentication: the request URL is the audience.
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let Some(token) = token else {
        return unauthorized("An Authorization: Bearer token is required.");
    };
    let mut expected = format!(
        "http://{}{}",
        super::client::host(&parts.headers),
        parts.uri.path()
    );
    if let Some(q) = parts.uri.query() {
        expected.push('?');
        expected.push_str(q);
    }
    if let Err(e) = azure
        .validator
        .validate(token, &expected, SystemTime::now())
    {
        tracing::debug!(error = %e, "REST token refused: 401");
        return unauthorized(&format!("The access token is not valid: {e}"));
    }
    let wire = talkback_core::azure::hub_path_name(hub, application);
    let call = Call {
        hub: azure.internal_name(&shared, &wire),
        shared: shared.clone(),
        azure,
        api,
        query,
    };
    let body = if method == Method::POST {
        match read_body(body, shared.config.request_body_timeout).await {
            Ok(body) => body,
            Err(response) => return response,
        }
    } else {
        Vec::new()
    };
    if let Some(response) = remote_connection_group(&call, &method, &tail).await {
        return response;
    }
    route(&call, &method, &tail, &body)
}

/// Adds or removes a connection that lives on another node of a Redis backplane to or from a
/// group: that node applies it and acknowledges, as ASP.NET Core's `AddToGroupAsync` across
/// servers; no acknowledgement within the backplane's ack timeout means no node holds the
/// connection (404). `None` for every other request (and for a local connection).
async fn remote_connection_group(call: &Call, method: &Method, tail: &[&str]) -> Option<Response> {
    let backplane = call.shared.backplane.as_ref()?;
    let (group, id) = match tail {
        ["groups", group, "connections", id] | ["connections", id, "groups", group] => {
            (*group, *id)
        }
        _ => return None,
    };
    let routed = allowed(tail, call.api)
        .is_some_and(|allow| allow.split(", ").any(|m| m == method.as_str()));
    if !routed || call.connection_exists(id) {
        return None;
    }
    let result = match method.as_str() {
        "PUT" => backplane.add_to_group(&call.hub, group, id).await,
        "DELETE" => backplane.remove_from_group(&call.hub, group, id).await,
        _ => return None,
    };
    Some(match result {
        Ok(()) => status(StatusCode::OK),
        Err(_) => connection_not_found(),
    })
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Validates the names in a route's tail (`users/{u}`, `groups/{g}`, `connections/{c}`).
fn names_in<'a>(tail: &'a [&'a str]) -> impl Iterator<Item = Result<(), Response>> + 'a {
    tail.windows(2).map(|pair| match pair {
        ["users", user] if !user.starts_with(':') && !names::valid_id(user) => Err(bad_request(
            "Invalid user id: 1 to 1024 bytes, not only whitespace.",
        )),
        ["connections", id] if !id.starts_with(':') && !names::valid_id(id) => Err(bad_request(
            "Invalid connection id: 1 to 1024 bytes, not only whitespace.",
        )),
        ["groups", group] if !group.starts_with(':') && !names::valid_group(group) => Err(
            bad_request("Invalid group name: 1 to 1024 characters, not only whitespace."),
        ),
        _ => Ok(()),
    })
}

/// The methods a route shape allows in an API version (`None`: no such route), for 405 and its
/// `Allow` header. v1 also takes the local emulator's extra spellings (`:send` suffixes,
/// `connections/{id}/groups/{group}`, `users/{user}/groups/{group}`); 2022-06-01 takes exactly
/// its own routes.
fn allowed(tail: &[&str], api: Api) -> Option<&'static str> {
    let v1 = api == Api::V1;
    Some(match tail {
        [] if v1 => "POST",
        [":send" | ":closeConnections"] => "POST",
        ["users" | "groups", _] if v1 => "POST, GET, HEAD",
        ["users" | "groups", _] => "GET, HEAD",
        ["users" | "groups", _, ":send" | ":closeConnections"] => "POST",
        ["users", _, "groups"] | ["connections", _, "groups"] => "DELETE",
        ["users", _, "groups", _] => "GET, HEAD, PUT, DELETE",
        ["groups", _, "users", _] if v1 => "GET, HEAD, PUT, DELETE",
        ["groups", _, "connections", _] => "PUT, DELETE",
        ["connections", _, "groups", _] if v1 => "PUT, DELETE",
        ["connections", _] if v1 => "POST, GET, HEAD, DELETE",
        ["connections", _] => "GET, HEAD, DELETE",
        ["connections", _, ":send"] => "POST",
        _ => return None,
    })
}

/// `405` with the `Allow` header (RFC 9110, section 15.5.6).
fn method_not_allowed(method: &Method, allow: &'static str) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not allowed on this route (allowed: {allow})."),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

fn route(call: &Call, method: &Method, tail: &[&str], body: &[u8]) -> Response {
    match allowed(tail, call.api) {
        None => return not_found_route(),
        Some(allow) if !allow.split(", ").any(|m| m == method.as_str()) => {
            return method_not_allowed(method, allow)
        }
        Some(_) => {}
    }
    let v1 = call.api == Api::V1;
    let hub = call.hub.as_str();
    let fan_out = &call.shared.fan_out;
    match (method.as_str(), tail) {
        // ---------------------------------------------------------------- sends
        ("POST", [] | [":send"]) => {
            let excluded = call.query_all("excluded");
            let recipients = call
                .shared
                .all(Some(hub))
                .iter()
                .filter(|c| !excluded.contains(&c.id.as_str()))
                .count();
            call.send(
                Audience::All {
                    excluded: &excluded,
                },
                recipients,
                body,
            )
        }
        ("POST", ["users", user] | ["users", user, ":send"]) => {
            let recipients = call.user_connections(user).len();
            call.send(Audience::User(user), recipients, body)
        }
        ("POST", ["connections", id] | ["connections", id, ":send"]) => {
            let recipients = usize::from(call.connection_exists(id));
            call.send(Audience::Connection(id), recipients, body)
        }
        ("POST", ["groups", group] | ["groups", group, ":send"]) => {
            let excluded = call.query_all("excluded");
            let recipients = fan_out
                .group_connections(hub, group)
                .iter()
                .filter(|id| !excluded.contains(&id.as_str()))
                .count();
            call.send(
                Audience::Group {
                    group,
                    excluded: &excluded,
                },
                recipients,
                body,
            )
        }
        // ---------------------------------------------------------------- closing
        ("POST", [":closeConnections"]) => {
            call.close(call.shared.all(Some(hub)));
            status(StatusCode::NO_CONTENT)
        }
        ("POST", ["users", user, ":closeConnections"]) => {
            call.close(call.user_connections(user));
            status(StatusCode::NO_CONTENT)
        }
        ("POST", ["groups", group, ":closeConnections"]) => {
            let conns = fan_out
                .group_connections(hub, group)
                .iter()
                .filter_map(|id| call.shared.by_id(id))
                .collect();
            call.close(conns);
            status(StatusCode::NO_CONTENT)
        }
        ("DELETE", ["connections", id]) => {
            if let Some(conn) = call.shared.by_id(id).filter(|_| call.connection_exists(id)) {
                call.close(vec![conn]);
            }
            status(if v1 {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            })
        }
        // ---------------------------------------------------------------- existence
        ("GET" | "HEAD", ["connections", id]) => exists(
            call.connection_exists(id),
            "Warning.Connection.NotExisted",
            "The connection does not exist.",
        ),
        ("GET" | "HEAD", ["users", user]) => exists(
            !call.user_connections(user).is_empty(),
            "Warning.User.NotExisted",
            "The user has no connection.",
        ),
        ("GET" | "HEAD", ["groups", group]) => exists(
            !fan_out.group_connections(hub, group).is_empty(),
            "Warning.Group.NotExisted",
            "The group has no connection.",
        ),
        ("GET" | "HEAD", ["groups", group, "users", user] | ["users", user, "groups", group]) => {
            exists(
                fan_out.user_in_group(hub, group, user),
                "Info.User.NotInGroup",
                "The user is not in the group.",
            )
        }
        // ---------------------------------------------------------------- connection groups
        ("PUT", ["groups", group, "connections", id] | ["connections", id, "groups", group]) => {
            if !call.connection_exists(id) {
                return connection_not_found();
            }
            fan_out.join(hub, group, id);
            status(StatusCode::OK)
        }
        ("DELETE", ["groups", group, "connections", id] | ["connections", id, "groups", group]) => {
            if !call.connection_exists(id) {
                return connection_not_found();
            }
            fan_out.leave(hub, group, id);
            status(StatusCode::OK)
        }
        ("DELETE", ["connections", id, "groups"]) => {
            fan_out.disconnected(hub, id);
            status(StatusCode::OK)
        }
        // ---------------------------------------------------------------- user groups
        ("PUT", ["groups", group, "users", user]) => match call.ttl() {
            Ok(expires) => {
                fan_out.join_user(hub, group, user, expires);
                status(StatusCode::ACCEPTED)
            }
            Err(response) => response,
        },
        ("PUT", ["users", user, "groups", group]) => match call.ttl() {
            Ok(expires) => {
                fan_out.join_user(hub, group, user, expires);
                status(if v1 {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::OK
                })
            }
            Err(response) => response,
        },
        ("DELETE", ["groups", group, "users", user]) => {
            fan_out.leave_user(hub, Some(group), user);
            status(StatusCode::ACCEPTED)
        }
        ("DELETE", ["users", user, "groups", group]) => {
            fan_out.leave_user(hub, Some(group), user);
            status(if v1 {
                StatusCode::ACCEPTED
            } else {
                StatusCode::NO_CONTENT
            })
        }
        ("DELETE", ["users", user, "groups"]) => {
            fan_out.leave_user(hub, None, user);
            status(if v1 {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            })
        }
        _ => not_found_route(),
    }
}

fn exists(found: bool, code: &str, message: &str) -> Response {
    if found {
        status(StatusCode::OK)
    } else {
        error(StatusCode::NOT_FOUND, code, message)
    }
}

fn connection_not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Error.Connection.NotExisted",
        "The connection does not exist.",
    )
}
