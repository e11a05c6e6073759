//! Small pieces the routes share: plain-text answers, query and token readers, the error of a
//! dropped transport.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

pub(super) fn query_value<'a>(query: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
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

pub(super) fn dropped() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "transport dropped (fault)",
    )
}
