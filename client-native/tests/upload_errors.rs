//! Uploads through the raw API: an item `Err(text)` ends the upload with that error (the
//! server's stream fails with it, as with the reference client's `Subject.error`), and one call
//! can take several uploads.

mod common;

use common::*;
use futures::stream;
use serde_json::{json, Value};
use talkback::{Protocol, RawValue, TransportKind};

fn raw(protocol: Protocol, value: Value) -> RawValue {
    RawValue::encode(protocol, &value).expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_ended_with_an_error_fails_the_call_with_that_text() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let items = stream::iter(vec![
            Ok(raw(protocol, json!(1))),
            Err("the subject failed".to_string()),
        ]);
        let error = within(conn.invoke_raw_with_uploads("UploadSum", Vec::new(), vec![items]))
            .await
            .unwrap_err();
        assert_eq!(
            error.server_message(),
            Some("the subject failed"),
            "{l}: {error}"
        );
        within(conn.stop()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invocation_takes_several_uploads_in_order() {
    let hub = Hub::start().await;
    let protocol = Protocol::Json;
    let conn = connect(&hub, TransportKind::WebSockets, protocol).await;
    let first = stream::iter(vec![
        Ok(raw(protocol, json!("a"))),
        Ok(raw(protocol, json!("b"))),
    ]);
    let second = stream::iter(vec![Ok(raw(protocol, json!("z")))]);
    let result =
        within(conn.invoke_raw_with_uploads("UploadCollect", Vec::new(), vec![first, second]))
            .await
            .unwrap()
            .expect("a result");
    // The test hub reads the invocation's first upload.
    assert_eq!(result.decode::<Value>().unwrap(), json!(["a", "b"]));
    let sum: i64 = within(conn.invoke("Add", (1, 2))).await.unwrap();
    assert_eq!(sum, 3, "the connection is still fine");
    within(conn.stop()).await.unwrap();
}
