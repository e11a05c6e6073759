//! Azure serverless mode: client invocations and connection events POSTed upstream, checked
//! by the test's own upstream server (signatures verified with the `hmac` crate), and the
//! upstream's answers turned into Completions (checklist items 107–110).

#[path = "kit/azure.rs"]
mod azure_kit;
mod kit;

use axum::http::{HeaderMap, StatusCode};
use azure_kit::*;
use hmac::{Hmac, Mac};
use kit::*;
use serde_json::{json, Value};
use std::sync::Arc;
use talkback_core::azure::AccessKey;
use talkback_core::protocol::{CompletionResult, Decoded, HubMessage};
use talkback_fixture::{AzureConfig, NoUpstream, Server, ServiceMode, UpstreamRule};
use tokio::sync::mpsc;

/// One request the upstream received.
#[derive(Debug)]
struct Call {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Call {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// How the test upstream answers an event: status and body.
type Answer = Arc<dyn Fn(&str) -> (u16, Vec<u8>) + Send + Sync>;

/// A test upstream: records every request and answers by `X-ASRS-Event`.
async fn upstream(answer: Answer) -> (String, mpsc::UnboundedReceiver<Call>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let tx = tx.clone();
        let answer = answer.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
            let event = parts
                .headers
                .get("x-asrs-event")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let _ = tx.send(Call {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body,
            });
            let (status, body) = answer(&event);
            (StatusCode::from_u16(status).unwrap(), body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

/// Answers `200 {}` to connection events and to every invocation a JSON Completion with
/// `"pong"` for invocation id `1`.
fn default_answer() -> Answer {
    Arc::new(|event| match event {
        "connected" | "disconnected" => (200, Vec::new()),
        _ => (
            200,
            b"{\"type\":3,\"invocationId\":\"1\",\"result\":\"pong\"}\x1e".to_vec(),
        ),
    })
}

/// A serverless fixture with both keys and one rule for everything, at `upstream`.
async fn service(upstream: &str) -> Server {
    let azure = AzureConfig {
        access_keys: vec![AccessKey::new(KEY), AccessKey::new(SECONDARY)],
        upstreams: vec![UpstreamRule::all(format!(
            "{upstream}/hook/{{hub}}/{{category}}/{{event}}"
        ))],
        ..settings(ServiceMode::Serverless)
    };
    azure_fixture(azure).await
}

/// Checks `X-ASRS-Signature` against each key, with the test's own HMAC.
fn assert_signed(call: &Call, connection_id: &str) {
    let header = call.header("x-asrs-signature");
    let values: Vec<&str> = header.split(',').map(str::trim).collect();
    assert_eq!(values.len(), 2, "one signature per key: {header}");
    for (key, value) in [KEY, SECONDARY].iter().zip(values) {
        let hex = value.strip_prefix("sha256=").expect("sha256= prefix");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(connection_id.as_bytes());
        mac.verify_slice(&bytes).expect("the signature verifies");
    }
}

async fn next_call(rx: &mut mpsc::UnboundedReceiver<Call>) -> Call {
    within(rx.recv()).await.expect("an upstream request")
}

#[tokio::test]
async fn items_107_108_connection_events_and_invocations_go_upstream_signed_with_every_key() {
    let (url, mut calls) = upstream(default_answer()).await;
    let server = service(&url).await;
    let (mut peer, id) = service_peer(&server, "Feed", Some("ann"), Protocol::Json).await;

    let connected = next_call(&mut calls).await;
    assert_eq!(connected.path, "/hook/feed/connections/connected");
    assert_eq!(connected.header("x-asrs-connection-id"), id);
    assert_eq!(connected.header("x-asrs-hub"), "feed");
    assert_eq!(connected.header("x-asrs-category"), "connections");
    assert_eq!(connected.header("x-asrs-event"), "connected");
    assert_eq!(connected.header("x-asrs-user-id"), "ann");
    assert_eq!(connected.header("content-type"), "application/json");
    assert!(connected
        .header("x-asrs-user-claims")
        .contains("asrs.s.uid: ann"));
    let query = connected.header("x-asrs-client-query");
    assert!(query.contains("hub=Feed"), "{query}");
    assert!(
        !query.contains("access_token"),
        "the token is not forwarded"
    );
    assert_signed(&connected, &id);
    let body: Value = serde_json::from_slice(&connected.body).unwrap();
    assert_eq!(body, json!({"type": 10}));

    let argument = peer.arg(json!({"n": 1}));
    peer.invoke("1", "Ping", vec![argument]).await;
    let invocation = next_call(&mut calls).await;
    assert_eq!(invocation.path, "/hook/feed/messages/Ping");
    assert_eq!(invocation.header("x-asrs-category"), "messages");
    assert_eq!(invocation.header("x-asrs-event"), "Ping");
    assert_signed(&invocation, &id);
    let body: Value = serde_json::from_slice(&invocation.body).expect("unframed JSON");
    assert_eq!(
        body,
        json!({"type": 1, "invocationId": "1", "target": "Ping", "arguments": [{"n": 1}]})
    );
    match within(peer.next()).await {
        Some(HubMessage::Completion(completion)) => {
            assert_eq!(completion.invocation_id, "1");
            match completion.result {
                CompletionResult::Value(v) => assert_eq!(v.decode::<String>().unwrap(), "pong"),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }

    drop(peer);
    let disconnected = next_call(&mut calls).await;
    assert_eq!(disconnected.path, "/hook/feed/connections/disconnected");
    assert_signed(&disconnected, &id);
    let body: Value = serde_json::from_slice(&disconnected.body).unwrap();
    assert_eq!(body["Type"], 11);
    assert!(body.as_object().unwrap().contains_key("Error"));
    server.shutdown().await;
}

#[tokio::test]
async fn item_107_messagepack_invocations_go_upstream_as_one_unframed_array() {
    let answer: Answer = Arc::new(|event| match event {
        "Sum" => {
            // A framed MessagePack Completion [3, {}, "7", 3, 42].
            let mut framed = Vec::new();
            talkback_core::protocol::Protocol::MessagePack.encode(
                &HubMessage::Completion(talkback_core::protocol::Completion {
                    invocation_id: "7".into(),
                    result: CompletionResult::Value(
                        talkback_core::protocol::RawValue::encode(Protocol::MessagePack, &42)
                            .unwrap(),
                    ),
                    headers: Default::default(),
                }),
                &mut framed,
            );
            (200, framed)
        }
        _ => (200, Vec::new()),
    });
    let (url, mut calls) = upstream(answer).await;
    let server = service(&url).await;
    let (mut peer, _) = service_peer(&server, "feed", None, Protocol::MessagePack).await;
    next_call(&mut calls).await; // connected
    let (a, b) = (peer.arg(40), peer.arg(2));
    peer.invoke("7", "Sum", vec![a, b]).await;
    let call = next_call(&mut calls).await;
    assert_eq!(call.header("content-type"), "application/x-msgpack");
    match Protocol::MessagePack
        .decode(&call.body)
        .expect("one unframed record")
    {
        Decoded::Message(HubMessage::Invocation(invocation)) => {
            assert_eq!(invocation.target, "Sum");
            assert_eq!(invocation.invocation_id.as_deref(), Some("7"));
            assert_eq!(invocation.arguments.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    match within(peer.next()).await {
        Some(HubMessage::Completion(completion)) => match completion.result {
            CompletionResult::Value(v) => assert_eq!(v.decode::<i64>().unwrap(), 42),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_109_upstream_statuses_become_empty_or_error_completions() {
    let answer: Answer = Arc::new(|event| match event {
        "Empty" => (200, Vec::new()),
        "NoContent" => (204, Vec::new()),
        "Broken" => (500, b"boom".to_vec()),
        "Missing" => (404, Vec::new()),
        "Garbage" => (200, b"not a message".to_vec()),
        _ => (200, Vec::new()),
    });
    let (url, mut calls) = upstream(answer).await;
    let server = service(&url).await;
    let (mut peer, _) = service_peer(&server, "feed", None, Protocol::Json).await;
    next_call(&mut calls).await; // connected
    for (target, expected) in [
        ("Empty", Ok(())),
        ("NoContent", Ok(())),
        (
            "Broken",
            Err("Invocation failed, status code 500".to_owned()),
        ),
        (
            "Missing",
            Err("Invocation failed, status code 404".to_owned()),
        ),
        (
            "Garbage",
            Err(
                "Invocation failed, the upstream answer is not a framed Completion message"
                    .to_owned(),
            ),
        ),
    ] {
        peer.invoke(target, target, vec![]).await;
        next_call(&mut calls).await;
        match within(peer.next()).await {
            Some(HubMessage::Completion(completion)) => {
                assert_eq!(completion.invocation_id, target);
                match (completion.result, expected) {
                    (CompletionResult::Void, Ok(())) => {}
                    (CompletionResult::Error(text), Err(expected)) => assert_eq!(text, expected),
                    (other, expected) => panic!("{target}: {other:?}, expected {expected:?}"),
                }
            }
            other => panic!("{target}: {other:?}"),
        }
    }
    // A non-blocking invocation goes upstream but is never answered: the next message is the
    // Completion of the blocking call after it.
    peer.send(HubMessage::Invocation(
        talkback_core::protocol::Invocation {
            invocation_id: None,
            target: "Fire".into(),
            arguments: vec![],
            stream_ids: None,
            headers: Default::default(),
        },
    ))
    .await;
    assert_eq!(next_call(&mut calls).await.header("x-asrs-event"), "Fire");
    peer.invoke("after", "Empty", vec![]).await;
    match within(peer.next()).await {
        Some(HubMessage::Completion(completion)) => assert_eq!(completion.invocation_id, "after"),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_107_the_first_matching_rule_wins_and_unmatched_events_are_not_sent() {
    let (url, mut calls) = upstream(default_answer()).await;
    let azure = AzureConfig {
        upstreams: vec![
            UpstreamRule::parse(&format!(
                "{url}/special;hub=feed;category=messages;event=Special,Other"
            ))
            .unwrap(),
            UpstreamRule::parse(&format!("{url}/general/{{event}};hub=feed,news")).unwrap(),
        ],
        ..settings(ServiceMode::Serverless)
    };
    let server = azure_fixture(azure).await;
    let (mut peer, _) = service_peer(&server, "feed", None, Protocol::Json).await;
    assert_eq!(next_call(&mut calls).await.path, "/general/connected");
    peer.invoke("1", "special", vec![]).await;
    assert_eq!(
        next_call(&mut calls).await.path,
        "/special",
        "names match in any case"
    );
    within(peer.next()).await;
    peer.invoke("1", "Plain", vec![]).await;
    assert_eq!(next_call(&mut calls).await.path, "/general/Plain");
    within(peer.next()).await;
    // Another hub matches no rule: nothing goes upstream, and its blocking calls are ignored.
    let (mut quiet, quiet_id) = service_peer(&server, "quiet", None, Protocol::Json).await;
    quiet.invoke("1", "Plain", vec![]).await;
    let marker = format!("/api/v1/hubs/quiet/connections/{quiet_id}");
    let (status, _, _) = rest(
        &server,
        reqwest::Method::POST,
        &marker,
        payload("Marker", json!([])),
    )
    .await;
    assert_eq!(status, 202);
    match within(quiet.next()).await {
        Some(HubMessage::Invocation(i)) => assert_eq!(i.target, "Marker", "no Completion first"),
        other => panic!("{other:?}"),
    }
    drop(peer);
    assert_eq!(next_call(&mut calls).await.path, "/general/disconnected");
    assert!(calls.try_recv().is_err(), "nothing from the quiet hub");
    server.shutdown().await;
}

#[tokio::test]
async fn item_110_without_upstream_the_disconnect_option_closes_the_client() {
    let azure = AzureConfig {
        no_upstream: NoUpstream::Disconnect,
        ..settings(ServiceMode::Serverless)
    };
    let server = azure_fixture(azure).await;
    let (mut peer, id) = service_peer(&server, "feed", None, Protocol::Json).await;
    peer.invoke("1", "Anything", vec![]).await;
    loop {
        match within(peer.next()).await {
            Some(HubMessage::Close(close)) => {
                assert!(close.error.unwrap().contains("No upstream"));
                assert!(!close.allow_reconnect);
                break;
            }
            Some(HubMessage::Completion(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    within(server.wait_for_connection_gone(&id)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn item_108_a_failed_connected_event_closes_the_client_without_reconnect() {
    let answer: Answer = Arc::new(|event| match event {
        "connected" => (503, Vec::new()),
        _ => (200, Vec::new()),
    });
    let (url, mut calls) = upstream(answer).await;
    let server = service(&url).await;
    let (mut peer, id) = service_peer(&server, "feed", None, Protocol::Json).await;
    next_call(&mut calls).await;
    match within(peer.next()).await {
        Some(HubMessage::Close(close)) => {
            assert_eq!(
                close.error.as_deref(),
                Some("Upstream connected event failed, status code 503")
            );
            assert!(!close.allow_reconnect);
        }
        other => panic!("{other:?}"),
    }
    within(server.wait_for_connection_gone(&id)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_upstream_fails_the_invocation_with_a_clear_error() {
    // A port that was free a moment ago: nothing listens there.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let azure = AzureConfig {
        upstreams: vec![UpstreamRule::parse(&format!("{url}/x;category=messages")).unwrap()],
        ..settings(ServiceMode::Serverless)
    };
    let server = azure_fixture(azure).await;
    let (mut peer, _) = service_peer(&server, "feed", None, Protocol::Json).await;
    peer.invoke("1", "Call", vec![]).await;
    match within(peer.next()).await {
        Some(HubMessage::Completion(completion)) => match completion.result {
            CompletionResult::Error(text) => {
                assert_eq!(text, "Invocation failed, the upstream could not be reached")
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[test]
fn upstream_rules_parse_with_clear_errors() {
    let rule = UpstreamRule::parse("http://h/x/{event};hub=a,b;category=messages;event=*").unwrap();
    assert_eq!(rule.hub_pattern, "a,b");
    assert_eq!(rule.category_pattern, "messages");
    assert!(UpstreamRule::parse("ftp://h").unwrap_err().contains("http"));
    assert!(UpstreamRule::parse("not a url").is_err());
    assert!(UpstreamRule::parse("http://h;colour=red")
        .unwrap_err()
        .contains("colour"));
    assert!(UpstreamRule::parse("http://h;hub")
        .unwrap_err()
        .contains("key=value"));
}
