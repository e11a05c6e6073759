//! Negotiate redirects (the Azure SignalR flow): an app server answers negotiate with the
//! service URL and a token; the client negotiates again there and connects with that token.

mod common;

use axum::routing::post;
use axum::Json;
use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use talkback::{HubConnectionBuilder, TransportSet};

/// Starts an "app server" whose negotiate redirects to `target` with `token`.
async fn redirector(target: String, token: &'static str) -> String {
    let app = axum::Router::new().route(
        "/api/negotiate",
        post(move || {
            let target = target.clone();
            async move { Json(json!({ "url": target, "accessToken": token })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_28_a_redirect_is_followed_with_its_access_token_on_every_transport() {
    let hub = Hub::start().await;
    let app = redirector(hub.url(), "service-token").await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let factory_calls = Arc::new(AtomicUsize::new(0));
        let calls = factory_calls.clone();
        let conn = HubConnectionBuilder::new(app.clone())
            .with_transports(TransportSet::only(transport))
            .with_protocol(protocol)
            .with_access_token_factory(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok("app-token".to_string()) }
            })
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        let header: Option<String> = within(conn.invoke("GetHeader", ("authorization",)))
            .await
            .unwrap();
        assert_eq!(header.as_deref(), Some("Bearer service-token"), "{l}");
        let user: Option<String> = within(conn.invoke("GetUserId", ())).await.unwrap();
        assert_eq!(
            user.as_deref(),
            Some("service-token"),
            "{l}: the fixture saw the token"
        );
        assert_eq!(
            factory_calls.load(Ordering::SeqCst),
            1,
            "{l}: only the app negotiate"
        );
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_52_an_expired_token_gets_one_refresh_and_the_call_goes_through() {
    use talkback::{Protocol, TransportKind};
    let hub = Hub::start().await;
    for transport in [TransportKind::LongPolling, TransportKind::ServerSentEvents] {
        hub.server.set_valid_tokens(Some(vec!["token-1".into()]));
        // The factory hands out whatever token is current, as a real identity provider does.
        let current = Arc::new(std::sync::Mutex::new("token-1".to_string()));
        let issued = Arc::new(AtomicUsize::new(0));
        let (counter, token) = (issued.clone(), current.clone());
        let conn = builder(&hub, transport, Protocol::Json)
            .with_access_token_factory(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let token = token.lock().unwrap().clone();
                async move { Ok(token) }
            })
            .build()
            .unwrap();
        within(conn.start()).await.unwrap();
        assert_eq!(
            issued.load(Ordering::SeqCst),
            1,
            "{transport:?}: one token for negotiate"
        );
        // The token expires and the provider has a new one.
        *current.lock().unwrap() = "token-2".into();
        hub.server.set_valid_tokens(Some(vec!["token-2".into()]));
        let sum: i64 = within(conn.invoke("Add", (20, 22))).await.unwrap();
        assert_eq!(sum, 42, "{transport:?}");
        assert!(
            issued.load(Ordering::SeqCst) >= 2,
            "{transport:?}: refreshed after the 401"
        );
        hub.server.set_valid_tokens(None);
        within(conn.stop()).await.unwrap();
    }
}
