//! Safe by default on a developer's machine: CORS from an allow-list on the hub routes and
//! never on the admin routes; admin requests need a header a page cannot send blind (or the
//! admin token) and a local `Host`; admin can be turned off.

mod kit;

use kit::*;
use talkback_fixture::{Config, Server};

async fn preflight(server: &Server, path: &str, origin: &str) -> reqwest::Response {
    within(
        http()
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url()))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "x-talkback-admin")
            .send(),
    )
    .await
    .unwrap()
}

fn allowed_origin(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn admin_with(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http().request(method, format!("{}{path}", server.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    within(request.send()).await.unwrap()
}

#[tokio::test]
async fn hub_routes_allow_any_origin_but_null_by_default() {
    let server = fixture(Config::default()).await;
    let ok = preflight(&server, "/hubs/test/negotiate", "https://app.example").await;
    assert_eq!(allowed_origin(&ok).as_deref(), Some("https://app.example"));
    assert_eq!(
        ok.headers()
            .get("access-control-allow-credentials")
            .unwrap(),
        "true"
    );
    let null = preflight(&server, "/hubs/test/negotiate", "null").await;
    assert_eq!(
        allowed_origin(&null),
        None,
        "null is never allowed unless listed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn with_an_allow_list_only_listed_origins_get_cors() {
    let server = fixture(Config {
        cors_origins: vec!["https://app.example".into(), "null".into()],
        ..Default::default()
    })
    .await;
    let listed = preflight(&server, "/hubs/test/negotiate", "https://app.example").await;
    assert_eq!(
        allowed_origin(&listed).as_deref(),
        Some("https://app.example")
    );
    let null = preflight(&server, "/hubs/test", "null").await;
    assert_eq!(allowed_origin(&null).as_deref(), Some("null"));
    let other = preflight(&server, "/hubs/test/negotiate", "https://evil.example").await;
    assert_eq!(allowed_origin(&other), None);
    let negotiate = within(
        http()
            .post(format!(
                "{}/negotiate?negotiateVersion=1",
                server.hub_url("test")
            ))
            .header("Origin", "https://evil.example")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(allowed_origin(&negotiate), None);
    server.shutdown().await;
}

#[tokio::test]
async fn admin_routes_never_answer_cors_and_need_the_admin_header() {
    let server = fixture(Config::default()).await;
    let (_peer, id) = Peer::connect(&server, Protocol::Json).await;
    // The preflight a page needs before sending the custom header fails.
    let pre = preflight(
        &server,
        &format!("/admin/connections/{id}/drop"),
        "https://app.example",
    )
    .await;
    assert_eq!(allowed_origin(&pre), None);
    // What a page can send blind (no custom header) is refused, with no CORS either.
    let path = format!("/admin/connections/{id}/stop-pings");
    let blind = admin_with(
        &server,
        reqwest::Method::POST,
        &path,
        &[("Origin", "https://app.example")],
    )
    .await;
    assert_eq!(blind.status(), 403);
    assert_eq!(allowed_origin(&blind), None);
    let list = admin_with(&server, reqwest::Method::GET, "/admin/connections", &[]).await;
    assert_eq!(list.status(), 403);
    // With the header: served, still without CORS.
    let ok = admin_with(
        &server,
        reqwest::Method::POST,
        &path,
        &[("X-Talkback-Admin", "1"), ("Origin", "https://app.example")],
    )
    .await;
    assert_eq!(ok.status(), 204);
    assert_eq!(allowed_origin(&ok), None);
    // A DNS-rebound page names a foreign Host.
    let rebound = admin_with(
        &server,
        reqwest::Method::POST,
        &path,
        &[("X-Talkback-Admin", "1"), ("Host", "evil.example")],
    )
    .await;
    assert_eq!(rebound.status(), 403);
    assert!(server.connection_info(&id).is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn an_admin_token_is_required_when_set_and_admin_can_be_turned_off() {
    let server = fixture(Config {
        admin_token: Some("s3cret".into()),
        ..Default::default()
    })
    .await;
    let path = "/admin/faults/stop-pings";
    let plain = admin_with(
        &server,
        reqwest::Method::POST,
        path,
        &[("X-Talkback-Admin", "1")],
    )
    .await;
    assert_eq!(plain.status(), 403);
    let token = admin_with(
        &server,
        reqwest::Method::POST,
        path,
        &[("X-Talkback-Admin", "s3cret")],
    )
    .await;
    assert_eq!(token.status(), 204);
    server.shutdown().await;

    let server = fixture(Config {
        admin_enabled: false,
        ..Default::default()
    })
    .await;
    let off = admin_with(
        &server,
        reqwest::Method::POST,
        path,
        &[("X-Talkback-Admin", "1")],
    )
    .await;
    assert_eq!(off.status(), 404);
    assert_eq!(negotiate_status(&server, "negotiateVersion=1").await.0, 200);
    server.shutdown().await;
}
