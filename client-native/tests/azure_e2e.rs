//! `talkback::azure` end to end against the fixture in Azure service mode, over real sockets:
//! a native client connects with the `{url, accessToken}` pair [`ServiceClient::client_info`]
//! makes (checklist items 95–97 from the client's side), and every REST call reaches it
//! (items 100–106), in both API versions.

use std::time::Duration;

use talkback::azure::{AzureError, Message, RestApiVersion, RetryPolicy, ServiceClient};
use talkback::{HubConnection, HubConnectionBuilder, TransportKind, TransportSet};
use tokio::sync::mpsc;

mod common;

use common::azure::{service, HUB, KEY};

fn rest(server: &talkback_fixture::Server, api: RestApiVersion) -> ServiceClient {
    let cs = server.azure_connection_string().expect("Azure mode is on");
    ServiceClient::from_connection_string(&cs)
        .unwrap()
        .with_api_version(api)
        .with_retry_policy(RetryPolicy::none())
}

/// A client of `HUB` as `user`, connected with a token from `client_info`; its `update`
/// invocations arrive on the returned channel.
async fn client(
    service: &ServiceClient,
    user: &str,
    transport: TransportKind,
) -> (HubConnection, mpsc::UnboundedReceiver<String>) {
    let info = service.client_info(HUB, Some(user)).unwrap();
    let token = info.access_token.clone();
    let conn = HubConnectionBuilder::new(info.url)
        .with_transports(TransportSet::only(transport))
        .with_http_timeout(Duration::from_secs(5))
        .with_access_token_factory(move || {
            let token = token.clone();
            async move { Ok(token) }
        })
        .build()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    conn.on("update", move |(text,): (String,)| {
        let _ = tx.send(text);
    });
    conn.start()
        .await
        .expect("the client connects with the generated token");
    (conn, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a message within 10 s")
        .expect("the channel is open")
}

fn update(text: &str) -> Message {
    Message::new("update", vec![text.into()])
}

/// Checks that nothing else arrives: a marker sent to everyone comes next.
async fn assert_nothing_before_marker(
    service: &ServiceClient,
    rx: &mut mpsc::UnboundedReceiver<String>,
    marker: &str,
) {
    service
        .send_to_all(HUB, &update(marker), &[])
        .await
        .unwrap();
    assert_eq!(next(rx).await, marker);
}

async fn every_call_reaches_the_client(api: RestApiVersion, transport: TransportKind) {
    let server = service().await;
    let service = rest(&server, api);
    service.health().await.unwrap();
    let (alice, mut alice_rx) = client(&service, "alice", transport).await;
    let (bob, mut bob_rx) = client(&service, "bob", transport).await;
    let alice_id = alice.connection_id().unwrap();
    let bob_id = bob.connection_id().unwrap();

    // Broadcast, with and without exclusion.
    service.send_to_all(HUB, &update("all"), &[]).await.unwrap();
    assert_eq!(next(&mut alice_rx).await, "all");
    assert_eq!(next(&mut bob_rx).await, "all");
    service
        .send_to_all(HUB, &update("not bob"), &[&bob_id])
        .await
        .unwrap();
    assert_eq!(next(&mut alice_rx).await, "not bob");
    assert_nothing_before_marker(&service, &mut bob_rx, "m1").await;
    assert_eq!(next(&mut alice_rx).await, "m1");

    // User and connection targets.
    assert!(service.user_exists(HUB, "alice").await.unwrap());
    assert!(!service.user_exists(HUB, "carol").await.unwrap());
    service
        .send_to_user(HUB, "bob", &update("to bob"))
        .await
        .unwrap();
    assert_eq!(next(&mut bob_rx).await, "to bob");
    assert!(service.connection_exists(HUB, &alice_id).await.unwrap());
    assert!(!service
        .connection_exists(HUB, "no-such-connection")
        .await
        .unwrap());
    service
        .send_to_connection(HUB, &alice_id, &update("to alice"))
        .await
        .unwrap();
    assert_eq!(next(&mut alice_rx).await, "to alice");
    assert_nothing_before_marker(&service, &mut bob_rx, "m2").await;
    assert_eq!(next(&mut alice_rx).await, "m2");

    // Groups: a connection and a user.
    assert!(!service.group_exists(HUB, "ops").await.unwrap());
    service
        .add_connection_to_group(HUB, "ops", &alice_id)
        .await
        .unwrap();
    assert!(service.group_exists(HUB, "ops").await.unwrap());
    service
        .add_user_to_group(HUB, "ops", "bob", Some(Duration::from_secs(600)))
        .await
        .unwrap();
    assert!(service.user_in_group(HUB, "ops", "bob").await.unwrap());
    service
        .send_to_group(HUB, "ops", &update("ops"), &[])
        .await
        .unwrap();
    assert_eq!(next(&mut alice_rx).await, "ops");
    assert_eq!(next(&mut bob_rx).await, "ops");
    service
        .send_to_group(HUB, "ops", &update("ops but alice"), &[&alice_id])
        .await
        .unwrap();
    assert_eq!(next(&mut bob_rx).await, "ops but alice");
    service
        .remove_user_from_group(HUB, "ops", "bob")
        .await
        .unwrap();
    assert!(!service.user_in_group(HUB, "ops", "bob").await.unwrap());
    service
        .remove_connection_from_group(HUB, "ops", &alice_id)
        .await
        .unwrap();
    service
        .add_user_to_group(HUB, "ops", "bob", None)
        .await
        .unwrap();
    service
        .remove_user_from_all_groups(HUB, "bob")
        .await
        .unwrap();
    service
        .send_to_group(HUB, "ops", &update("nobody"), &[])
        .await
        .unwrap();
    assert_nothing_before_marker(&service, &mut alice_rx, "m3").await;
    assert_eq!(next(&mut bob_rx).await, "m3");

    // A connection that does not exist cannot join a group.
    let err = service
        .add_connection_to_group(HUB, "ops", "no-such-connection")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");

    // Close with a reason: the client learns it.
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    bob.on_close(move |error| {
        let _ = closed_tx.send(error.map(|e| e.to_string()));
    });
    service
        .close_connection(HUB, &bob_id, Some("maintenance window"))
        .await
        .unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), closed_rx.recv())
        .await
        .expect("bob is closed within 10 s")
        .unwrap();
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("maintenance window")),
        "{error:?}"
    );
    let _ = alice.stop().await;
}

/// Checklist items 100–106 (client side), v1 over WebSockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_call_reaches_a_websocket_client_of_the_fixture() {
    every_call_reaches_the_client(RestApiVersion::V1, TransportKind::WebSockets).await;
}

/// Checklist items 100–106 (client side), 2022-06-01 over Server-Sent Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_2022_06_01_call_reaches_an_sse_client_of_the_fixture() {
    every_call_reaches_the_client(RestApiVersion::V2022_06_01, TransportKind::ServerSentEvents)
        .await;
}

async fn wait(rx: &mut mpsc::UnboundedReceiver<Option<String>>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("closed within 10 s")
        .unwrap()
}

/// The 2022-06-01 close calls, over long polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_by_user_group_and_hub_closes_the_right_long_polling_clients() {
    let server = service().await;
    let service = rest(&server, RestApiVersion::V2022_06_01);
    let mut closed = Vec::new();
    let mut conns = Vec::new();
    for user in ["u1", "u2", "u3", "u4"] {
        let (conn, _rx) = client(&service, user, TransportKind::LongPolling).await;
        let (tx, rx) = mpsc::unbounded_channel();
        conn.on_close(move |error| {
            let _ = tx.send(error.map(|e| e.to_string()));
        });
        closed.push(rx);
        conns.push(conn);
    }
    service
        .close_user_connections(HUB, "u1", &[], Some("bye u1"))
        .await
        .unwrap();
    assert!(wait(&mut closed[0])
        .await
        .is_some_and(|e| e.contains("bye u1")));
    service
        .add_user_to_group(HUB, "g", "u2", None)
        .await
        .unwrap();
    service
        .close_group_connections(HUB, "g", &[], None)
        .await
        .unwrap();
    wait(&mut closed[1]).await;
    let spared = conns[3].connection_id().unwrap();
    service
        .close_all_connections(HUB, &[&spared], Some("all"))
        .await
        .unwrap();
    assert!(wait(&mut closed[2])
        .await
        .is_some_and(|e| e.contains("all")));
    assert!(service.connection_exists(HUB, &spared).await.unwrap());
    let _ = conns[3].stop().await;
}

/// Checklist item 97 (client side): a token made with another key is refused by the service.
#[tokio::test]
async fn a_client_token_from_another_key_is_refused_with_401() {
    let server = service().await;
    let good = server.azure_connection_string().unwrap();
    let forged = good.replace(KEY, "0000000000000000000000000000000000000000000=");
    let service = ServiceClient::from_connection_string(&forged)
        .unwrap()
        .with_retry_policy(RetryPolicy::none());
    let err = service
        .send_to_all(HUB, &update("x"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(matches!(err, AzureError::Status { .. }));
    let info = service.client_info(HUB, None).unwrap();
    let token = info.access_token.clone();
    let conn = HubConnectionBuilder::new(info.url)
        .with_http_timeout(Duration::from_secs(5))
        .with_access_token_factory(move || {
            let token = token.clone();
            async move { Ok(token) }
        })
        .build()
        .unwrap();
    let err = conn.start().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

/// Names with unicode, spaces, `/`, `?`, `%` and `&` reach the service as the same names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_and_reserved_characters_in_names_survive_the_round_trip() {
    let server = service().await;
    for api in [RestApiVersion::V1, RestApiVersion::V2022_06_01] {
        let service = rest(&server, api);
        let user = "用户 1/?&%2F";
        let group = "grüppe / ✓ ?x=1&y=%41";
        let (conn, mut rx) = client(&service, user, TransportKind::WebSockets).await;
        assert!(service.user_exists(HUB, user).await.unwrap(), "{api:?}");
        assert!(
            !service.user_exists(HUB, "用户 1").await.unwrap(),
            "{api:?}"
        );
        service
            .add_user_to_group(HUB, group, user, None)
            .await
            .unwrap();
        assert!(
            service.user_in_group(HUB, group, user).await.unwrap(),
            "{api:?}"
        );
        assert!(
            !service.group_exists(HUB, "grüppe ").await.unwrap(),
            "{api:?}"
        );
        service
            .send_to_group(HUB, group, &update("g"), &[])
            .await
            .unwrap();
        assert_eq!(next(&mut rx).await, "g");
        service.send_to_user(HUB, user, &update("u")).await.unwrap();
        assert_eq!(next(&mut rx).await, "u");
        service
            .remove_user_from_group(HUB, group, user)
            .await
            .unwrap();
        let _ = conn.stop().await;
    }
}
