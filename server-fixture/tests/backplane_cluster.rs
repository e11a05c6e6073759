//! The Redis backplane: two fixture nodes in one process, on their own ports, sharing a real
//! `redis-server` that each test starts on a free loopback port; raw WebSocket peers on both
//! nodes, in both hub protocols, and the native `talkback` client over Server-Sent Events and
//! long polling. Skipped (with a message) only when `redis-server` is not installed;
//! `scripts/test.sh` installs it (scripts/redis-setup.sh).

#[path = "kit/azure.rs"]
mod azure_kit;
mod kit;
#[path = "kit/redis.rs"]
mod redis_kit;

use kit::*;
use redis_kit::Redis;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use talkback::{HubConnection, HubConnectionBuilder, TransportKind, TransportSet};
use talkback_core::protocol::{Completion, CompletionResult, HubMessage};
use talkback_fixture::backplane::protocol::{encode_invocation, Invocation};
use talkback_fixture::ServiceMode;
use talkback_fixture::{Config, HubContext, RedisConfig, Server};
use tokio::sync::mpsc;

/// A hub that sends to one connection by id (`Clients.Client(id)`), for cross-node sends.
fn relay_hub() -> talkback_fixture::Hub {
    talkback_fixture::Hub::builder("relay")
        .method(
            "SendToConnection",
            |ctx: HubContext, (id, text): (String, Value)| async move {
                ctx.send_to_connection(&id, "Direct", &(text,))
            },
        )
        .method("Broadcast", |ctx: HubContext, (text,): (Value,)| async move {
            ctx.send_to_all("Broadcast", &(text,))
        })
        .method("JoinGroup", |ctx: HubContext, (group,): (String,)| async move {
            ctx.join_group(&group);
            Ok(())
        })
        .method(
            "SendToGroup",
            |ctx: HubContext, (group, text): (String, Value)| async move {
                ctx.send_to_group(&group, "GroupMessage", &(text,))
            },
        )
        .method(
            "SendToUser",
            |ctx: HubContext, (user, text): (String, Value)| async move {
                ctx.send_to_user(&user, "UserMessage", &(text,))
            },
        )
        .method(
            "AskConnection",
            |ctx: HubContext, (id, method, arg): (String, String, Value)| async move {
                let answer = ctx
                    .invoke_connection(&id, &method, &(arg,), std::time::Duration::from_secs(5))
                    .await?;
                Ok(answer.map(|v| v.decode::<Value>()).transpose()?)
            },
        )
        .build()
}

fn redis_config(redis: &Redis) -> RedisConfig {
    RedisConfig::new(redis.url())
        .with_prefix("it-")
        .with_hub_name("test", "Contoso.TestHub")
        .with_ack_timeout(Duration::from_secs(2))
        .with_report_interval(Duration::from_millis(100))
}

async fn node(redis: &Redis) -> Server {
    let config = Config {
        redis: Some(redis_config(redis)),
        ..Config::default()
    };
    talkback_fixture::spawn_with_hubs(config, vec![talkback_fixture::test_hub(), relay_hub()])
        .await
        .expect("the node joins the backplane")
}

/// A peer of `hub` on `server` (with `query` on negotiate and connect): the peer and its id.
async fn peer(server: &Server, hub: &str, protocol: Protocol, query: &str) -> (Peer, String) {
    let url = format!(
        "{}/negotiate?negotiateVersion=1&{query}",
        server.hub_url(hub)
    );
    let response = within(http().post(url).send()).await.unwrap();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    let ws = format!("{}?id={token}&{query}", server.hub_url(hub)).replacen("http", "ws", 1);
    let mut peer = Peer::handshake(open(&ws).await, protocol, 1).await;
    if hub == "test" {
        let welcome = peer.next().await.unwrap();
        assert!(matches!(welcome, HubMessage::Invocation(ref i) if i.target == "Welcome"));
    }
    (peer, body["connectionId"].as_str().unwrap().to_owned())
}

/// Invokes `target(args...)` and waits for its Completion; invocations that arrive meanwhile
/// stay queued for [`received`].
async fn call(peer: &mut Peer, target: &str, args: Value) -> Completion {
    let args: Vec<RawValue> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| peer.arg(a))
        .collect();
    peer.invoke("c", target, args).await;
    let mut held = Vec::new();
    let completion = loop {
        match within(peer.next()).await.expect("the socket stays open") {
            HubMessage::Completion(c) if c.invocation_id == "c" => break c,
            other => held.push(other),
        }
    };
    for message in held.into_iter().rev() {
        peer.pending.push_front(message);
    }
    completion
}

/// The next invocation the peer receives: its target and arguments.
async fn received(peer: &mut Peer) -> (String, Vec<Value>) {
    loop {
        if let HubMessage::Invocation(i) = within(peer.next()).await.expect("a message") {
            let args = i.arguments.iter().map(|a| a.decode().unwrap()).collect();
            return (i.target, args);
        }
    }
}

fn message(target: &str, args: Value) -> (String, Vec<Value>) {
    (target.to_owned(), args.as_array().unwrap().clone())
}

#[tokio::test]
async fn a_broadcast_reaches_every_node_and_skips_the_excluded_caller() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (mut a1, _) = peer(&a, "test", Protocol::Json, "").await;
    let (mut b1, _) = peer(&b, "test", Protocol::MessagePack, "").await;
    let (mut b2, _) = peer(&b, "test", Protocol::Json, "").await;

    call(&mut a1, "SendToOthers", json!(["x"])).await;
    for p in [&mut b1, &mut b2] {
        assert_eq!(received(p).await, message("Broadcast", json!(["x"])));
    }
    call(&mut b1, "Broadcast", json!([{"n": 1}])).await;
    for p in [&mut a1, &mut b1, &mut b2] {
        // For a1 this is also the first thing it receives: "x" excluded it.
        assert_eq!(received(p).await, message("Broadcast", json!([{"n": 1}])));
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn group_members_on_another_node_receive_group_sends_until_they_leave() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (mut a1, _) = peer(&a, "test", Protocol::MessagePack, "").await;
    let (mut b1, _) = peer(&b, "test", Protocol::Json, "").await;

    call(&mut a1, "JoinGroup", json!(["g"])).await;
    call(&mut b1, "SendToGroup", json!(["g", "hi"])).await;
    assert_eq!(
        received(&mut a1).await,
        message("GroupMessage", json!(["g", "hi"]))
    );

    call(&mut a1, "LeaveGroup", json!(["g"])).await;
    call(&mut b1, "SendToGroup", json!(["g", "gone"])).await;
    call(&mut b1, "Broadcast", json!(["end"])).await;
    assert_eq!(
        received(&mut a1).await,
        message("Broadcast", json!(["end"]))
    );
    assert_eq!(
        received(&mut b1).await,
        message("Broadcast", json!(["end"]))
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_user_is_reached_on_every_node_it_is_connected_to() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (mut ann_a, _) = peer(&a, "test", Protocol::Json, "access_token=ann").await;
    let (mut ann_b, _) = peer(&b, "test", Protocol::MessagePack, "access_token=ann").await;
    let (mut bob, _) = peer(&b, "test", Protocol::Json, "access_token=bob").await;

    call(&mut bob, "SendToUser", json!(["ann", "u"])).await;
    for p in [&mut ann_a, &mut ann_b] {
        assert_eq!(received(p).await, message("UserMessage", json!(["u"])));
    }
    call(&mut ann_a, "SendToUser", json!(["bob", "back"])).await;
    assert_eq!(
        received(&mut bob).await,
        message("UserMessage", json!(["back"]))
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn one_connection_on_another_node_is_reached_by_its_id() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (mut a1, a1_id) = peer(&a, "relay", Protocol::Json, "").await;
    let (mut b1, b1_id) = peer(&b, "relay", Protocol::MessagePack, "").await;
    let (mut b2, _) = peer(&b, "relay", Protocol::Json, "").await;

    call(&mut a1, "SendToConnection", json!([b1_id, "to b1"])).await;
    assert_eq!(received(&mut b1).await, message("Direct", json!(["to b1"])));
    call(&mut b2, "SendToConnection", json!([a1_id, "to a1"])).await;
    assert_eq!(received(&mut a1).await, message("Direct", json!(["to a1"])));
    // A connection of this node is served without Redis: nothing was published for it.
    let published = b.backplane_stats().unwrap().published;
    call(&mut b2, "SendToConnection", json!([b1_id, "local"])).await;
    assert_eq!(received(&mut b1).await, message("Direct", json!(["local"])));
    assert_eq!(b.backplane_stats().unwrap().published, published);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn adding_a_connection_of_another_node_to_a_group_waits_for_that_nodes_ack() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (mut a1, _) = peer(&a, "test", Protocol::Json, "").await;
    let (mut b1, b1_id) = peer(&b, "test", Protocol::Json, "").await;

    within(a.add_to_group("test", "g", &b1_id)).await.unwrap();
    call(&mut a1, "SendToGroup", json!(["g", "added"])).await;
    assert_eq!(
        received(&mut b1).await,
        message("GroupMessage", json!(["g", "added"]))
    );

    within(a.remove_from_group("test", "g", &b1_id))
        .await
        .unwrap();
    call(&mut a1, "SendToGroup", json!(["g", "removed"])).await;
    call(&mut a1, "Broadcast", json!(["end"])).await;
    assert_eq!(
        received(&mut b1).await,
        message("Broadcast", json!(["end"]))
    );

    // No node holds this connection: no ack comes, and the call fails after the timeout.
    let error = within(a.add_to_group("test", "g", "nobody"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no node acknowledged"),
        "{error}"
    );
    assert_eq!(a.backplane_stats().unwrap().ack_timeouts, 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_envelope_published_by_another_server_reaches_clients_in_their_protocol() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let a = node(&redis).await;
    let (mut json_peer, _) = peer(&a, "test", Protocol::Json, "").await;
    let (mut msgpack_peer, _) = peer(&a, "test", Protocol::MessagePack, "").await;
    let (mut excluded, excluded_id) = peer(&a, "test", Protocol::Json, "").await;

    // What an ASP.NET Core node writes for Clients.AllExcept([id]).SendAsync("Send", "hi", 2).
    let payload = encode_invocation(&Invocation {
        excluded: vec![excluded_id],
        messages: vec![
            (
                "json".into(),
                b"{\"type\":1,\"target\":\"Send\",\"arguments\":[\"hi\",2]}\x1e".to_vec(),
            ),
            (
                "messagepack".into(),
                b"\x0f\x96\x01\x80\xc0\xa4Send\x92\xa2hi\x02\x90".to_vec(),
            ),
        ],
        return_to: None,
    });
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = within(client.get_multiplexed_async_connection())
        .await
        .unwrap();
    let publish =
        |channel: &str, payload: Vec<u8>| redis::cmd("PUBLISH").arg(channel).arg(payload).clone();
    let receivers: i64 = within(publish("it-Contoso.TestHub:all", payload).query_async(&mut conn))
        .await
        .unwrap();
    assert_eq!(receivers, 1, "the node's one pattern subscription");
    for p in [&mut json_peer, &mut msgpack_peer] {
        assert_eq!(received(p).await, message("Send", json!(["hi", 2])));
    }

    // Garbage is counted and dropped; the node keeps serving.
    let _: i64 =
        within(publish("it-Contoso.TestHub:all", b"\x92\x90\xc1".to_vec()).query_async(&mut conn))
            .await
            .unwrap();
    within(a.wait_for_backplane(|s| s.malformed == 1))
        .await
        .unwrap();
    call(&mut excluded, "Broadcast", json!(["after"])).await;
    assert_eq!(
        received(&mut excluded).await,
        message("Broadcast", json!(["after"]))
    );
    a.shutdown().await;
}

#[tokio::test]
async fn a_node_whose_redis_is_unreachable_at_start_fails_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config {
        redis: Some(RedisConfig::new(format!("redis://127.0.0.1:{port}"))),
        ..Config::default()
    };
    let error = within(talkback_fixture::spawn(config)).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot reach Redis at redis://127.0.0.1:{port}")),
        "{error}"
    );
    let config = Config {
        redis: Some(RedisConfig::new("http://nope")),
        ..Config::default()
    };
    let error = within(talkback_fixture::spawn(config)).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
}

#[tokio::test]
async fn losing_redis_keeps_local_sends_working_and_the_nodes_reconnect_when_it_is_back() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (mut a1, _) = peer(&a, "test", Protocol::Json, "").await;
    let (mut b1, _) = peer(&b, "test", Protocol::Json, "").await;
    call(&mut a1, "JoinGroup", json!(["g"])).await;

    let port = redis.kill().await;
    within(a.wait_for_backplane(|s| !s.connected && s.connection_losses == 1))
        .await
        .unwrap();
    // Local fan-out goes on; the cross-node part fails visibly.
    call(&mut a1, "Broadcast", json!(["alone"])).await;
    assert_eq!(
        received(&mut a1).await,
        message("Broadcast", json!(["alone"]))
    );
    call(&mut a1, "SendToGroup", json!(["g", "alone"])).await;
    assert_eq!(
        received(&mut a1).await,
        message("GroupMessage", json!(["g", "alone"]))
    );
    within(a.wait_for_backplane(|s| s.publish_failures >= 1))
        .await
        .unwrap();
    let metrics = within(http().get(format!("{}/metrics", a.url())).send())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\ntalkback_backplane_connected 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("\ntalkback_backplane_publish_failures_total 0\n"),
        "{metrics}"
    );

    // Redis comes back on the same port: both nodes subscribe again, groups kept.
    let _redis = Redis::on_port(port).await;
    for node in [&a, &b] {
        within(node.wait_for_backplane(|s| s.connected && s.reconnects == 1))
            .await
            .unwrap();
    }
    call(&mut b1, "SendToGroup", json!(["g", "back"])).await;
    assert_eq!(
        received(&mut a1).await,
        message("GroupMessage", json!(["g", "back"]))
    );
    call(&mut a1, "Broadcast", json!(["both"])).await;
    assert_eq!(
        received(&mut b1).await,
        message("Broadcast", json!(["both"]))
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_client_result_crosses_nodes_with_a_value_or_an_error_across_protocols() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (mut caller, _) = peer(&a, "relay", Protocol::Json, "").await;
    let (mut callee, callee_id) = peer(&b, "relay", Protocol::MessagePack, "").await;

    for (answer, expected) in [
        (CompletionResult::Value(callee.arg(42)), Ok(json!(42))),
        (CompletionResult::Error("no".into()), Err("no".to_owned())),
    ] {
        caller
            .invoke(
                "ask",
                "AskConnection",
                vec![
                    caller.arg(&callee_id),
                    caller.arg("Question"),
                    caller.arg(5),
                ],
            )
            .await;
        let HubMessage::Invocation(question) = within(callee.next()).await.unwrap() else {
            panic!("the callee is asked");
        };
        assert_eq!(question.target, "Question");
        assert_eq!(question.arguments[0].decode::<Value>().unwrap(), json!(5));
        let id = question
            .invocation_id
            .expect("a client result carries an id");
        callee
            .send(HubMessage::Completion(Completion {
                invocation_id: id,
                result: answer,
                headers: Default::default(),
            }))
            .await;
        let HubMessage::Completion(done) = within(caller.next()).await.unwrap() else {
            panic!("the caller gets its completion");
        };
        assert_eq!(done.invocation_id, "ask");
        match (done.result, expected) {
            (CompletionResult::Value(v), Ok(e)) => assert_eq!(v.decode::<Value>().unwrap(), e),
            (CompletionResult::Error(t), Err(e)) => assert_eq!(t, e),
            (other, e) => panic!("{other:?} where {e:?} was expected"),
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_stopped_node_leaves_the_cluster_and_its_clients_carry_on_at_another() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = within(client.get_multiplexed_async_connection())
        .await
        .unwrap();
    // PUBLISH answers how many subscribers got it: an ack for a server that does not exist
    // reaches every node's pattern subscription and changes nothing.
    let probe = redis::cmd("PUBLISH")
        .arg("it-Contoso.TestHub:internal:ack:nobody")
        .arg(&b"\x91\x01"[..])
        .clone();
    let subscribers: i64 = within(probe.query_async(&mut conn)).await.unwrap();
    assert_eq!(subscribers, 2, "one pattern subscription per node");

    let (mut a1, _) = peer(&a, "test", Protocol::Json, "").await;
    let (mut b1, _) = peer(&b, "test", Protocol::Json, "").await;
    call(&mut b1, "JoinGroup", json!(["g"])).await;
    b.shutdown().await;
    match within(b1.next()).await {
        Some(HubMessage::Close(close)) => assert!(close.allow_reconnect),
        other => panic!("expected a Close allowing reconnect, got {other:?}"),
    }
    let subscribers: i64 = within(probe.query_async(&mut conn)).await.unwrap();
    assert_eq!(subscribers, 1, "the stopped node unsubscribed");

    // The client reconnects to the remaining node (a new connection) and joins again.
    let (mut b1_again, _) = peer(&a, "test", Protocol::Json, "").await;
    call(&mut b1_again, "JoinGroup", json!(["g"])).await;
    call(&mut a1, "SendToGroup", json!(["g", "still here"])).await;
    assert_eq!(
        received(&mut b1_again).await,
        message("GroupMessage", json!(["g", "still here"]))
    );
    a.shutdown().await;
}

/// The targets a native client records in the cross-node tests (each with one argument).
const TARGETS: [&str; 4] = ["Broadcast", "GroupMessage", "UserMessage", "Direct"];

/// A started native client of the `relay` hub on `server`, over one transport and protocol, as
/// `user` (a plain access token) if given; each call of [`TARGETS`] it receives is sent to the
/// returned channel as `(target, argument)`.
async fn native(
    server: &Server,
    transport: TransportKind,
    protocol: Protocol,
    user: Option<&str>,
) -> (HubConnection, mpsc::UnboundedReceiver<(String, Value)>) {
    let mut builder = HubConnectionBuilder::new(server.hub_url("relay"))
        .with_transports(TransportSet::only(transport))
        .with_protocol(protocol)
        .with_http_timeout(Duration::from_secs(5));
    if let Some(user) = user {
        let user = user.to_owned();
        builder = builder.with_access_token_factory(move || {
            let user = user.clone();
            async move { Ok(user) }
        });
    }
    let conn = builder.build().expect("the client builds");
    let (tx, rx) = mpsc::unbounded_channel();
    for target in TARGETS {
        let tx = tx.clone();
        conn.on(target, move |(value,): (Value,)| {
            let _ = tx.send((target.to_owned(), value));
        });
    }
    within(conn.start()).await.expect("the client starts");
    (conn, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_clients_on_sse_and_long_polling_receive_every_kind_of_send_from_another_node() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (sender, _) = native(&a, TransportKind::WebSockets, Protocol::Json, None).await;
    for (transport, protocol) in [
        (TransportKind::ServerSentEvents, Protocol::Json),
        (TransportKind::LongPolling, Protocol::Json),
        (TransportKind::LongPolling, Protocol::MessagePack),
    ] {
        let tag = format!("{}-{}", transport.name(), protocol.name());
        let user = format!("user-{tag}");
        let (receiver, mut got) = native(&b, transport, protocol, Some(&user)).await;
        let id = receiver.connection_id().unwrap();
        assert!(
            b.connection_info(&id).is_some(),
            "{tag}: the receiver is on node B"
        );
        within(receiver.invoke::<()>("JoinGroup", (format!("g-{tag}"),)))
            .await
            .unwrap();
        let sends = [
            ("Broadcast", json!([format!("all {tag}")])),
            (
                "SendToGroup",
                json!([format!("g-{tag}"), format!("group {tag}")]),
            ),
            ("SendToUser", json!([user, format!("user {tag}")])),
            ("SendToConnection", json!([id, format!("one {tag}")])),
        ];
        for ((method, args), target) in sends.into_iter().zip(TARGETS) {
            let args: Vec<Value> = args.as_array().unwrap().clone();
            within(sender.invoke::<()>(method, &args)).await.unwrap();
            let text = args.last().unwrap().clone();
            assert_eq!(
                within(got.recv()).await,
                Some((target.to_owned(), text)),
                "{tag}: {method} from node A"
            );
        }
        within(receiver.stop()).await.unwrap();
    }
    within(sender.stop()).await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

/// Two Azure-mode (serverless) nodes on one Redis.
async fn azure_node(redis: &Redis) -> Server {
    let config = Config {
        redis: Some(redis_config(redis)),
        ..Config::default()
    };
    azure_kit::azure_fixture_with(config, azure_kit::settings(ServiceMode::Serverless)).await
}

/// The next invocation of a service-mode peer: its target.
async fn next_target(peer: &mut Peer) -> String {
    loop {
        if let HubMessage::Invocation(i) = within(peer.next()).await.expect("a message") {
            return i.target;
        }
    }
}

/// Sends "Marker" through `server` to the connection `id` alone and checks it is the next thing
/// `peer` receives (so nothing else reached it before).
async fn expect_only_marker(server: &Server, peer: &mut Peer, id: &str) {
    let path = format!("/api/v1/hubs/feed/connections/{id}");
    rest_send(server, &path, "Marker").await;
    assert_eq!(next_target(peer).await, "Marker");
}

/// `POST {path}` on `server`'s REST API with `target()` as the payload: 202.
async fn rest_send(server: &Server, path: &str, target: &str) {
    let (status, _, body) = azure_kit::rest(
        server,
        Method::POST,
        path,
        azure_kit::payload(target, json!([])),
    )
    .await;
    assert_eq!(status, 202, "POST {path}: {body}");
}

#[tokio::test]
async fn a_user_added_to_a_group_with_a_ttl_on_one_node_is_in_it_on_every_node_until_it_expires() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (azure_node(&redis).await, azure_node(&redis).await);
    let (mut ann, ann_id) = azure_kit::service_peer(&b, "feed", Some("ann"), Protocol::Json).await;
    let received_before = b.backplane_stats().unwrap().received;

    // Through node A's REST API; ann is connected to node B only.
    let started = std::time::Instant::now();
    let short = "/api/v1/hubs/feed/groups/short/users/ann?ttl=1";
    let long = "/api/v1/hubs/feed/groups/long/users/ann";
    assert_eq!(azure_kit::rest(&a, Method::PUT, short, None).await.0, 202);
    assert_eq!(azure_kit::rest(&a, Method::PUT, long, None).await.0, 202);
    within(b.wait_for_backplane(|s| s.received >= received_before + 2))
        .await
        .unwrap();
    let check_on_b = "/api/v1/hubs/feed/groups/short/users/ann";
    assert_eq!(
        azure_kit::rest(&b, Method::HEAD, check_on_b, None).await.0,
        200
    );
    rest_send(&a, "/api/v1/hubs/feed/groups/short", "Early").await;
    assert_eq!(next_target(&mut ann).await, "Early");

    // The ttl is the behaviour under test, so time must pass: node B's membership is checked
    // until it is gone (at most 5 s).
    loop {
        if azure_kit::rest(&b, Method::HEAD, check_on_b, None).await.0 == 404 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still a member on node B"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before the ttl"
    );
    rest_send(&a, "/api/v1/hubs/feed/groups/short", "Late").await;
    rest_send(&a, "/api/v1/hubs/feed/groups/long", "Long").await;
    assert_eq!(
        next_target(&mut ann).await,
        "Long",
        "expired on node B, kept without ttl"
    );

    // Removing the user on node A removes it on node B too.
    let received_before = b.backplane_stats().unwrap().received;
    assert_eq!(azure_kit::rest(&a, Method::DELETE, long, None).await.0, 202);
    within(b.wait_for_backplane(|s| s.received > received_before))
        .await
        .unwrap();
    rest_send(&a, "/api/v1/hubs/feed/groups/long", "Gone").await;
    expect_only_marker(&b, &mut ann, &ann_id).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn rest_sends_on_one_node_reach_everyone_a_user_a_connection_and_a_group_on_another() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (azure_node(&redis).await, azure_node(&redis).await);
    let (mut ann, ann_id) = azure_kit::service_peer(&b, "feed", Some("ann"), Protocol::Json).await;
    let (mut bob, bob_id) =
        azure_kit::service_peer(&b, "feed", Some("bob"), Protocol::MessagePack).await;

    // Each send goes through node A's REST API; both peers are connected to node B only.
    rest_send(&a, "/api/v1/hubs/feed", "All").await;
    assert_eq!(next_target(&mut ann).await, "All");
    assert_eq!(next_target(&mut bob).await, "All");

    rest_send(
        &a,
        &format!("/api/v1/hubs/feed?excluded={ann_id}"),
        "NotAnn",
    )
    .await;
    assert_eq!(next_target(&mut bob).await, "NotAnn");

    rest_send(&a, "/api/v1/hubs/feed/users/ann", "ToAnn").await;
    assert_eq!(
        next_target(&mut ann).await,
        "ToAnn",
        "not NotAnn: ann was excluded"
    );

    rest_send(
        &a,
        &format!("/api/v1/hubs/feed/connections/{bob_id}"),
        "ToBob",
    )
    .await;
    assert_eq!(next_target(&mut bob).await, "ToBob");

    // A connection of node B added to a group through node A, then sent to through node A.
    let join = format!("/api/v1/hubs/feed/groups/team/connections/{bob_id}");
    assert_eq!(azure_kit::rest(&a, Method::PUT, &join, None).await.0, 200);
    rest_send(&a, "/api/v1/hubs/feed/groups/team", "ToTeam").await;
    assert_eq!(next_target(&mut bob).await, "ToTeam");
    assert_eq!(
        azure_kit::rest(&a, Method::DELETE, &join, None).await.0,
        200
    );
    rest_send(&a, "/api/v1/hubs/feed/groups/team", "Left").await;

    // A connection no node holds: no acknowledgement within the ack timeout (2 s here), 404.
    let nobody = "/api/v1/hubs/feed/groups/team/connections/nobody";
    assert_eq!(azure_kit::rest(&a, Method::PUT, nobody, None).await.0, 404);

    // Nothing else reached ann or bob (bob left the group before "Left"): the next thing each
    // sees is a marker sent to them alone.
    expect_only_marker(&a, &mut ann, &ann_id).await;
    expect_only_marker(&a, &mut bob, &bob_id).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_second_nodes_connections_and_messages_show_up_in_the_first_nodes_metrics() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = (node(&redis).await, node(&redis).await);
    let (_a1, _) = peer(&a, "test", Protocol::Json, "").await;
    let (_b1, _) = peer(&b, "test", Protocol::Json, "").await;
    let (_b2, _) = peer(&b, "test", Protocol::MessagePack, "").await;
    within(a.wait_for_backplane(|s| s.cluster_nodes == 2 && s.cluster_connections == 3))
        .await
        .unwrap();
    let metrics = within(http().get(format!("{}/metrics", a.url())).send())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let b_name = b.backplane_server_name().unwrap();
    let a_name = a.backplane_server_name().unwrap();
    for line in [
        "talkback_cluster_nodes 2".to_owned(),
        "talkback_cluster_connections 3".to_owned(),
        format!("talkback_cluster_node_connections{{node=\"{b_name}\"}} 2"),
        format!("talkback_cluster_node_connections{{node=\"{a_name}\"}} 1"),
    ] {
        assert!(
            metrics.contains(&format!("\n{line}\n")),
            "{line} in:\n{metrics}"
        );
    }
    // Each connection of the test hub was sent a Welcome: node B reports its messages.
    let b_sent = format!("talkback_cluster_node_messages_sent{{node=\"{b_name}\"}} ");
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(b_sent.as_str()))
        .expect("node B's messages")
        .parse()
        .unwrap();
    assert!(sent >= 2, "{sent}");

    // A node that stops deletes its figures: it leaves the count at once.
    b.shutdown().await;
    within(a.wait_for_backplane(|s| s.cluster_nodes == 1 && s.cluster_connections == 1))
        .await
        .unwrap();
    a.shutdown().await;
}
