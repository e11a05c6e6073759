//! Negotiate, access tokens and CORS: the fixture against raw peers over real loopback sockets, one test per
//! `[server]` item of the conformance checklist (docs/protocol).

mod kit;

use kit::*;

#[tokio::test]
async fn item_20_negotiate_v1_returns_an_id_a_distinct_token_and_transports_in_order() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "negotiateVersion=1").await;
    assert_eq!(body["negotiateVersion"], 1);
    assert_ne!(body["connectionId"], body["connectionToken"]);
    let names: Vec<&str> = body["availableTransports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transport"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["WebSockets", "ServerSentEvents", "LongPolling"]);
    assert_eq!(
        body["availableTransports"][1]["transferFormats"],
        json!(["Text"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_21_negotiate_v0_has_no_token_and_the_id_connects() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "").await;
    assert!(body.get("connectionToken").is_none(), "{body}");
    let id = body["connectionId"].as_str().unwrap();
    let mut peer = Peer::handshake(
        open(&ws_url(&server, &format!("id={id}"))).await,
        Protocol::Json,
        1,
    )
    .await;
    assert!(matches!(peer.next().await, Some(HubMessage::Invocation(i)) if i.target == "Welcome"));
    server.shutdown().await;
}

#[tokio::test]
async fn item_22_version_errors_come_with_status_200_and_non_post_gets_405() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "negotiateVersion=one").await;
    assert_eq!(
        body,
        json!({"error": "The client requested a non-integer protocol version."})
    );
    let url = format!("{}/negotiate", server.hub_url("test"));
    let response = within(http().get(&url).send()).await.unwrap();
    assert_eq!(response.status(), 405);
    server.shutdown().await;
}

#[tokio::test]
async fn item_36_the_authorization_header_wins_over_the_access_token_query() {
    let server = fixture(Config::default()).await;
    let url = format!(
        "{}/negotiate?negotiateVersion=1&access_token=query-user",
        server.hub_url("test")
    );
    let response = within(http().post(&url).bearer_auth("header-user").send())
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let token = body["connectionToken"].as_str().unwrap();
    let mut peer = Peer::handshake(
        open(&ws_url(&server, &format!("id={token}"))).await,
        Protocol::Json,
        1,
    )
    .await;
    peer.next().await;
    peer.invoke("1", "GetUserId", vec![]).await;
    assert_eq!(
        completion_value(&peer.next().await.unwrap()),
        Some(json!("header-user"))
    );

    // Only the query (a browser WebSocket): the query is used.
    let mut ws = open(&ws_url(&server, "access_token=query-user")).await;
    within(ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\x1e")))
        .await
        .unwrap();
    let mut peer = Peer::raw(ws, Protocol::Json);
    let first = read(&mut peer.ws).await.unwrap();
    peer.framer.push(&first[3..]);
    peer.invoke("1", "GetUserId", vec![]).await;
    let mut answer = None;
    while answer.is_none() {
        answer = completion_value(&peer.next().await.unwrap());
    }
    assert_eq!(answer, Some(json!("query-user")));
    server.shutdown().await;
}

#[tokio::test]
async fn item_51_cors_preflight_reflects_the_origin_with_credentials_and_signalr_headers() {
    let server = fixture(Config::default()).await;
    let response = within(
        http()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/negotiate", server.hub_url("test")),
            )
            .header("Origin", "http://app.example")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,x-signalr-user-agent,x-requested-with",
            )
            .send(),
    )
    .await
    .unwrap();
    assert!(response.status().is_success());
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "http://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["authorization", "x-signalr-user-agent", "x-requested-with"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_85_stateful_reconnect_is_echoed_only_when_allowed_and_asked() {
    for (allowed, asked, echoed) in [
        (true, true, true),
        (true, false, false),
        (false, true, false),
    ] {
        let server = fixture(Config {
            allow_stateful_reconnect: allowed,
            ..Default::default()
        })
        .await;
        let query = if asked {
            "negotiateVersion=1&useStatefulReconnect=true"
        } else {
            "negotiateVersion=1"
        };
        let body = negotiate(&server, query).await;
        let said = body["useStatefulReconnect"].as_bool().unwrap_or(false);
        assert_eq!(said, echoed, "allowed {allowed}, asked {asked}: {body}");
        server.shutdown().await;
    }
}
