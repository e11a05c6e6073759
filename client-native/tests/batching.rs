//! Calls made together go out together: the hub messages the driver has when it writes share
//! one WebSocket message (checklist item 1: one frame may hold several records), and the peer
//! gets every message whole.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use talkback::{HubConnectionBuilder, Protocol, TransportKind, TransportSet};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_invocations_all_complete_on_the_fixture_with_either_protocol() {
    let hub = Hub::start().await;
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let conn = connect(&hub, TransportKind::WebSockets, protocol).await;
        let calls = (0..300i64).map(|i| conn.invoke::<i64>("Add", (i, 1)));
        let sums = within(futures::future::join_all(calls)).await;
        for (i, sum) in sums.into_iter().enumerate() {
            assert_eq!(sum.unwrap(), i as i64 + 1, "{protocol:?}");
        }
        within(conn.stop()).await.unwrap();
    }
}

/// A WebSocket hub that answers each `Echo` invocation and counts the WebSocket messages that
/// carried them, until it has `calls` invocations; returns that count.
async fn counting_hub(listener: TcpListener, calls: usize) -> usize {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let handshake = ws.next().await.unwrap().unwrap();
    assert_eq!(
        handshake.into_text().unwrap().as_str(),
        "{\"protocol\":\"json\",\"version\":1}\u{1e}"
    );
    ws.send(Message::text("{}\u{1e}")).await.unwrap();
    let (mut invocations, mut messages) = (0, 0);
    while invocations < calls {
        let Message::Text(text) = ws.next().await.unwrap().unwrap() else {
            continue;
        };
        assert!(
            text.ends_with('\u{1e}'),
            "a message ends with a whole record"
        );
        let mut replies = String::new();
        let mut carried = false;
        for record in text.split_terminator('\u{1e}') {
            let message: serde_json::Value = serde_json::from_str(record).unwrap();
            if message["type"] == 1 {
                carried = true;
                invocations += 1;
                replies += &format!(
                    "{{\"type\":3,\"invocationId\":{},\"result\":{}}}\u{1e}",
                    message["invocationId"], message["arguments"][0]
                );
            }
        }
        if carried {
            messages += 1;
            ws.send(Message::text(replies)).await.unwrap();
        }
    }
    messages
}

#[tokio::test]
async fn invocations_made_together_share_one_websocket_message() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/hub", listener.local_addr().unwrap());
    let hub = tokio::spawn(counting_hub(listener, 50));
    let conn = HubConnectionBuilder::new(url)
        .with_transports(TransportSet::only(TransportKind::WebSockets))
        .skip_negotiation(true)
        .build()
        .unwrap();
    within(conn.start()).await.unwrap();
    // On this single-threaded runtime all 50 calls are queued before the driver runs.
    let calls = (0..50i64).map(|i| conn.invoke::<i64>("Echo", (i,)));
    let echoed = within(futures::future::join_all(calls)).await;
    for (i, value) in echoed.into_iter().enumerate() {
        assert_eq!(value.unwrap(), i as i64);
    }
    let messages = within(hub).await.unwrap();
    assert_eq!(
        messages, 1,
        "50 invocations made together, in one WebSocket message"
    );
    within(conn.stop()).await.ok();
}
