//! Azure service mode, client side: the app-server negotiate, `/client/negotiate` and
//! `/client/` on every transport, token checks, user ids and the connection cap (checklist
//! items 95–98, 111), over real sockets with the native client and raw peers.

#[path = "kit/azure.rs"]
mod azure_kit;
mod kit;

use azure_kit::*;
use kit::*;
use serde_json::{json, Value};
use talkback::{HubConnectionBuilder, TransportKind, TransportSet};
use talkback_core::protocol::HubMessage;
use talkback_fixture::{AzureConfig, ServiceMode};

const COMBOS: [(TransportKind, talkback::Protocol); 5] = [
    (TransportKind::WebSockets, talkback::Protocol::Json),
    (TransportKind::WebSockets, talkback::Protocol::MessagePack),
    (TransportKind::ServerSentEvents, talkback::Protocol::Json),
    (TransportKind::LongPolling, talkback::Protocol::Json),
    (TransportKind::LongPolling, talkback::Protocol::MessagePack),
];

#[tokio::test]
async fn item_95_the_app_negotiate_answers_url_and_access_token_for_the_lower_cased_prefixed_hub() {
    let azure = AzureConfig {
        application_name: Some("Shop".into()),
        ..settings(ServiceMode::Default)
    };
    let server = azure_fixture(azure).await;
    let url = format!("{}/api/negotiate?hub=Test&userId=ann", server.url());
    let response = within(http().post(&url).send()).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["accessToken", "url"], "exactly the two fields");
    assert_eq!(
        body["url"],
        format!("{}/client/?hub=shop_test", server.url())
    );
    let validator =
        talkback_core::azure::TokenValidator::new(vec![talkback_core::azure::AccessKey::new(KEY)]);
    let valid = validator
        .validate(
            body["accessToken"].as_str().unwrap(),
            body["url"].as_str().unwrap(),
            std::time::SystemTime::now(),
        )
        .expect("the token is signed with the key, for the client URL");
    assert_eq!(valid.user_id.as_deref(), Some("ann"));
    assert_eq!(valid.audience, body["url"].as_str().unwrap());
    // GET works as well (the Functions binding's negotiate is often a GET).
    let get = within(http().get(&url).send()).await.unwrap();
    assert_eq!(get.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn the_app_negotiate_refuses_bad_hub_names_and_unknown_hubs_in_default_mode() {
    let server = azure_fixture(settings(ServiceMode::Default)).await;
    for (query, expected) in [
        ("", 400),
        ("hub=", 400),
        ("hub=1abc", 400),
        ("hub=a%20b", 400),
        ("hub=%3Cscript%3E", 400),
        ("hub=nosuchhub", 404),
        ("hub=test&userId=%20%20", 400),
    ] {
        let url = format!("{}/api/negotiate?{query}", server.url());
        let response = within(http().post(url).send()).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{query}");
        assert!(
            !response.text().await.unwrap().is_empty(),
            "{query}: a message"
        );
    }
    let put = within(
        http()
            .put(format!("{}/api/negotiate?hub=test", server.url()))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(put.status(), 405);
    server.shutdown().await;
}

#[tokio::test]
async fn item_97_negotiate_without_a_valid_token_gets_401() {
    let server = azure_fixture(settings(ServiceMode::Default)).await;
    let aud = "http://127.0.0.1/client/?hub=test";
    let good = token_with(KEY, aud, None);
    let wrong_key = token_with("another-key", aud, None);
    let other_hub = token_with(KEY, "http://127.0.0.1/client/?hub=chat", None);
    let other_host = token_with(KEY, "http://example.com/client/?hub=test", None);
    let mut tampered = good.clone();
    tampered.insert(tampered.len() - 2, 'x');
    for (label, token) in [
        ("no token", None),
        ("wrong key", Some(wrong_key)),
        ("another hub", Some(other_hub)),
        ("another host", Some(other_host)),
        ("expired", Some(expired_token(aud))),
        ("tampered", Some(tampered)),
        ("not a JWT", Some("abc".to_owned())),
        ("too long", Some("a".repeat(5000))),
    ] {
        let (status, _) = service_negotiate(&server, "test", token.as_deref()).await;
        assert_eq!(status, 401, "{label}");
    }
    let (status, body) = service_negotiate(&server, "test", Some(&good)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["connectionToken"].is_string());
    // A GET is not a negotiate.
    let get = within(
        http()
            .get(format!("{}/client/negotiate?hub=test", server.url()))
            .bearer_auth(&good)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(get.status(), 405);
    server.shutdown().await;
}

#[tokio::test]
async fn item_97_connect_without_a_valid_token_gets_401_on_every_transport() {
    let server = azure_fixture(settings(ServiceMode::Default)).await;
    let good = client_token(&server, "test", None);
    let (_, body) = service_negotiate(&server, "test", Some(&good)).await;
    let id = body["connectionToken"].as_str().unwrap().to_owned();
    let base = format!("{}/client/?hub=test&id={id}", server.url());
    let bad = token_with("another-key", "http://127.0.0.1/client/?hub=test", None);
    for token in [None, Some(bad.as_str())] {
        let mut get = http().get(&base);
        let mut sse = http().get(&base).header("accept", "text/event-stream");
        let mut post = http().post(&base).body("{}\x1e");
        let mut delete = http().delete(&base);
        if let Some(token) = token {
            get = get.bearer_auth(token);
            sse = sse.bearer_auth(token);
            post = post.bearer_auth(token);
            delete = delete.bearer_auth(token);
        }
        for (label, request) in [
            ("poll", get),
            ("sse", sse),
            ("post", post),
            ("delete", delete),
        ] {
            let response = within(request.send()).await.unwrap();
            assert_eq!(response.status(), 401, "{label} with {token:?}");
        }
        let ws = format!("{}&access_token={}", base, token.unwrap_or("")).replacen("http", "ws", 1);
        let refused = within(tokio_tungstenite::connect_async(ws)).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401)
            }
            other => panic!("the upgrade must be refused with 401: {other:?}"),
        }
    }
    // The same requests with the token succeed: the first long poll starts the connection.
    let poll = within(http().get(&base).bearer_auth(&good).send())
        .await
        .unwrap();
    assert_eq!(poll.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn item_36_the_authorization_header_wins_over_the_access_token_query() {
    let server = azure_fixture(settings(ServiceMode::Default)).await;
    let good = client_token(&server, "test", None);
    let bad = token_with("another-key", "http://127.0.0.1/client/?hub=test", None);
    let negotiate = |header: &str, query: &str| {
        http()
            .post(format!(
                "{}/client/negotiate?hub=test&negotiateVersion=1&access_token={query}",
                server.url()
            ))
            .bearer_auth(header.to_owned())
    };
    let ok = within(negotiate(&good, &bad).send()).await.unwrap();
    assert_eq!(ok.status(), 200);
    let refused = within(negotiate(&bad, &good).send()).await.unwrap();
    assert_eq!(refused.status(), 401);
    // The query alone is enough (browsers cannot set headers on WebSockets and EventSource).
    let query_only = within(
        http()
            .post(format!(
                "{}/client/negotiate?hub=test&negotiateVersion=1&access_token={good}",
                server.url()
            ))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(query_only.status(), 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_98_the_native_client_follows_the_two_step_negotiate_on_every_transport_as_the_tokens_user(
) {
    let server = azure_fixture(settings(ServiceMode::Default)).await;
    let app = format!("{}&userId=ann", server.azure_app_url("test").unwrap());
    for (transport, protocol) in COMBOS {
        let label = format!("{transport:?}/{protocol:?}");
        let conn = HubConnectionBuilder::new(app.clone())
            .with_transports(TransportSet::only(transport))
            .with_protocol(protocol)
            .build()
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        conn.on("Notice", move |(text,): (String,)| {
            let _ = tx.send(text);
        });
        within(conn.start())
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let user: Option<String> = within(conn.invoke("GetUserId", ()))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(user.as_deref(), Some("ann"), "{label}");
        let query: Value = within(conn.invoke("GetQuery", ())).await.unwrap();
        assert_eq!(query["hub"], "test", "{label}: connected through /client/");
        // The user id from the token drives user-targeted REST sends.
        let (status, _, _) = rest(
            &server,
            reqwest::Method::POST,
            "/api/v1/hubs/test/users/ann",
            payload("Notice", json!([label.clone()])),
        )
        .await;
        assert_eq!(status, 202);
        assert_eq!(within(rx.recv()).await.as_deref(), Some(label.as_str()));
        within(conn.stop()).await.unwrap();
    }
    server.shutdown().await;
}

#[tokio::test]
async fn item_95_clients_of_the_prefixed_hub_reach_the_fixtures_own_hub() {
    let azure = AzureConfig {
        application_name: Some("shop".into()),
        ..settings(ServiceMode::Default)
    };
    let server = azure_fixture(azure).await;
    let (mut peer, id) = service_peer(&server, "shop_test", Some("bob"), Protocol::Json).await;
    let welcome = peer.next().await.unwrap();
    assert!(matches!(welcome, HubMessage::Invocation(ref i) if i.target == "Welcome"));
    let info = server.connection_info(&id).unwrap();
    assert_eq!(info.hub, "test");
    assert_eq!(info.user.as_deref(), Some("bob"));
    // Without the prefix there is no such hub on this "service".
    let (status, body) =
        service_negotiate(&server, "test", Some(&client_token(&server, "test", None))).await;
    assert_eq!(status, 200);
    assert!(body["error"].as_str().unwrap().contains("No app server"));
    server.shutdown().await;
}

#[tokio::test]
async fn item_111_the_connection_cap_answers_429_at_negotiate() {
    let azure = AzureConfig {
        max_client_connections: 2,
        ..settings(ServiceMode::Default)
    };
    let server = azure_fixture(azure).await;
    let (_a, _) = service_peer(&server, "test", None, Protocol::Json).await;
    let (_b, b) = service_peer(&server, "test", None, Protocol::Json).await;
    let token = client_token(&server, "test", None);
    let url = format!(
        "{}/client/negotiate?hub=test&negotiateVersion=1",
        server.url()
    );
    let response = within(http().post(&url).bearer_auth(&token).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.text().await.unwrap(),
        "Connection count reaches limit."
    );
    // A connection that ends frees its place.
    server.connection_faults(&b).unwrap().abort();
    within(server.wait_for_connection_gone(&b)).await;
    let (status, _) = service_negotiate(&server, "test", Some(&token)).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn item_111_the_free_tier_allows_20_connections() {
    let server = azure_fixture(settings(ServiceMode::Default).free_tier()).await;
    let token = client_token(&server, "test", None);
    let mut peers = Vec::new();
    for _ in 0..20 {
        peers.push(service_peer(&server, "test", None, Protocol::Json).await);
    }
    let (status, _) = service_negotiate(&server, "test", Some(&token)).await;
    assert_eq!(status, 429);
    server.shutdown().await;
}

#[tokio::test]
async fn the_connection_string_names_the_fixture_and_its_primary_key() {
    let azure = AzureConfig {
        access_keys: vec![
            talkback_core::azure::AccessKey::new(KEY),
            talkback_core::azure::AccessKey::new(SECONDARY),
        ],
        ..settings(ServiceMode::Serverless)
    };
    let server = azure_fixture(azure).await;
    let text = server.azure_connection_string().unwrap();
    assert_eq!(
        text,
        format!(
            "Endpoint=http://127.0.0.1;Port={};AccessKey={KEY};Version=1.0;",
            server.addr().port()
        )
    );
    let parsed = talkback_core::azure::ConnectionString::parse(&text).unwrap();
    assert_eq!(
        parsed.client_url("Chat"),
        format!("{}/client/?hub=chat", server.url())
    );
    server.shutdown().await;
    let plain = kit::fixture(talkback_fixture::Config::default()).await;
    assert_eq!(plain.azure_connection_string(), None);
    let response = within(
        http()
            .post(format!("{}/client/negotiate?hub=x", plain.url()))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        404,
        "no service routes without Azure mode"
    );
    plain.shutdown().await;
}

#[tokio::test]
async fn the_fixture_binary_prints_an_emulator_style_connection_string() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_talkback-fixture"))
        .args(["--port", "0", "--azure", "--azure-access-key", KEY])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = within(async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("azure connection string: ") {
                return rest.to_owned();
            }
        }
        panic!("no connection string printed")
    })
    .await;
    let parsed = talkback_core::azure::ConnectionString::parse(&line).unwrap();
    assert_eq!(parsed.endpoint.as_str(), "http://127.0.0.1/");
    assert!(parsed.port.is_some());
    assert_eq!(parsed.version, "1.0");
    assert_eq!(parsed.access_key.unwrap().expose_secret(), KEY);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_metrics_count_service_mode_connections_and_rest_messages() {
    let server = azure_fixture(settings(ServiceMode::Serverless)).await;
    let (mut peer, id) = service_peer(&server, "feed", None, Protocol::Json).await;
    let path = format!("/api/v1/hubs/feed/connections/{id}");
    let (status, _, _) = rest(
        &server,
        reqwest::Method::POST,
        &path,
        payload("M", json!([1])),
    )
    .await;
    assert_eq!(status, 202);
    assert!(matches!(peer.next().await, Some(HubMessage::Invocation(ref i)) if i.target == "M"));
    let metrics = within(http().get(format!("{}/metrics", server.url())).send())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("talkback_connections{transport=\"WebSockets\",protocol=\"json\"} 1\n"),
        "{metrics}"
    );
    let sent = metrics
        .lines()
        .find_map(|l| l.strip_prefix("talkback_messages_sent_total "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(sent >= 1, "{metrics}");
    server.shutdown().await;
}
