//! The Server-Sent Events transport: the fixture against raw peers over real loopback sockets, one test per
//! `[server]` item of the conformance checklist (docs/protocol).

mod kit;

use kit::*;

#[tokio::test]
async fn item_06_messagepack_over_sse_is_refused_at_handshake() {
    let server = fixture(Config::default()).await;
    let negotiation = negotiate(&server, "negotiateVersion=1").await;
    let url = format!(
        "{}?id={}",
        server.hub_url("test"),
        negotiation["connectionToken"].as_str().unwrap()
    );
    let mut sse = within(
        http()
            .get(&url)
            .header("Accept", "text/event-stream")
            .send(),
    )
    .await
    .unwrap();
    within(
        http()
            .post(&url)
            .body("{\"protocol\":\"messagepack\",\"version\":1}\x1e")
            .send(),
    )
    .await
    .unwrap();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = within(sse.chunk()).await {
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format."), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn item_38_sse_sends_its_headers_a_comment_first_and_data_lines() {
    let server = fixture(Config::default()).await;
    let body = negotiate(&server, "negotiateVersion=1").await;
    let url = format!(
        "{}?id={}",
        server.hub_url("test"),
        body["connectionToken"].as_str().unwrap()
    );
    let mut sse = within(
        http()
            .get(&url)
            .header("Accept", "text/event-stream")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    assert_eq!(sse.headers()["cache-control"], "no-cache,no-store");
    let first = within(sse.chunk()).await.unwrap().unwrap();
    assert_eq!(&first[..], b":\r\n");
    within(
        http()
            .post(&url)
            .body("{\"protocol\":\"json\",\"version\":1}\x1e")
            .send(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    while !text.contains("Welcome") {
        let chunk = within(sse.chunk()).await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("data: {}\x1e\r\n\r\n"), "{text:?}");
    assert!(
        text.contains("data: {\"type\":1,\"target\":\"Welcome\""),
        "{text:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn item_39_sse_without_an_id_gets_400_and_with_an_unknown_id_404() {
    let server = fixture(Config::default()).await;
    let get = |query: &'static str| {
        let url = format!("{}{query}", server.hub_url("test"));
        async move {
            within(http().get(url).header("Accept", "text/event-stream").send())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get("").await, 400);
    assert_eq!(get("?id=unknown").await, 404);
    server.shutdown().await;
}
