//! Helpers of the Azure-mode tests: a fixture in Azure mode, tokens signed like the Azure SDK
//! signs them, REST calls with their bearer token, and service-mode WebSocket peers.
//!
//! Included next to the shared kit with `#[path = "kit/azure.rs"] mod azure_kit;`.
#![allow(dead_code, unreachable_pub)]

use super::kit::{http, open, within, Peer, Protocol};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use talkback_core::azure::{generate_token, AccessKey, TokenRequest};
use talkback_fixture::{AzureConfig, Config, Server, ServiceMode};

/// The primary access key of the tests' fixtures.
pub const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
/// A second key (rotation).
pub const SECONDARY: &str = "secondary-key-0123456789-secondary-key-01234";

/// Azure settings with [`KEY`] in `mode`.
pub fn settings(mode: ServiceMode) -> AzureConfig {
    AzureConfig {
        mode,
        ..AzureConfig::with_key(KEY)
    }
}

/// Starts a fixture with the test hubs in Azure mode.
pub async fn azure_fixture(azure: AzureConfig) -> Server {
    azure_fixture_with(Config::default(), azure).await
}

/// Starts a fixture with `config` and `azure`.
pub async fn azure_fixture_with(config: Config, azure: AzureConfig) -> Server {
    let config = Config {
        azure: Some(azure),
        ..config
    };
    talkback_fixture::spawn(config)
        .await
        .expect("the fixture starts")
}

/// A token for `audience` signed with `key`, for `user` if given.
pub fn token_with(key: &str, audience: &str, user: Option<&str>) -> String {
    let mut request = TokenRequest::new(audience);
    if let Some(user) = user {
        request = request.user_id(user);
    }
    generate_token(&AccessKey::new(key), &request, SystemTime::now()).unwrap()
}

/// A token for `audience` that expired an hour ago.
pub fn expired_token(audience: &str) -> String {
    let request = TokenRequest::new(audience).lifetime(Duration::from_secs(60));
    let then = SystemTime::now() - Duration::from_secs(3600);
    generate_token(&AccessKey::new(KEY), &request, then).unwrap()
}

/// The client URL of `hub` (its wire name) on the fixture.
pub fn client_url(server: &Server, hub: &str) -> String {
    format!("{}/client/?hub={hub}", server.url())
}

/// A client token for `hub` signed with [`KEY`], as the SDK writes it (port-less `aud`).
pub fn client_token(server: &Server, hub: &str, user: Option<&str>) -> String {
    let aud = format!("http://127.0.0.1/client/?hub={hub}");
    let _ = server;
    token_with(KEY, &aud, user)
}

/// `POST /client/negotiate?hub={hub}&negotiateVersion=1` with `token` as a bearer (if any):
/// status and JSON body (Null unless JSON).
pub async fn service_negotiate(server: &Server, hub: &str, token: Option<&str>) -> (u16, Value) {
    let url = format!(
        "{}/client/negotiate?hub={hub}&negotiateVersion=1",
        server.url()
    );
    let mut request = http().post(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = within(request.send()).await.unwrap();
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

/// Negotiates with the service for `hub` as `user` and opens a WebSocket with the token in
/// the query (as browsers send it); handshake done. Returns the peer and its connection id.
pub async fn service_peer(
    server: &Server,
    hub: &str,
    user: Option<&str>,
    protocol: Protocol,
) -> (Peer, String) {
    let token = client_token(server, hub, user);
    let (status, body) = service_negotiate(server, hub, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let connection_token = body["connectionToken"].as_str().unwrap();
    let id = body["connectionId"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/client/?hub={hub}&id={connection_token}&access_token={token}",
        server.url().replacen("http", "ws", 1)
    );
    let peer = Peer::handshake(open(&url).await, protocol, 1).await;
    within(server.wait_for_connection(&id, |c| c.handshake_version.is_some()))
        .await
        .expect("the connection is live");
    (peer, id)
}

/// A REST call: `method` on `path_and_query` (under the fixture's URL) with a bearer token
/// whose `aud` is the URL without its query (the Learn article's form) and `body` as JSON.
pub async fn rest(
    server: &Server,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!("{}{path_and_query}", server.url());
    let aud = url.split('?').next().unwrap().to_owned();
    rest_with_token(method, &url, &token_with(KEY, &aud, None), body).await
}

/// A REST call with a given token.
pub async fn rest_with_token(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = within(request.send()).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

/// The payload of a REST send.
pub fn payload(target: &str, arguments: Value) -> Option<Value> {
    Some(serde_json::json!({ "target": target, "arguments": arguments }))
}
