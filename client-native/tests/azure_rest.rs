//! `talkback::azure` against a small recording HTTP server in the test: every data-plane call of
//! both REST API versions hits its documented route (docs/protocol/azure.md, "Data-plane REST
//! API"; checklist items 99–106 from the client's side) with a bearer token the service's
//! validator accepts for the request URL, and 429/5xx answers are retried as `Retry-After` asks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use talkback::azure::{
    AccessKey, AzureError, ConnectionString, Message, RestApiVersion, RetryPolicy, ServiceClient,
    TokenValidator,
};

const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path as sent (percent-encoded).
    path: String,
    /// Raw query, if any.
    query: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

impl Seen {
    fn line(&self) -> String {
        match &self.query {
            Some(q) => format!("{} {}?{}", self.method, self.path, q),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

/// A scripted answer.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: String::new(),
    }
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

async fn record(State(rec): State<Recorder>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 2 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    rec.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body,
    });
    let next = rec.script.lock().unwrap().pop_front();
    let answer = next.unwrap_or_else(|| answer(if parts.method == "POST" { 202 } else { 200 }));
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    (
        StatusCode::from_u16(answer.status).unwrap(),
        headers,
        answer.body,
    )
        .into_response()
}

/// The recording server on a loopback port.
struct Service {
    port: u16,
    rec: Recorder,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Service {
    async fn start() -> Service {
        let rec = Recorder::default();
        let app = axum::Router::new().fallback(record).with_state(rec.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Service { port, rec, task }
    }

    fn connection_string(&self) -> String {
        format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={KEY};Version=1.0;",
            self.port
        )
    }

    fn client(&self, api: RestApiVersion) -> ServiceClient {
        ServiceClient::from_connection_string(&self.connection_string())
            .unwrap()
            .with_api_version(api)
            .with_retry_policy(RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_secs(5),
            })
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.rec.script.lock().unwrap().extend(answers);
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.rec.seen.lock().unwrap())
    }

    /// Checks the bearer token of `seen` the way the service does: signature with the key,
    /// `aud` against the URL the request reached (port and query tolerated), and that its
    /// `aud` is the request URL without the query, per the data-plane REST docs.
    fn assert_token_for(&self, seen: &Seen) {
        let token = seen
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_else(|| panic!("{}: no bearer token", seen.line()));
        let reached = format!(
            "http://127.0.0.1:{}{}{}",
            self.port,
            seen.path,
            seen.query
                .as_ref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        let validated = TokenValidator::new(vec![AccessKey::new(KEY)])
            .with_leeway(Duration::ZERO)
            .validate(token, &reached, SystemTime::now())
            .unwrap_or_else(|e| panic!("{}: {e}", seen.line()));
        assert_eq!(
            validated.audience,
            format!("http://127.0.0.1:{}{}", self.port, seen.path),
            "{}",
            seen.line()
        );
        // Strict port check too: the REST audience keeps the endpoint's port.
        TokenValidator::new(vec![AccessKey::new(KEY)])
            .with_port_check(true)
            .validate(token, &reached, SystemTime::now())
            .unwrap();
    }
}

fn msg() -> Message {
    Message::new(
        "newMessage",
        vec![serde_json::json!("hi"), serde_json::json!({"n": 1})],
    )
}

/// Every call of `client` once, in a fixed order (closing calls only for 2022-06-01).
async fn call_everything(client: &ServiceClient) {
    let v2022 = client.api_version() == RestApiVersion::V2022_06_01;
    client.health().await.unwrap();
    client
        .send_to_all("Chat", &msg(), &["c1", "c 2"])
        .await
        .unwrap();
    client.send_to_user("Chat", "alice", &msg()).await.unwrap();
    client
        .send_to_group("Chat", "room 1", &msg(), &["c3"])
        .await
        .unwrap();
    client
        .send_to_connection("Chat", "conn-1", &msg())
        .await
        .unwrap();
    assert!(client.connection_exists("Chat", "conn-1").await.unwrap());
    assert!(client.group_exists("Chat", "room 1").await.unwrap());
    assert!(client.user_exists("Chat", "alice").await.unwrap());
    assert!(client
        .user_in_group("Chat", "room 1", "alice")
        .await
        .unwrap());
    client
        .add_connection_to_group("Chat", "room 1", "conn-1")
        .await
        .unwrap();
    client
        .remove_connection_from_group("Chat", "room 1", "conn-1")
        .await
        .unwrap();
    client
        .add_user_to_group("Chat", "room 1", "alice", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    client
        .add_user_to_group("Chat", "room 1", "alice", None)
        .await
        .unwrap();
    client
        .remove_user_from_group("Chat", "room 1", "alice")
        .await
        .unwrap();
    client
        .remove_user_from_all_groups("Chat", "alice")
        .await
        .unwrap();
    client
        .close_connection("Chat", "conn-1", Some("bye now"))
        .await
        .unwrap();
    if v2022 {
        client
            .remove_connection_from_all_groups("Chat", "conn-1")
            .await
            .unwrap();
        client
            .close_all_connections("Chat", &["c1"], Some("maintenance"))
            .await
            .unwrap();
        client
            .close_group_connections("Chat", "room 1", &[], None)
            .await
            .unwrap();
        client
            .close_user_connections("Chat", "alice", &["c1", "c2"], Some("r"))
            .await
            .unwrap();
    }
}

/// Checklist items 100, 101, 105 and 106 (client side): the v1 routes.
#[tokio::test]
async fn every_v1_call_hits_its_documented_route_with_a_token_for_the_request_url() {
    let service = Service::start().await;
    call_everything(&service.client(RestApiVersion::V1)).await;
    let seen = service.take();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            "HEAD /api/v1/health",
            "POST /api/v1/hubs/chat?excluded=c1&excluded=c+2",
            "POST /api/v1/hubs/chat/users/alice",
            "POST /api/v1/hubs/chat/groups/room%201?excluded=c3",
            "POST /api/v1/hubs/chat/connections/conn-1",
            "HEAD /api/v1/hubs/chat/connections/conn-1",
            "HEAD /api/v1/hubs/chat/groups/room%201",
            "HEAD /api/v1/hubs/chat/users/alice",
            "HEAD /api/v1/hubs/chat/groups/room%201/users/alice",
            "PUT /api/v1/hubs/chat/groups/room%201/connections/conn-1",
            "DELETE /api/v1/hubs/chat/groups/room%201/connections/conn-1",
            "PUT /api/v1/hubs/chat/groups/room%201/users/alice?ttl=30",
            "PUT /api/v1/hubs/chat/groups/room%201/users/alice",
            "DELETE /api/v1/hubs/chat/groups/room%201/users/alice",
            "DELETE /api/v1/hubs/chat/users/alice/groups",
            "DELETE /api/v1/hubs/chat/connections/conn-1?reason=bye+now",
        ]
    );
    for s in &seen {
        service.assert_token_for(s);
    }
}

/// Checklist items 100, 101, 105 and 106 (client side): the 2022-06-01 routes, `:send` and
/// `:closeConnections` included, each with `api-version`.
#[tokio::test]
async fn every_2022_06_01_call_hits_its_documented_route_with_a_token_for_the_request_url() {
    let service = Service::start().await;
    call_everything(&service.client(RestApiVersion::V2022_06_01)).await;
    let seen = service.take();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    let v = "api-version=2022-06-01";
    assert_eq!(
        lines,
        [
            format!("HEAD /api/health?{v}"),
            format!("POST /api/hubs/chat/:send?{v}&excluded=c1&excluded=c+2"),
            format!("POST /api/hubs/chat/users/alice/:send?{v}"),
            format!("POST /api/hubs/chat/groups/room%201/:send?{v}&excluded=c3"),
            format!("POST /api/hubs/chat/connections/conn-1/:send?{v}"),
            format!("HEAD /api/hubs/chat/connections/conn-1?{v}"),
            format!("HEAD /api/hubs/chat/groups/room%201?{v}"),
            format!("HEAD /api/hubs/chat/users/alice?{v}"),
            format!("HEAD /api/hubs/chat/users/alice/groups/room%201?{v}"),
            format!("PUT /api/hubs/chat/groups/room%201/connections/conn-1?{v}"),
            format!("DELETE /api/hubs/chat/groups/room%201/connections/conn-1?{v}"),
            format!("PUT /api/hubs/chat/users/alice/groups/room%201?{v}&ttl=30"),
            format!("PUT /api/hubs/chat/users/alice/groups/room%201?{v}"),
            format!("DELETE /api/hubs/chat/users/alice/groups/room%201?{v}"),
            format!("DELETE /api/hubs/chat/users/alice/groups?{v}"),
            format!("DELETE /api/hubs/chat/connections/conn-1?{v}&reason=bye+now"),
            format!("DELETE /api/hubs/chat/connections/conn-1/groups?{v}"),
            format!("POST /api/hubs/chat/:closeConnections?{v}&excluded=c1&reason=maintenance"),
            format!("POST /api/hubs/chat/groups/room%201/:closeConnections?{v}"),
            format!("POST /api/hubs/chat/users/alice/:closeConnections?{v}&excluded=c1&excluded=c2&reason=r"),
        ]
    );
    for s in &seen {
        service.assert_token_for(s);
    }
}

/// Checklist item 101 (client side): send bodies are `{"target", "arguments"}` JSON.
#[tokio::test]
async fn send_bodies_are_json_invocations_with_target_and_arguments() {
    let service = Service::start().await;
    let client = service.client(RestApiVersion::V2022_06_01);
    client.send_to_user("chat", "bob", &msg()).await.unwrap();
    client.health().await.unwrap();
    let seen = service.take();
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"target": "newMessage", "arguments": ["hi", {"n": 1}]})
    );
    assert!(seen[1].body.is_empty());
    assert_eq!(seen[1].content_type, None);
}

/// An application name: `<app>_<hub>` in v1 paths, `application=` in 2022-06-01.
#[tokio::test]
async fn an_application_name_prefixes_v1_hubs_and_is_a_query_in_2022_06_01() {
    let service = Service::start().await;
    let v1 = service
        .client(RestApiVersion::V1)
        .with_application("Shop")
        .unwrap();
    v1.send_to_all("Chat", &msg(), &[]).await.unwrap();
    let v2 = service
        .client(RestApiVersion::V2022_06_01)
        .with_application("Shop")
        .unwrap();
    v2.send_to_all("Chat", &msg(), &[]).await.unwrap();
    let lines: Vec<String> = service.take().iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            "POST /api/v1/hubs/shop_chat",
            "POST /api/hubs/chat/:send?api-version=2022-06-01&application=Shop",
        ]
    );
    let info = v1.client_info("Chat", None).unwrap();
    assert_eq!(
        info.url,
        format!("http://127.0.0.1:{}/client/?hub=shop_chat", service.port)
    );
    assert!(service
        .client(RestApiVersion::V1)
        .with_application("1bad")
        .is_err());
}

/// Checklist item 102 (client side): existence checks map 200 and 404, anything else is an
/// error with the status.
#[tokio::test]
async fn existence_checks_read_200_as_true_and_404_as_false() {
    let service = Service::start().await;
    let client = service
        .client(RestApiVersion::V1)
        .with_retry_policy(RetryPolicy::none());
    service.script([answer(404), answer(200), answer(404), answer(400)]);
    assert!(!client.connection_exists("chat", "gone").await.unwrap());
    assert!(client.group_exists("chat", "g").await.unwrap());
    assert!(!client.user_in_group("chat", "g", "u").await.unwrap());
    let err = client.user_exists("chat", "u").await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    // A 404 where success is expected (adding a missing connection to a group) is an error.
    service.script([Answer {
        status: 404,
        headers: vec![("x-ms-error-code", "Error.Connection.NotExisted".into())],
        body: "connection not found".into(),
    }]);
    let err = client
        .add_connection_to_group("chat", "g", "nope")
        .await
        .unwrap_err();
    match &err {
        AzureError::Status {
            status,
            error_code,
            body,
            attempts,
            ..
        } => {
            assert_eq!(*status, 404);
            assert_eq!(error_code.as_deref(), Some("Error.Connection.NotExisted"));
            assert_eq!(body, "connection not found");
            assert_eq!(*attempts, 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("404"), "{err}");
    assert!(!err.is_caller_error());
}

/// 429 with `Retry-After: 1` is retried after at least a second, then succeeds.
#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_seconds() {
    let service = Service::start().await;
    let client = service.client(RestApiVersion::V2022_06_01);
    service.script([Answer {
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: "slow down".into(),
    }]);
    let started = Instant::now();
    client.send_to_all("chat", &msg(), &[]).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let seen = service.take();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].line(), seen[1].line());
    assert_eq!(seen[0].body, seen[1].body);
    for s in &seen {
        service.assert_token_for(s);
    }
}

/// 5xx answers are retried up to the policy's bound; the error then carries the status, the
/// error code, a bounded excerpt of the body and the number of attempts.
#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let service = Service::start().await;
    let client = service.client(RestApiVersion::V1);
    let big = "x".repeat(100_000);
    let fail = Answer {
        status: 503,
        headers: vec![
            ("retry-after-ms", "10".into()),
            ("x-ms-error-code", "Busy".into()),
        ],
        body: big,
    };
    service.script([fail.clone(), fail.clone(), fail.clone(), fail]);
    let err = client.group_exists("chat", "g").await.unwrap_err();
    match &err {
        AzureError::Status {
            status,
            attempts,
            body,
            error_code,
            ..
        } => {
            assert_eq!(*status, 503);
            assert_eq!(*attempts, 3);
            assert_eq!(error_code.as_deref(), Some("Busy"));
            assert!(
                body.chars().count() <= talkback::azure::BODY_EXCERPT + 1,
                "{}",
                body.len()
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().len() < 1000);
    assert_eq!(service.take().len(), 3);
    service.rec.script.lock().unwrap().clear();

    // 500 once, then success; an HTTP-date Retry-After in the past means "now".
    service.script([Answer {
        status: 500,
        headers: vec![("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".into())],
        body: String::new(),
    }]);
    client.health().await.unwrap();
    assert_eq!(service.take().len(), 2);
}

/// A `Retry-After` longer than the policy's `max_delay` is cut to it.
#[tokio::test]
async fn a_huge_retry_after_is_capped_by_the_policy() {
    let service = Service::start().await;
    let client = service
        .client(RestApiVersion::V1)
        .with_retry_policy(RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        });
    service.script([Answer {
        status: 429,
        headers: vec![("retry-after", "86400".into())],
        body: String::new(),
    }]);
    tokio::time::timeout(
        Duration::from_secs(20),
        client.send_to_user("chat", "u", &msg()),
    )
    .await
    .expect("the capped wait ends")
    .unwrap();
    assert_eq!(service.take().len(), 2);
}

/// 4xx answers other than 429 are the caller's problem and are not retried.
#[tokio::test]
async fn client_errors_are_not_retried() {
    let service = Service::start().await;
    let client = service.client(RestApiVersion::V2022_06_01);
    for status in [400, 401, 403, 404, 413] {
        service.script([answer(status)]);
        let err = client
            .send_to_group("chat", "g", &msg(), &[])
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(service.take().len(), 1, "{status}");
    }
}

/// A service that is not listening: the connect failure is retried, then reported.
#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cs = format!("Endpoint=http://127.0.0.1;Port={port};AccessKey={KEY}");
    let client = ServiceClient::from_connection_string(&cs)
        .unwrap()
        .with_retry_policy(RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        });
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, AzureError::Http { .. }), "{err:?}");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

/// Checklist item 103 (client side): names the service refuses, an empty target and a body
/// over 1 MB fail before any request; a v1 client refuses the 2022-only calls.
#[tokio::test]
async fn bad_input_fails_early_without_a_request() {
    let service = Service::start().await;
    let client = service.client(RestApiVersion::V2022_06_01);
    for hub in [
        "",
        "1chat",
        "chat room",
        "chat/../x",
        "ch\u{e4}t",
        "a;b",
        &"a".repeat(129),
    ] {
        let err = client.send_to_all(hub, &msg(), &[]).await.unwrap_err();
        assert!(
            matches!(err, AzureError::InvalidName { what: "hub", .. }),
            "{hub:?}: {err:?}"
        );
        assert!(err.is_caller_error());
    }
    for group in ["", "   ", "\t\n"] {
        let err = client.group_exists("chat", group).await.unwrap_err();
        assert!(
            matches!(err, AzureError::InvalidName { what: "group", .. }),
            "{group:?}"
        );
    }
    let err = client.send_to_user("chat", "", &msg()).await.unwrap_err();
    assert!(matches!(err, AzureError::InvalidName { what: "user", .. }));
    let err = client.send_to_all("chat", &msg(), &[""]).await.unwrap_err();
    assert!(matches!(
        err,
        AzureError::InvalidName {
            what: "connection id",
            ..
        }
    ));
    let err = client
        .send_to_all("chat", &Message::new("", vec![]), &[])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AzureError::InvalidName { what: "target", .. }
    ));
    let huge = Message::new("t", vec![serde_json::json!("x".repeat(1024 * 1024))]);
    let err = client.send_to_all("chat", &huge, &[]).await.unwrap_err();
    assert!(matches!(err, AzureError::BodyTooLarge { .. }), "{err:?}");
    let v1 = service.client(RestApiVersion::V1);
    let err = v1
        .close_all_connections("chat", &[], None)
        .await
        .unwrap_err();
    assert!(matches!(err, AzureError::Unsupported { .. }));
    assert!(v1
        .remove_connection_from_all_groups("chat", "c")
        .await
        .is_err());
    assert!(service.take().is_empty());
}

/// Names with injection characters and unicode stay single path segments or query values.
#[tokio::test]
async fn hostile_names_stay_inside_their_segment() {
    let service = Service::start().await;
    let client = service.client(RestApiVersion::V2022_06_01);
    client
        .send_to_user("chat", "../../admin?x=1#frag", &msg())
        .await
        .unwrap();
    client
        .add_user_to_group("chat", "grüppe/ 用户 %2F", "bob&excluded=x", None)
        .await
        .unwrap();
    client
        .send_to_all("chat", &msg(), &["a&b=c"])
        .await
        .unwrap();
    let seen = service.take();
    let lines: Vec<String> = seen.iter().map(Seen::line).collect();
    assert_eq!(
        lines,
        [
            "POST /api/hubs/chat/users/..%2F..%2Fadmin%3Fx%3D1%23frag/:send?api-version=2022-06-01",
            "PUT /api/hubs/chat/users/bob%26excluded%3Dx/groups/gr%C3%BCppe%2F%20%E7%94%A8%E6%88%B7%20%252F?api-version=2022-06-01",
            "POST /api/hubs/chat/:send?api-version=2022-06-01&excluded=a%26b%3Dc",
        ]
    );
    for s in &seen {
        service.assert_token_for(s);
    }
}

/// Checklist items 95–96 (client side): the negotiate answer an app server hands out.
#[tokio::test]
async fn client_info_is_the_client_url_with_a_token_the_service_accepts() {
    let service = Service::start().await;
    let client = service.client(RestApiVersion::V1);
    let info = client.client_info("Chat", Some("alice")).unwrap();
    assert_eq!(
        info.url,
        format!("http://127.0.0.1:{}/client/?hub=chat", service.port)
    );
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["url"], info.url.as_str());
    assert_eq!(json["accessToken"], info.access_token.as_str());
    assert!(!format!("{info:?}").contains(&info.access_token));
    let v = TokenValidator::new(vec![AccessKey::new(KEY)])
        .validate(&info.access_token, &info.url, SystemTime::now())
        .unwrap();
    assert_eq!(v.user_id.as_deref(), Some("alice"));
    assert_eq!(v.audience, "http://127.0.0.1/client/?hub=chat");
    let lifetime = v.expires_at - v.claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 3600);
    // Not valid for another hub.
    assert!(TokenValidator::new(vec![AccessKey::new(KEY)])
        .validate(
            &info.access_token,
            &info.url.replace("chat", "other"),
            SystemTime::now()
        )
        .is_err());
    // A connection string without a key cannot make one.
    let cs = ConnectionString::parse("Endpoint=https://x.service.signalr.net;AuthType=azure.msi")
        .unwrap();
    assert!(matches!(
        ServiceClient::new(cs),
        Err(AzureError::NoAccessKey(_))
    ));
}
