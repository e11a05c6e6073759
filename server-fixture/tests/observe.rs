//! The test hooks of `Server`: `connection_info`, `connections`, `wait_for_connections` and
//! `wait_for_connection_gone`, which the client suites use to see what a client did on the wire
//! (its transport, protocol, handshake version and the Pings it sent).

mod kit;

use futures::FutureExt;
use kit::*;
use talkback_core::protocol::HubMessage;
use talkback_core::transport::TransportKind;
use talkback_fixture::Config;

#[tokio::test]
async fn connection_info_reports_transport_protocol_version_user_and_what_the_client_sent() {
    let server = fixture(Config::default()).await;
    let url = format!(
        "{}/negotiate?negotiateVersion=1&access_token=alice",
        server.hub_url("test")
    );
    let body: serde_json::Value = serde_json::from_slice(
        &within(http().post(url).send())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let id = body["connectionId"].as_str().unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    let info = server.connection_info(id).expect("listed after negotiate");
    assert_eq!(info.transport, None, "no transport before one attached");
    assert_eq!(info.handshake_version, None);
    assert_eq!(info.user.as_deref(), Some("alice"));

    let ws = open(&ws_url(&server, &format!("id={token}&access_token=alice"))).await;
    let mut peer = Peer::handshake(ws, Protocol::MessagePack, 1).await;
    assert!(matches!(peer.next().await, Some(HubMessage::Invocation(_))));
    for _ in 0..3 {
        peer.send(HubMessage::Ping).await;
    }
    peer.invoke("1", "Add", vec![peer.arg(1), peer.arg(2)])
        .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(serde_json::json!(3))
    );
    // The Completion came after the session read the Pings: the counters are final.
    let info = server.connection_info(id).unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.hub, "test");
    assert_eq!(info.transport, Some(TransportKind::WebSockets));
    assert_eq!(info.protocol, Some(Protocol::MessagePack));
    assert_eq!(info.handshake_version, Some(1));
    assert_eq!(info.pings_received, 3);
    assert_eq!(info.messages_received, 4);
    assert_eq!(server.connections(Some("test")), vec![info]);
    assert!(server.connections(Some("chat")).is_empty());
    assert_eq!(server.connection_info("nobody"), None);
    server.shutdown().await;
}

#[tokio::test]
async fn wait_for_connections_resolves_on_the_handshake_not_before() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "negotiateVersion=1").await;
    let token = body["connectionToken"].as_str().unwrap();
    let mut ws = open(&ws_url(&server, &format!("id={token}"))).await;
    let mut waiting = Box::pin(server.wait_for_connections(Some("test"), 1));
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "negotiated and attached, but no handshake yet"
    );
    use futures::SinkExt;
    within(ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")))
        .await
        .unwrap();
    let ready = within(waiting).await;
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].id, body["connectionId"].as_str().unwrap());
    assert_eq!(ready[0].handshake_version, Some(1));

    // Another hub's count is separate; `None` counts every hub.
    assert!(Box::pin(server.wait_for_connections(Some("chat"), 1))
        .now_or_never()
        .is_none());
    assert_eq!(within(server.wait_for_connections(None, 1)).await.len(), 1);

    let id = ready[0].id.clone();
    assert!(Box::pin(server.wait_for_connection_gone(&id))
        .now_or_never()
        .is_none());
    drop(ws);
    within(server.wait_for_connection_gone(&id)).await;
    assert_eq!(server.connection_info(&id), None);
    server.shutdown().await;
}

/// ASP.NET Core accepts a version-2 handshake on every transport (`JsonHubProtocol.Version` is
/// 2 and `IsVersionSupported` allows it); stateful reconnect is only ever set up for
/// WebSockets. So the fixture accepts it too, and tests check the version the client sent
/// through `connection_info`.
#[tokio::test]
async fn a_version_2_handshake_over_long_polling_is_accepted_and_reported() {
    let server = fixture(Config::default()).await;
    let (url, id) = long_polling(&server, 2).await;
    let ready = within(server.wait_for_connections(Some("test"), 1)).await;
    assert_eq!(ready[0].id, id);
    let info = server.connection_info(&id).unwrap();
    assert_eq!(info.transport, Some(TransportKind::LongPolling));
    assert_eq!(info.handshake_version, Some(2));
    assert_eq!(info.pings_received, 0, "no client Pings yet");
    let poll = within(http().get(&url).send()).await.unwrap();
    let body = poll.bytes().await.unwrap();
    assert!(body.starts_with(b"{}\x1e"), "{body:?}");
    let ping = within(http().post(&url).body("{\"type\":6}\x1e").send())
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    // The POST is answered once the session has the bytes; a call after it proves it read them.
    within(
        http()
            .post(&url)
            .body("{\"type\":1,\"invocationId\":\"1\",\"target\":\"Add\",\"arguments\":[1,1]}\x1e")
            .send(),
    )
    .await
    .unwrap();
    let mut answered = String::new();
    while !answered.contains("\"invocationId\":\"1\"") {
        let poll = within(http().get(&url).send()).await.unwrap();
        answered.push_str(&poll.text().await.unwrap());
    }
    assert_eq!(server.connection_info(&id).unwrap().pings_received, 1);
    server.shutdown().await;
}

/// `GET /metrics` over a real socket: the value of each sample, by its name with its labels.
async fn scrape(server: &talkback_fixture::Server) -> std::collections::HashMap<String, f64> {
    let response = within(
        http()
            .get(format!("{}/metrics", server.url()))
            .header("origin", "https://elsewhere.example")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS on /metrics"
    );
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

const GAUGE: &str = "talkback_connections{transport=\"WebSockets\",protocol=\"json\"}";

fn disconnects(metrics: &std::collections::HashMap<String, f64>, reason: &str) -> f64 {
    metrics[&format!("talkback_disconnects_total{{reason=\"{reason}\"}}")]
}

fn errors(metrics: &std::collections::HashMap<String, f64>, kind: &str) -> f64 {
    metrics[&format!("talkback_errors_total{{kind=\"{kind}\"}}")]
}

#[tokio::test]
async fn health_answers_ok_and_metrics_move_with_a_connection_and_an_invocation() {
    let server = fixture(Config::default()).await;
    let health = within(
        http()
            .get(format!("{}/health", server.url()))
            .header("origin", "https://elsewhere.example")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert_eq!(health.text().await.unwrap(), "ok");

    let before = scrape(&server).await;
    assert_eq!(before[GAUGE], 0.0);
    assert_eq!(before["talkback_connects_total"], 0.0);
    assert_eq!(before["talkback_messages_received_total"], 0.0);
    assert_eq!(before["talkback_queue_full_aborts_total"], 0.0);
    assert_eq!(disconnects(&before, "client_closed"), 0.0);
    assert_eq!(before["talkback_fan_out_seconds_count"], 0.0);

    let (mut peer, id) = Peer::connect(&server, Protocol::Json).await;
    peer.invoke("1", "Add", vec![peer.arg(1), peer.arg(2)])
        .await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(serde_json::json!(3))
    );
    let during = scrape(&server).await;
    assert_eq!(during[GAUGE], 1.0);
    assert_eq!(
        during["talkback_connections{transport=\"WebSockets\",protocol=\"messagepack\"}"],
        0.0
    );
    assert_eq!(during["talkback_connects_total"], 1.0);
    assert_eq!(disconnects(&during, "client_closed"), 0.0);
    // The invocation in; the Welcome and the Completion out (a keep-alive Ping at most more).
    assert_eq!(during["talkback_messages_received_total"], 1.0);
    assert!(during["talkback_messages_sent_total"] >= 2.0);
    // The handshake request and the invocation in; its response and two messages out.
    assert!(during["talkback_received_bytes_total"] > 40.0);
    assert!(during["talkback_sent_bytes_total"] > 40.0);
    // The Welcome went through the fan-out seam: one observation in the histogram.
    assert_eq!(during["talkback_fan_out_seconds_count"], 1.0);
    assert_eq!(during["talkback_fan_out_seconds_bucket{le=\"+Inf\"}"], 1.0);

    within(peer.ws.close(None)).await.unwrap();
    within(server.wait_for_connection_gone(&id)).await;
    let after = scrape(&server).await;
    assert_eq!(after[GAUGE], 0.0);
    assert_eq!(disconnects(&after, "client_closed"), 1.0);
    assert_eq!(disconnects(&after, "server_closed"), 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_disconnects_by_reason_errors_by_kind_and_every_fan_out() {
    let server = fixture(Config::default()).await;

    // Closed by the hub: `server_closed`.
    let (mut closed, id) = Peer::connect(&server, Protocol::Json).await;
    closed
        .invoke(
            "1",
            "CloseWithMessage",
            vec![closed.arg("bye"), closed.arg(false)],
        )
        .await;
    within(server.wait_for_connection_gone(&id)).await;

    // A message that is not JSON: a protocol error, closed with an error.
    let (mut broken, id) = Peer::connect(&server, Protocol::Json).await;
    use futures::SinkExt;
    within(broken.ws.send(Message::text("not json\x1e")))
        .await
        .unwrap();
    within(server.wait_for_connection_gone(&id)).await;

    // Aborted by a fault, without a Close message.
    let (_aborted, id) = Peer::connect(&server, Protocol::MessagePack).await;
    let abort = within(
        http()
            .post(format!("{}/admin/connections/{id}/abort", server.url()))
            .header("x-talkback-admin", "1")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(abort.status(), 204);
    within(server.wait_for_connection_gone(&id)).await;

    // An unknown method is refused (an invocation error); a Broadcast is one fan-out.
    let (mut caller, _) = Peer::connect(&server, Protocol::Json).await;
    caller.invoke("1", "NoSuchMethod", vec![]).await;
    assert!(matches!(
        caller.next().await,
        Some(HubMessage::Completion(_))
    ));
    caller
        .invoke("2", "Broadcast", vec![caller.arg("hello")])
        .await;
    let mut seen = 0;
    while seen < 2 {
        match caller.next().await.unwrap() {
            HubMessage::Invocation(i) if i.target == "Broadcast" => seen += 1,
            HubMessage::Completion(_) => seen += 1,
            other => panic!("unexpected {other:?}"),
        }
    }

    // A handshake in a protocol nobody speaks.
    let token = negotiate(&server, "negotiateVersion=1").await["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = open(&ws_url(&server, &format!("id={token}"))).await;
    within(ws.send(Message::text("{\"protocol\":\"xml\",\"version\":1}\x1e")))
        .await
        .unwrap();
    let refused = String::from_utf8(read(&mut ws).await.unwrap()).unwrap();
    assert!(refused.contains("not supported"), "{refused}");

    let metrics = scrape(&server).await;
    assert_eq!(disconnects(&metrics, "server_closed"), 1.0);
    assert_eq!(disconnects(&metrics, "protocol_error"), 1.0);
    assert_eq!(disconnects(&metrics, "aborted"), 1.0);
    assert_eq!(disconnects(&metrics, "client_closed"), 0.0);
    assert_eq!(errors(&metrics, "protocol"), 1.0);
    assert_eq!(errors(&metrics, "invocation"), 1.0);
    assert_eq!(errors(&metrics, "handshake"), 1.0);
    assert_eq!(metrics["talkback_connects_total"], 4.0);
    assert_eq!(
        metrics["talkback_disconnects_total{reason=\"client_timeout\"}"],
        0.0
    );
    // Four Welcomes and the Broadcast went through the fan-out seam.
    assert_eq!(metrics["talkback_fan_out_seconds_count"], 5.0);
    assert!(metrics["talkback_fan_out_seconds_sum"] > 0.0);
    server.shutdown().await;
}
