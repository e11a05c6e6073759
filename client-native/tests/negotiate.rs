//! Negotiate outcomes that a healthy server never produces, served by a small axum app on
//! loopback, and the aggregate error when the fixture refuses every transport (checklist items
//! named in each test).

mod common;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use common::*;
use serde_json::{json, Value};
use talkback::{HubConnectionBuilder, Protocol, TransportKind};

/// Serves `POST /app/negotiate` with `status` and `body`; returns the hub URL `/app`.
async fn negotiate_server(status: u16, body: Value) -> String {
    let app = axum::Router::new().route(
        "/app/negotiate",
        post(move || {
            let body = body.clone();
            async move {
                let status = StatusCode::from_u16(status).unwrap();
                (status, axum::Json(body)).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/app", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn start_error(url: &str, stateful: bool) -> String {
    let mut builder = HubConnectionBuilder::new(url);
    if stateful {
        builder = builder.with_stateful_reconnect();
    }
    let conn = builder.build().unwrap();
    let error = within(conn.start()).await.unwrap_err().to_string();
    assert_eq!(conn.state(), talkback::State::Disconnected);
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_25_an_aspnet_signalr_server_is_refused() {
    let url = negotiate_server(200, json!({"ProtocolVersion": "1.5", "ConnectionId": "x"})).await;
    let error = start_error(&url, false).await;
    assert!(
        error.contains("Detected a connection attempt to an ASP.NET SignalR Server."),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_26_a_negotiate_error_is_the_start_error() {
    let url = negotiate_server(200, json!({"error": "This connection is not allowed."})).await;
    assert!(start_error(&url, false)
        .await
        .contains("This connection is not allowed."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_27_a_404_negotiate_explains_itself() {
    let url = negotiate_server(404, json!({})).await;
    let error = start_error(&url, false).await;
    assert!(
        error.contains("Unexpected status code returned from negotiate '404'"),
        "{error}"
    );
    assert!(
        error.contains("Either this is not a SignalR endpoint"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_29_a_server_that_always_redirects_hits_the_limit() {
    // The app redirects to itself forever.
    let app = axum::Router::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/app", listener.local_addr().unwrap());
    let target = url.clone();
    let app = app.route(
        "/app/negotiate",
        post(move || {
            let target = target.clone();
            async move { axum::Json(json!({ "url": target })) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    assert!(start_error(&url, false)
        .await
        .contains("Negotiate redirection limit exceeded."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_84_a_server_that_turns_on_stateful_reconnect_unasked_is_refused() {
    let body = json!({
        "connectionId": "c", "connectionToken": "t", "negotiateVersion": 1,
        "useStatefulReconnect": true,
        "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text"]}],
    });
    let url = negotiate_server(200, body).await;
    assert!(start_error(&url, false)
        .await
        .contains("Client didn't negotiate Stateful Reconnect but the server did."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_33_when_every_transport_fails_the_error_names_each_one() {
    let hub = Hub::start().await;
    for kind in [
        TransportKind::WebSockets,
        TransportKind::ServerSentEvents,
        TransportKind::LongPolling,
    ] {
        hub.server.faults().refuse_at_connect(kind, true);
    }
    let conn = HubConnectionBuilder::new(hub.url())
        .with_protocol(Protocol::Json)
        .build()
        .unwrap();
    let error = within(conn.start()).await.unwrap_err().to_string();
    assert!(
        error.starts_with("Unable to connect to the server with any of the available transports."),
        "{error}"
    );
    for name in [
        "WebSockets failed",
        "ServerSentEvents failed",
        "LongPolling failed",
    ] {
        assert!(error.contains(name), "{error}");
    }
}
