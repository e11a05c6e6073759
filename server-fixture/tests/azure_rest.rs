//! The Azure data-plane REST API served by the fixture: every route's success and error codes,
//! v1 and 2022-06-01, authentication and key rotation, groups with `ttl`, closing
//! connections, limits, and the OpenAPI document driving a generated sweep (checklist items
//! 99–106, 111), over real sockets.

#[path = "kit/azure.rs"]
mod azure_kit;
mod kit;

use azure_kit::*;
use kit::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use talkback_core::azure::AccessKey;
use talkback_core::protocol::{Close, HubMessage};
use talkback_fixture::{AzureConfig, Server, ServiceMode};

/// A serverless fixture (its hubs send nothing on their own) with [`KEY`].
async fn service() -> Server {
    azure_fixture(settings(ServiceMode::Serverless)).await
}

/// The next message of a peer as `(target, arguments)`; it must be an Invocation without id.
async fn received(peer: &mut Peer) -> (String, Vec<Value>) {
    match within(peer.next()).await {
        Some(HubMessage::Invocation(invocation)) => {
            assert_eq!(
                invocation.invocation_id, None,
                "REST sends are non-blocking"
            );
            let arguments = invocation
                .arguments
                .iter()
                .map(|a| a.decode::<Value>().unwrap())
                .collect();
            (invocation.target, arguments)
        }
        other => panic!("expected an Invocation, got {other:?}"),
    }
}

/// Sends a marker to one connection and checks it is the next thing that connection gets
/// (so nothing else reached it before).
async fn nothing_else_before_marker(server: &Server, peer: &mut Peer, id: &str, hub: &str) {
    let path = format!("/api/v1/hubs/{hub}/connections/{id}");
    let (status, _, _) = rest(server, Method::POST, &path, payload("Marker", json!([]))).await;
    assert_eq!(status, 202);
    assert_eq!(received(peer).await.0, "Marker");
}

#[tokio::test]
async fn item_106_health_answers_200_on_both_apis_without_a_token() {
    let server = service().await;
    for path in [
        "/api/v1/health",
        "/api/health",
        "/api/health?api-version=2022-06-01",
    ] {
        for method in [Method::HEAD, Method::GET] {
            let response = within(
                http()
                    .request(method.clone(), format!("{}{path}", server.url()))
                    .send(),
            )
            .await
            .unwrap();
            assert_eq!(response.status(), 200, "{method} {path}");
        }
    }
    let post = within(
        http()
            .post(format!("{}/api/v1/health", server.url()))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(post.status(), 405);
    server.shutdown().await;
}

#[tokio::test]
async fn item_99_rest_tokens_need_the_key_and_the_request_url_as_audience_with_or_without_query_and_port(
) {
    let server = service().await;
    let port = server.addr().port();
    let path = "/api/hubs/feed/:send?api-version=2022-06-01";
    let url = format!("{}{path}", server.url());
    let body = payload("X", json!([]));
    for (label, aud, expected) in [
        (
            "no query, no port",
            "http://127.0.0.1/api/hubs/feed/:send".to_owned(),
            202,
        ),
        (
            "no query, port",
            format!("http://127.0.0.1:{port}/api/hubs/feed/:send"),
            202,
        ),
        (
            "api-version query (the .NET SDK's form)",
            "http://127.0.0.1/api/hubs/feed/:send?api-version=2022-06-01".to_owned(),
            202,
        ),
        (
            "another hub",
            "http://127.0.0.1/api/hubs/other/:send".to_owned(),
            401,
        ),
        (
            "another route",
            "http://127.0.0.1/api/hubs/feed".to_owned(),
            401,
        ),
        (
            "another host",
            "http://example.com/api/hubs/feed/:send".to_owned(),
            401,
        ),
        (
            "a query the request lacks",
            "http://127.0.0.1/api/hubs/feed/:send?application=x".to_owned(),
            401,
        ),
    ] {
        let token = token_with(KEY, &aud, None);
        let (status, _, _) = rest_with_token(Method::POST, &url, &token, body.clone()).await;
        assert_eq!(status, expected, "{label}");
    }
    let aud = "http://127.0.0.1/api/hubs/feed/:send";
    for (label, token) in [
        ("wrong key", token_with("not-the-key", aud, None)),
        ("expired", expired_token(aud)),
        ("garbage", "abc.def.ghi".to_owned()),
        ("5000 characters", "a".repeat(5000)),
    ] {
        let (status, headers, body) =
            rest_with_token(Method::POST, &url, &token, payload("X", json!([]))).await;
        assert_eq!(status, 401, "{label}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(body["message"].is_string(), "{label}: a message");
    }
    let no_token = within(http().post(&url).body("{}").send()).await.unwrap();
    assert_eq!(no_token.status(), 401);
    server.shutdown().await;
}

#[tokio::test]
async fn key_rotation_accepts_tokens_of_either_key_on_rest_and_on_client_negotiate() {
    let azure = AzureConfig {
        access_keys: vec![AccessKey::new(KEY), AccessKey::new(SECONDARY)],
        ..settings(ServiceMode::Serverless)
    };
    let rotating = azure_fixture(azure).await;
    let single = service().await;
    for (server, secondary_ok) in [(&rotating, true), (&single, false)] {
        let url = format!("{}/api/v1/hubs/feed", server.url());
        for (key, ok) in [(KEY, true), (SECONDARY, secondary_ok)] {
            let token = token_with(key, "http://127.0.0.1/api/v1/hubs/feed", None);
            let (status, _, _) =
                rest_with_token(Method::POST, &url, &token, payload("X", json!([]))).await;
            assert_eq!(status, if ok { 202 } else { 401 }, "REST, {key}");
            let client = token_with(key, "http://127.0.0.1/client/?hub=feed", None);
            let (status, _) = service_negotiate(server, "feed", Some(&client)).await;
            assert_eq!(status, if ok { 200 } else { 401 }, "negotiate, {key}");
        }
    }
    rotating.shutdown().await;
    single.shutdown().await;
}

#[tokio::test]
async fn item_101_broadcast_honours_repeated_excluded_values_on_both_apis() {
    let server = service().await;
    let (mut a, a_id) = service_peer(&server, "feed", None, Protocol::Json).await;
    let (mut b, b_id) = service_peer(&server, "feed", None, Protocol::MessagePack).await;
    let (mut c, c_id) = service_peer(&server, "feed", None, Protocol::Json).await;
    let (mut other, other_id) = service_peer(&server, "elsewhere", None, Protocol::Json).await;
    let v1 = format!("/api/v1/hubs/feed?excluded={a_id}&excluded={b_id}");
    let (status, _, _) = rest(
        &server,
        Method::POST,
        &v1,
        payload("News", json!(["v1", 1])),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        received(&mut c).await,
        ("News".into(), vec![json!("v1"), json!(1)])
    );
    let v2 = format!("/api/hubs/FEED/:send?api-version=2022-06-01&excluded={c_id}");
    let body = json!({ "Target": "News", "Arguments": [{"k": [true, null]}] });
    let (status, _, _) = rest(&server, Method::POST, &v2, Some(body)).await;
    assert_eq!(
        status, 202,
        "PascalCase keys as in the v1 swagger, hub name in any case"
    );
    let expected = ("News".to_owned(), vec![json!({"k": [true, null]})]);
    assert_eq!(received(&mut a).await, expected);
    assert_eq!(
        received(&mut b).await,
        expected,
        "MessagePack receivers too"
    );
    nothing_else_before_marker(&server, &mut c, &c_id, "feed").await;
    nothing_else_before_marker(&server, &mut other, &other_id, "elsewhere").await;
    server.shutdown().await;
}

#[tokio::test]
async fn item_101_sends_to_a_user_a_connection_and_a_group_reach_only_them() {
    let server = service().await;
    let (mut ann1, ann1_id) = service_peer(&server, "feed", Some("ann"), Protocol::Json).await;
    let (mut ann2, _) = service_peer(&server, "feed", Some("ann"), Protocol::MessagePack).await;
    let (mut bob, bob_id) = service_peer(&server, "feed", Some("bob"), Protocol::Json).await;
    for path in [
        "/api/v1/hubs/feed/users/ann",
        "/api/hubs/feed/users/ann/:send?api-version=2022-06-01",
    ] {
        let (status, _, _) =
            rest(&server, Method::POST, path, payload("ToAnn", json!([path]))).await;
        assert_eq!(status, 202, "{path}");
        assert_eq!(received(&mut ann1).await.1, vec![json!(path)]);
        assert_eq!(received(&mut ann2).await.1, vec![json!(path)]);
    }
    for path in [
        format!("/api/v1/hubs/feed/connections/{ann1_id}"),
        format!("/api/hubs/feed/connections/{ann1_id}/:send?api-version=2022-06-01"),
    ] {
        let (status, _, _) = rest(&server, Method::POST, &path, payload("ToConn", json!([]))).await;
        assert_eq!(status, 202, "{path}");
        assert_eq!(received(&mut ann1).await.0, "ToConn");
    }
    let join = format!("/api/v1/hubs/feed/groups/room%201/connections/{bob_id}");
    assert_eq!(rest(&server, Method::PUT, &join, None).await.0, 200);
    for path in [
        "/api/v1/hubs/feed/groups/room%201",
        "/api/hubs/feed/groups/room%201/:send?api-version=2022-06-01",
    ] {
        let (status, _, _) = rest(&server, Method::POST, path, payload("ToRoom", json!([]))).await;
        assert_eq!(status, 202, "{path}");
        assert_eq!(received(&mut bob).await.0, "ToRoom");
    }
    // Unknown users, connections and groups are still 202 (nothing is sent).
    for path in [
        "/api/v1/hubs/feed/users/nobody",
        "/api/v1/hubs/feed/connections/nothere",
        "/api/v1/hubs/feed/groups/empty",
    ] {
        let (status, _, _) = rest(&server, Method::POST, path, payload("Lost", json!([]))).await;
        assert_eq!(status, 202, "{path}");
    }
    nothing_else_before_marker(&server, &mut bob, &bob_id, "feed").await;
    nothing_else_before_marker(&server, &mut ann1, &ann1_id, "feed").await;
    server.shutdown().await;
}

#[tokio::test]
async fn item_102_existence_checks_answer_200_or_404_with_the_service_error_code() {
    let server = service().await;
    let (_ann, ann_id) = service_peer(&server, "feed", Some("ann"), Protocol::Json).await;
    let join = format!("/api/v1/hubs/feed/groups/g/connections/{ann_id}");
    assert_eq!(rest(&server, Method::PUT, &join, None).await.0, 200);
    let v2 = "?api-version=2022-06-01";
    for (path, found) in [
        (format!("/api/v1/hubs/feed/connections/{ann_id}"), true),
        ("/api/v1/hubs/feed/connections/nothere".into(), false),
        (format!("/api/v1/hubs/other/connections/{ann_id}"), false),
        (format!("/api/hubs/feed/connections/{ann_id}{v2}"), true),
        ("/api/v1/hubs/feed/users/ann".into(), true),
        ("/api/v1/hubs/feed/users/bob".into(), false),
        (format!("/api/hubs/feed/users/ann{v2}"), true),
        ("/api/v1/hubs/feed/groups/g".into(), true),
        ("/api/v1/hubs/feed/groups/h".into(), false),
        (format!("/api/hubs/feed/groups/g{v2}"), true),
        ("/api/v1/hubs/feed/groups/g/users/ann".into(), true),
        ("/api/v1/hubs/feed/groups/g/users/bob".into(), false),
        (format!("/api/hubs/feed/users/ann/groups/g{v2}"), true),
        (format!("/api/hubs/feed/users/ann/groups/h{v2}"), false),
    ] {
        for method in [Method::HEAD, Method::GET] {
            let (status, headers, _) = rest(&server, method.clone(), &path, None).await;
            assert_eq!(status, if found { 200 } else { 404 }, "{method} {path}");
            if !found {
                let code = headers["x-ms-error-code"].to_str().unwrap();
                assert!(
                    code.starts_with("Warning.") || code.starts_with("Info."),
                    "{path}: {code}"
                );
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_102_connection_group_changes_take_effect_at_once_and_unknown_connections_get_404() {
    let server = service().await;
    let (mut ann, ann_id) = service_peer(&server, "feed", None, Protocol::Json).await;
    let v2 = "?api-version=2022-06-01";
    let send = "/api/v1/hubs/feed/groups/g";
    // Both spellings of adding a connection (v1 and the emulator's alternative).
    for join in [
        format!("/api/v1/hubs/feed/groups/g/connections/{ann_id}"),
        format!("/api/v1/hubs/feed/connections/{ann_id}/groups/g"),
        format!("/api/hubs/feed/groups/g/connections/{ann_id}{v2}"),
    ] {
        assert_eq!(
            rest(&server, Method::PUT, &join, None).await.0,
            200,
            "{join}"
        );
    }
    rest(&server, Method::POST, send, payload("In", json!([]))).await;
    assert_eq!(received(&mut ann).await.0, "In");
    let leave = format!("/api/v1/hubs/feed/groups/g/connections/{ann_id}");
    assert_eq!(rest(&server, Method::DELETE, &leave, None).await.0, 200);
    rest(&server, Method::POST, send, payload("Out", json!([]))).await;
    nothing_else_before_marker(&server, &mut ann, &ann_id, "feed").await;
    // Leaving every group at once (2022-06-01).
    for group in ["a", "b"] {
        let join = format!("/api/v1/hubs/feed/groups/{group}/connections/{ann_id}");
        assert_eq!(rest(&server, Method::PUT, &join, None).await.0, 200);
    }
    let all = format!("/api/hubs/feed/connections/{ann_id}/groups{v2}");
    assert_eq!(rest(&server, Method::DELETE, &all, None).await.0, 200);
    for group in ["a", "b"] {
        let check = format!("/api/v1/hubs/feed/groups/{group}");
        assert_eq!(rest(&server, Method::HEAD, &check, None).await.0, 404);
    }
    for (method, path) in [
        (
            Method::PUT,
            "/api/v1/hubs/feed/groups/g/connections/nothere".to_owned(),
        ),
        (
            Method::DELETE,
            "/api/v1/hubs/feed/groups/g/connections/nothere".to_owned(),
        ),
        (
            Method::PUT,
            format!("/api/hubs/feed/groups/g/connections/nothere{v2}"),
        ),
        (
            Method::PUT,
            format!("/api/v1/hubs/other/groups/g/connections/{ann_id}"),
        ),
    ] {
        let (status, headers, _) = rest(&server, method.clone(), &path, None).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(headers["x-ms-error-code"], "Error.Connection.NotExisted");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_102_users_join_groups_for_present_and_future_connections_and_leave_them() {
    let server = service().await;
    let v2 = "?api-version=2022-06-01";
    assert_eq!(
        rest(
            &server,
            Method::PUT,
            "/api/v1/hubs/feed/groups/g/users/ann",
            None
        )
        .await
        .0,
        202
    );
    // A connection of ann that comes later is in the group too.
    let (mut ann, ann_id) = service_peer(&server, "feed", Some("ann"), Protocol::Json).await;
    rest(
        &server,
        Method::POST,
        "/api/v1/hubs/feed/groups/g",
        payload("G", json!([])),
    )
    .await;
    assert_eq!(received(&mut ann).await.0, "G");
    assert_eq!(
        rest(
            &server,
            Method::DELETE,
            "/api/v1/hubs/feed/groups/g/users/ann",
            None
        )
        .await
        .0,
        202
    );
    rest(
        &server,
        Method::POST,
        "/api/v1/hubs/feed/groups/g",
        payload("Gone", json!([])),
    )
    .await;
    nothing_else_before_marker(&server, &mut ann, &ann_id, "feed").await;
    // The 2022-06-01 spelling.
    let put = format!("/api/hubs/feed/users/ann/groups/h{v2}");
    assert_eq!(rest(&server, Method::PUT, &put, None).await.0, 200);
    assert_eq!(rest(&server, Method::HEAD, &put, None).await.0, 200);
    assert_eq!(rest(&server, Method::DELETE, &put, None).await.0, 204);
    assert_eq!(rest(&server, Method::HEAD, &put, None).await.0, 404);
    // Leaving every group: v1 answers 200, 2022-06-01 204.
    for group in ["x", "y"] {
        let path = format!("/api/v1/hubs/feed/groups/{group}/users/ann");
        assert_eq!(rest(&server, Method::PUT, &path, None).await.0, 202);
    }
    let v1_all = "/api/v1/hubs/feed/users/ann/groups";
    assert_eq!(rest(&server, Method::DELETE, v1_all, None).await.0, 200);
    let v2_all = format!("/api/hubs/feed/users/ann/groups{v2}");
    assert_eq!(rest(&server, Method::DELETE, &v2_all, None).await.0, 204);
    for group in ["x", "y"] {
        let path = format!("/api/v1/hubs/feed/groups/{group}/users/ann");
        assert_eq!(rest(&server, Method::HEAD, &path, None).await.0, 404);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_105_a_user_group_ttl_expires_the_membership() {
    let server = service().await;
    let (mut ann, ann_id) = service_peer(&server, "feed", Some("ann"), Protocol::Json).await;
    let put = "/api/hubs/feed/users/ann/groups/short?api-version=2022-06-01&ttl=1";
    let check = "/api/v1/hubs/feed/groups/short/users/ann";
    let forever = "/api/v1/hubs/feed/groups/long/users/ann";
    let started = std::time::Instant::now();
    assert_eq!(rest(&server, Method::PUT, put, None).await.0, 200);
    assert_eq!(rest(&server, Method::PUT, forever, None).await.0, 202);
    assert_eq!(rest(&server, Method::HEAD, check, None).await.0, 200);
    rest(
        &server,
        Method::POST,
        "/api/v1/hubs/feed/groups/short",
        payload("Early", json!([])),
    )
    .await;
    assert_eq!(received(&mut ann).await.0, "Early");
    // The ttl is the behaviour under test, so time must pass: the membership is checked until
    // it is gone (at most 5 s).
    loop {
        let status = rest(&server, Method::HEAD, check, None).await.0;
        if status == 404 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still a member");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the ttl"
    );
    rest(
        &server,
        Method::POST,
        "/api/v1/hubs/feed/groups/short",
        payload("Late", json!([])),
    )
    .await;
    nothing_else_before_marker(&server, &mut ann, &ann_id, "feed").await;
    assert_eq!(rest(&server, Method::HEAD, forever, None).await.0, 200);
    for bad in ["-1", "1.5", "abc", "31536001", ""] {
        let path = format!("/api/v1/hubs/feed/groups/g/users/ann?ttl={bad}");
        let (status, _, body) = rest(&server, Method::PUT, &path, None).await;
        assert_eq!(status, 400, "ttl={bad}");
        assert!(body["message"].as_str().unwrap().contains("ttl"));
    }
    server.shutdown().await;
}

/// Reads until a Close arrives; returns it.
async fn close_of(peer: &mut Peer) -> Close {
    loop {
        match within(peer.next()).await {
            Some(HubMessage::Close(close)) => return close,
            Some(_) => {}
            None => panic!("the socket ended without a Close"),
        }
    }
}

#[tokio::test]
async fn item_104_closing_a_connection_sends_close_with_the_reason_then_ends_it() {
    let server = service().await;
    let (mut ann, ann_id) = service_peer(&server, "feed", None, Protocol::Json).await;
    let (mut bob, bob_id) = service_peer(&server, "feed", None, Protocol::MessagePack).await;
    let path = format!("/api/v1/hubs/feed/connections/{ann_id}?reason=maintenance%20now");
    assert_eq!(rest(&server, Method::DELETE, &path, None).await.0, 202);
    let close = close_of(&mut ann).await;
    assert_eq!(close.error.as_deref(), Some("maintenance now"));
    assert!(close.allow_reconnect);
    assert!(
        within(ann.next()).await.is_none(),
        "then the transport ends"
    );
    within(server.wait_for_connection_gone(&ann_id)).await;
    let path = format!("/api/hubs/feed/connections/{bob_id}?api-version=2022-06-01");
    assert_eq!(rest(&server, Method::DELETE, &path, None).await.0, 200);
    assert_eq!(close_of(&mut bob).await.error, None);
    within(server.wait_for_connection_gone(&bob_id)).await;
    // Closing an unknown connection is not an error.
    let path = "/api/v1/hubs/feed/connections/nothere";
    assert_eq!(rest(&server, Method::DELETE, path, None).await.0, 202);
    server.shutdown().await;
}

#[tokio::test]
async fn item_104_close_connections_of_a_hub_a_group_or_a_user_with_exclusions() {
    let azure = AzureConfig {
        close_allow_reconnect: false,
        ..settings(ServiceMode::Serverless)
    };
    let server = azure_fixture(azure).await;
    let v2 = "api-version=2022-06-01";
    let (mut a, a_id) = service_peer(&server, "feed", Some("ann"), Protocol::Json).await;
    let (mut b, b_id) = service_peer(&server, "feed", Some("ann"), Protocol::Json).await;
    let (mut c, c_id) = service_peer(&server, "feed", Some("cy"), Protocol::Json).await;
    let path =
        format!("/api/hubs/feed/users/ann/:closeConnections?{v2}&excluded={b_id}&reason=bye");
    assert_eq!(rest(&server, Method::POST, &path, None).await.0, 204);
    let close = close_of(&mut a).await;
    assert_eq!(close.error.as_deref(), Some("bye"));
    assert!(!close.allow_reconnect, "per the fixture setting");
    within(server.wait_for_connection_gone(&a_id)).await;
    let join = format!("/api/v1/hubs/feed/groups/g/connections/{c_id}");
    assert_eq!(rest(&server, Method::PUT, &join, None).await.0, 200);
    let path = format!("/api/hubs/feed/groups/g/:closeConnections?{v2}");
    assert_eq!(rest(&server, Method::POST, &path, None).await.0, 204);
    close_of(&mut c).await;
    within(server.wait_for_connection_gone(&c_id)).await;
    let path = format!("/api/hubs/feed/:closeConnections?{v2}");
    assert_eq!(rest(&server, Method::POST, &path, None).await.0, 204);
    close_of(&mut b).await;
    within(server.wait_for_connection_gone(&b_id)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn item_103_bad_names_and_payloads_get_400_with_a_message() {
    let server = service().await;
    let long_group = "g".repeat(1025);
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/v1/hubs/1hub".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/v1/hubs/_hub".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/v1/hubs/h%3Cscript%3E".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            format!("/api/v1/hubs/{}", "h".repeat(129)),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/v1/hubs/h%C3%A9".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/v1/hubs/feed/groups/%20%20".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            format!("/api/v1/hubs/feed/groups/{long_group}"),
            payload("X", json!([])),
        ),
        (
            Method::PUT,
            "/api/v1/hubs/feed/groups/%09/users/ann".into(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/hubs/feed/users/%20".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/v1/hubs/feed/groups/%FF".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/hubs/feed/:send".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/hubs/feed/:send?api-version=2021-01-01".into(),
            payload("X", json!([])),
        ),
        (
            Method::POST,
            "/api/hubs/feed/:send?api-version=2022-06-01&application=9app".into(),
            payload("X", json!([])),
        ),
        (Method::POST, "/api/v1/hubs/feed".into(), None),
        (
            Method::POST,
            "/api/v1/hubs/feed".into(),
            Some(json!([1, 2])),
        ),
        (
            Method::POST,
            "/api/v1/hubs/feed".into(),
            Some(json!({"arguments": []})),
        ),
        (
            Method::POST,
            "/api/v1/hubs/feed".into(),
            Some(json!({"target": ""})),
        ),
        (
            Method::POST,
            "/api/v1/hubs/feed".into(),
            Some(json!({"target": 5})),
        ),
        (
            Method::POST,
            "/api/v1/hubs/feed".into(),
            Some(json!({"target": "X", "arguments": "a"})),
        ),
    ];
    for (method, path, body) in cases {
        let (status, _, answer) = rest(&server, method.clone(), &path, body).await;
        assert_eq!(status, 400, "{method} {path}");
        assert!(
            !answer["message"].as_str().unwrap_or("").is_empty(),
            "{method} {path}: a message"
        );
    }
    // Not JSON at all.
    let url = format!("{}/api/v1/hubs/feed", server.url());
    let token = token_with(KEY, &url, None);
    let response = within(
        http()
            .post(&url)
            .bearer_auth(&token)
            .body("{not json")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    server.shutdown().await;
}

#[tokio::test]
async fn item_100_unknown_routes_get_404_and_other_methods_405() {
    let server = service().await;
    for (method, path, expected) in [
        (Method::POST, "/api/v1/hubs", 404),
        (Method::POST, "/api/v1/nothing/feed", 404),
        (Method::POST, "/api/v1/hubs/feed/users/u/extra/more", 404),
        (Method::GET, "/api/v2/whatever", 404),
        (Method::PATCH, "/api/v1/hubs/feed/users/u", 405),
        (Method::GET, "/api/v1/hubs/feed", 405),
        (Method::PUT, "/api/v1/hubs/feed/connections/c", 405),
        (
            Method::POST,
            "/api/hubs/feed/users/u/groups?api-version=2022-06-01",
            405,
        ),
    ] {
        let (status, headers, body) = rest(&server, method.clone(), path, None).await;
        assert_eq!(status, expected, "{method} {path}");
        assert!(body["message"].is_string(), "{method} {path}: a message");
        if status == 405 {
            let allow = headers["allow"].to_str().unwrap();
            assert!(
                !allow.contains(method.as_str()),
                "{method} {path}: Allow {allow}"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_111_rest_bodies_over_1_mb_get_413_and_headers_over_16_kb_get_431() {
    let server = service().await;
    let url = format!("{}/api/v1/hubs/feed", server.url());
    let token = token_with(KEY, &url, None);
    let big = json!({"target": "X", "arguments": ["a".repeat(1024 * 1024)]}).to_string();
    let response = within(http().post(&url).bearer_auth(&token).body(big).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let just_fits = json!({"target": "X", "arguments": ["a".repeat(1000 * 1000)]}).to_string();
    let response = within(http().post(&url).bearer_auth(&token).body(just_fits).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let response = within(
        http()
            .post(&url)
            .bearer_auth(&token)
            .header("x-filler", "f".repeat(17 * 1024))
            .body(json!({"target": "X"}).to_string())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 431);
    server.shutdown().await;
}

#[tokio::test]
async fn item_111_a_spent_message_quota_answers_429_and_closes_clients() {
    let azure = AzureConfig {
        messages_per_day: Some(3),
        ..settings(ServiceMode::Serverless)
    };
    let server = azure_fixture(azure).await;
    let (mut ann, _) = service_peer(&server, "feed", None, Protocol::Json).await;
    for n in 0..3 {
        let (status, _, _) = rest(
            &server,
            Method::POST,
            "/api/v1/hubs/feed",
            payload("N", json!([n])),
        )
        .await;
        assert_eq!(status, 202);
        assert_eq!(received(&mut ann).await.1, vec![json!(n)]);
    }
    let (status, _, body) = rest(
        &server,
        Method::POST,
        "/api/v1/hubs/feed",
        payload("N", json!([3])),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "Message count reaches limit.");
    let close = close_of(&mut ann).await;
    assert_eq!(close.error.as_deref(), Some("Message count reaches limit."));
    assert!(!close.allow_reconnect);
    let token = client_token(&server, "feed", None);
    let (status, _) = service_negotiate(&server, "feed", Some(&token)).await;
    assert_eq!(status, 429);
    // A send that reaches nobody costs nothing and is still accepted.
    let (status, _, _) = rest(
        &server,
        Method::POST,
        "/api/v1/hubs/empty",
        payload("N", json!([])),
    )
    .await;
    assert_eq!(status, 202);
    server.shutdown().await;
}

/// A valid value for a path or query parameter of the OpenAPI document.
fn sample(name: &str, connection: &str) -> String {
    match name {
        "hub" => "feed".into(),
        "group" => "g".into(),
        "user" => "ann".into(),
        "connectionId" => connection.into(),
        other => panic!("no sample for {other}"),
    }
}

#[tokio::test]
async fn item_100_every_operation_of_the_openapi_document_answers_a_documented_status() {
    let server = service().await;
    let (_ann, ann_id) = service_peer(&server, "feed", Some("ann"), Protocol::Json).await;
    let doc: Value = serde_json::from_slice(
        &within(
            http()
                .get(format!("{}/api/openapi.json", server.url()))
                .send(),
        )
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap(),
    )
    .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut operations = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut path = template.clone();
            let mut query = Vec::new();
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                match parameter["in"].as_str().unwrap() {
                    "path" => path = path.replace(&format!("{{{name}}}"), &sample(name, &ann_id)),
                    _ if name == "api-version" => query.push("api-version=2022-06-01".to_owned()),
                    _ => {}
                }
            }
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let body = op
                .get("requestBody")
                .map(|_| json!({"target": "Generated", "arguments": [1]}));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, _, _) = rest(&server, method.clone(), &path, body).await;
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            // Earlier operations may have closed the connection or emptied the group, so a
            // documented 404 is fine; bad input, refused tokens and 5xx are not.
            assert!(
                documented.contains(&status) && (status < 400 || status == 404),
                "{method} {path}: {status} is not a documented answer ({documented:?})"
            );
            operations += 1;
        }
    }
    assert!(operations >= 30, "{operations} operations");
    server.shutdown().await;
}
