//! Scenario tests of the engine once connected: invocations, streams both ways, client results,
//! keep-alive and server timeout, the state machine and stop (checklist items named in each
//! test).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod peer;

use bytes::Bytes;
use peer::Peer;
use talkback_core::protocol::{
    CancelInvocation, Close, Completion, CompletionResult, HubMessage, Invocation, Protocol,
    StreamItem,
};
use talkback_core::{ClientResult, Duration, Error, Event, State, Transmit, WebSocketEvent};

fn completion(id: &str, result: CompletionResult) -> HubMessage {
    HubMessage::Completion(Completion {
        invocation_id: id.into(),
        result,
        headers: Default::default(),
    })
}

fn item(peer: &Peer, id: &str, value: i64) -> HubMessage {
    HubMessage::StreamItem(StreamItem {
        invocation_id: id.into(),
        item: peer.arg(value),
        headers: Default::default(),
    })
}

fn connected(protocol: Protocol) -> Peer {
    let mut peer = Peer::new(Peer::config(protocol));
    peer.connect_ws();
    peer
}

#[test]
fn item_68_ids_come_from_one_counter_and_send_has_no_invocation_id() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let mut peer = connected(protocol);
        let now = peer.now;
        let (a, _) = peer.conn.invoke(now, "A", vec![], vec![]).unwrap();
        let upload = peer.conn.new_upload_stream();
        let (b, _) = peer.conn.stream(now, "B", vec![], vec![]).unwrap();
        peer.conn.send(now, "C", vec![peer.arg(1)]).unwrap();
        assert_eq!((a.as_str(), upload.as_str(), b.as_str()), ("0", "1", "2"));
        let sent = peer.client_sent();
        assert!(
            matches!(&sent[0], HubMessage::Invocation(i) if i.invocation_id.as_deref() == Some("0"))
        );
        assert!(
            matches!(&sent[1], HubMessage::StreamInvocation(i) if i.invocation_id.as_deref() == Some("2"))
        );
        assert!(
            matches!(&sent[2], HubMessage::Invocation(i) if i.invocation_id.is_none() && i.target == "C")
        );
    }
}

#[test]
fn item_69_invoke_resolves_with_a_result_nothing_or_an_error_and_rejects_stream_items() {
    let mut peer = connected(Protocol::Json);
    let now = peer.now;
    let ids: Vec<String> = (0..4)
        .map(|_| peer.conn.invoke(now, "M", vec![], vec![]).unwrap().0)
        .collect();
    let value = peer.arg(42);
    peer.server_sends(completion(&ids[0], CompletionResult::Value(value.clone())));
    peer.server_sends(completion(&ids[1], CompletionResult::Void));
    peer.server_sends(completion(
        &ids[2],
        CompletionResult::Error("It didn't work!".into()),
    ));
    let stream_item = item(&peer, &ids[3], 1);
    peer.server_sends(stream_item);
    let results: Vec<_> = peer
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::InvocationCompleted { id, result } => Some((id, result)),
            _ => None,
        })
        .collect();
    assert_eq!(results[0], (ids[0].clone(), Ok(Some(value))));
    assert_eq!(results[1], (ids[1].clone(), Ok(None)));
    assert_eq!(
        results[2],
        (ids[2].clone(), Err(Error::Server("It didn't work!".into())))
    );
    assert_eq!(
        results[3].1.as_ref().unwrap_err().to_string(),
        "Unexpected message type: 2"
    );
}

#[test]
fn item_70_stream_items_arrive_in_order_then_the_end_or_the_error_after_them() {
    let mut peer = connected(Protocol::MessagePack);
    let now = peer.now;
    let (ok_id, _) = peer.conn.stream(now, "S", vec![], vec![]).unwrap();
    let (bad_id, _) = peer.conn.stream(now, "S", vec![], vec![]).unwrap();
    for i in 0..3 {
        let m = item(&peer, &ok_id, i);
        peer.server_sends(m);
    }
    peer.server_sends(completion(&ok_id, CompletionResult::Void));
    let m = item(&peer, &bad_id, 7);
    peer.server_sends(m);
    peer.server_sends(completion(&bad_id, CompletionResult::Error("boom".into())));
    let events: Vec<Event> = peer
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::StreamItem { .. } | Event::StreamCompleted { .. }))
        .collect();
    let items: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            Event::StreamItem { id, item } if *id == ok_id => Some(item.decode().unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(items, vec![0, 1, 2]);
    assert!(events.contains(&Event::StreamCompleted {
        id: ok_id,
        result: Ok(())
    }));
    let bad_item = events
        .iter()
        .position(|e| matches!(e, Event::StreamItem { id, .. } if *id == bad_id))
        .unwrap();
    let bad_end = events
        .iter()
        .position(|e| matches!(e, Event::StreamCompleted { id, result: Err(Error::Server(t)) } if *id == bad_id && t == "boom"))
        .unwrap();
    assert!(
        bad_item < bad_end,
        "the error comes after the earlier items"
    );
}

#[test]
fn item_71_cancelling_a_stream_sends_cancel_invocation_and_ignores_later_items() {
    let mut peer = connected(Protocol::Json);
    let now = peer.now;
    let (id, _) = peer.conn.stream(now, "Infinite", vec![], vec![]).unwrap();
    peer.client_sent();
    peer.events();
    peer.conn.cancel_stream(now, &id);
    assert_eq!(
        peer.client_sent(),
        vec![HubMessage::CancelInvocation(CancelInvocation {
            invocation_id: id.clone(),
            headers: Default::default()
        })]
    );
    let m = item(&peer, &id, 5);
    peer.server_sends(m);
    peer.server_sends(completion(&id, CompletionResult::Void));
    assert!(peer.events().is_empty(), "nothing for a cancelled stream");
    assert_eq!(peer.conn.state(), State::Connected);
}

#[test]
fn item_73_uploads_are_listed_in_stream_ids_and_sent_as_items_then_a_completion() {
    let mut peer = connected(Protocol::Json);
    let now = peer.now;
    let upload = peer.conn.new_upload_stream();
    let failing = peer.conn.new_upload_stream();
    let (id, _) = peer
        .conn
        .invoke(
            now,
            "UploadSum",
            vec![],
            vec![upload.clone(), failing.clone()],
        )
        .unwrap();
    let one = peer.arg(1);
    peer.conn.upload_item(now, &upload, one).unwrap();
    peer.conn.upload_complete(now, &upload, None).unwrap();
    peer.conn
        .upload_complete(now, &failing, Some("the source failed".into()))
        .unwrap();
    let sent = peer.client_sent();
    let HubMessage::Invocation(invocation) = &sent[0] else {
        panic!()
    };
    assert_eq!(invocation.invocation_id.as_deref(), Some(id.as_str()));
    assert!(invocation.arguments.is_empty());
    assert_eq!(
        invocation.stream_ids,
        Some(vec![upload.clone(), failing.clone()])
    );
    assert!(matches!(&sent[1], HubMessage::StreamItem(s) if s.invocation_id == upload));
    assert_eq!(sent[2], completion(&upload, CompletionResult::Void));
    assert_eq!(
        sent[3],
        completion(
            &failing,
            CompletionResult::Error("the source failed".into())
        )
    );
}

#[test]
fn item_75_a_client_result_is_sent_as_exactly_one_completion() {
    let mut peer = connected(Protocol::Json);
    peer.server_sends(HubMessage::Invocation(Invocation {
        invocation_id: Some("s0".into()),
        target: "GetStatus".into(),
        arguments: vec![peer.arg("q")],
        stream_ids: None,
        headers: Default::default(),
    }));
    let events = peer.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Invocation { invocation_id: Some(id), .. } if id == "s0")));
    let now = peer.now;
    let value = peer.arg("ready");
    peer.conn
        .complete_client_result(now, "s0", ClientResult::Value(value.clone()));
    assert_eq!(
        peer.client_sent(),
        vec![completion("s0", CompletionResult::Value(value))]
    );
}

#[test]
fn item_76_client_result_failures_use_the_reference_texts() {
    let mut peer = connected(Protocol::MessagePack);
    let now = peer.now;
    for (id, result) in [
        ("a", ClientResult::NoResult),
        ("b", ClientResult::Error("handler threw".into())),
        ("c", ClientResult::MultipleResults),
    ] {
        peer.conn.complete_client_result(now, id, result);
    }
    assert_eq!(
        peer.client_sent(),
        vec![
            completion(
                "a",
                CompletionResult::Error("Client didn't provide a result.".into())
            ),
            completion("b", CompletionResult::Error("handler threw".into())),
            completion(
                "c",
                CompletionResult::Error("Client provided multiple results.".into())
            ),
        ]
    );
}

#[test]
fn item_77_a_non_blocking_server_invocation_asks_for_no_answer() {
    let mut peer = connected(Protocol::Json);
    peer.server_sends(HubMessage::Invocation(Invocation {
        invocation_id: None,
        target: "Notify".into(),
        arguments: vec![],
        stream_ids: None,
        headers: Default::default(),
    }));
    let events = peer.events();
    assert!(
        matches!(
            &events[..],
            [Event::Invocation {
                invocation_id: None,
                ..
            }]
        ),
        "{events:?}"
    );
    assert!(peer.client_sent().is_empty());
}

#[test]
fn item_81_messages_for_a_completed_invocation_are_dropped_without_closing() {
    let mut peer = connected(Protocol::Json);
    let now = peer.now;
    let (id, _) = peer.conn.invoke(now, "M", vec![], vec![]).unwrap();
    peer.server_sends(completion(&id, CompletionResult::Void));
    peer.events();
    peer.server_sends(completion(&id, CompletionResult::Void));
    let m = item(&peer, &id, 1);
    peer.server_sends(m);
    assert!(peer.events().is_empty());
    assert_eq!(peer.conn.state(), State::Connected);
}

#[test]
fn item_82_headers_on_server_messages_are_accepted_and_ignored() {
    let mut peer = connected(Protocol::Json);
    peer.ws(WebSocketEvent::Message(Bytes::from_static(
        b"{\"type\":1,\"target\":\"Hi\",\"arguments\":[],\"headers\":{\"Foo\":\"Bar\"}}\x1e",
    )));
    assert!(matches!(&peer.events()[..], [Event::Invocation { target, .. }] if target == "Hi"));
}

#[test]
fn item_54_one_ping_after_the_handshake_then_only_after_15_s_without_sending() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(peer::negotiate_body("c", "t", peer::ALL));
    peer.next_transmit();
    peer.ws(WebSocketEvent::Opened);
    peer.transmits();
    peer.ws(WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
    assert_eq!(
        peer.client_sent(),
        vec![HubMessage::Ping],
        "a ping right after the handshake"
    );
    // Sending every 10 s keeps pings away.
    for _ in 0..3 {
        peer.advance(Duration::from_secs(10));
        let now = peer.now;
        peer.conn.send(now, "Tick", vec![]).unwrap();
        peer.server_sends(HubMessage::Ping);
        assert!(!peer.client_sent().contains(&HubMessage::Ping));
    }
    peer.advance(Duration::from_secs(14));
    assert!(peer.client_sent().is_empty());
    peer.server_sends(HubMessage::Ping);
    peer.advance(Duration::from_secs(1));
    assert_eq!(peer.client_sent(), vec![HubMessage::Ping]);
}

#[test]
fn item_53_thirty_silent_seconds_close_with_the_server_timeout_error() {
    let mut peer = connected(Protocol::Json);
    peer.advance(Duration::from_secs(29));
    assert_eq!(peer.conn.state(), State::Connected);
    peer.server_sends(HubMessage::Ping);
    peer.advance(Duration::from_secs(29));
    assert_eq!(
        peer.conn.state(),
        State::Connected,
        "a message restarts the timer"
    );
    peer.advance(Duration::from_secs(2));
    assert_eq!(peer.conn.state(), State::Disconnected);
    assert_eq!(
        peer.events().last(),
        Some(&Event::Closed(Some(Error::Transport(
            "Server timeout elapsed without receiving a message from the server.".into()
        ))))
    );
}

#[test]
fn item_57_start_only_from_disconnected_stop_is_idempotent_and_set_url_only_when_allowed() {
    let mut peer = connected(Protocol::Json);
    assert_eq!(
        peer.start().unwrap_err().to_string(),
        "Cannot start a HubConnection that is not in the 'Disconnected' state."
    );
    assert!(peer.conn.set_url("http://other/hub".into()).is_err());
    let now = peer.now;
    peer.conn.stop(now);
    peer.conn.stop(now);
    assert_eq!(peer.conn.state(), State::Disconnecting);
    peer.ws(WebSocketEvent::Closed {
        code: Some(1000),
        reason: String::new(),
    });
    peer.conn.stop(now);
    let closes = peer
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Closed(_)))
        .count();
    assert_eq!(closes, 1);
    assert!(peer.conn.set_url("http://other/hub".into()).is_ok());
}

#[test]
fn item_59_on_close_fires_once_after_the_state_is_disconnected() {
    let mut peer = connected(Protocol::Json);
    peer.ws(WebSocketEvent::Closed {
        code: Some(1011),
        reason: "oops".into(),
    });
    let events = peer.events();
    let closed: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Closed(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(
        events[closed[0] - 1],
        Event::StateChanged {
            from: State::Connected,
            to: State::Disconnected
        }
    );
    assert_eq!(
        events[closed[0]],
        Event::Closed(Some(Error::Transport(
            "WebSocket closed with status code: 1011 (oops).".into()
        )))
    );
}

#[test]
fn item_66_a_disconnect_fails_every_pending_invoke_and_stream() {
    let mut peer = connected(Protocol::Json);
    let now = peer.now;
    let (invoke, _) = peer.conn.invoke(now, "Slow", vec![], vec![]).unwrap();
    let (stream, _) = peer.conn.stream(now, "S", vec![], vec![]).unwrap();
    peer.events();
    peer.ws(WebSocketEvent::Closed {
        code: None,
        reason: String::new(),
    });
    let events = peer.events();
    let error =
        Error::Transport("WebSocket closed with status code: 1006 (no reason given).".into());
    assert!(events.contains(&Event::InvocationCompleted {
        id: invoke,
        result: Err(error.clone())
    }));
    assert!(events.contains(&Event::StreamCompleted {
        id: stream,
        result: Err(error)
    }));
}

#[test]
fn item_67_a_graceful_stop_sends_close() {
    for (protocol, bytes) in [
        (Protocol::Json, &b"{\"type\":7}\x1e"[..]),
        (Protocol::MessagePack, &b"\x03\x92\x07\xc0"[..]),
    ] {
        let mut peer = connected(protocol);
        let now = peer.now;
        peer.conn.stop(now);
        let transmits = peer.transmits();
        assert!(
            transmits
                .iter()
                .any(|t| matches!(t, Transmit::WebSocketSend { data, .. } if &data[..] == bytes)),
            "{transmits:?}"
        );
        assert_eq!(transmits.last(), Some(&Transmit::CloseWebSocket));
        assert_eq!(peer.conn.state(), State::Disconnecting);
        peer.ws(WebSocketEvent::Closed {
            code: Some(1000),
            reason: String::new(),
        });
        assert_eq!(peer.conn.state(), State::Disconnected);
        assert_eq!(peer.events().last(), Some(&Event::Closed(None)));
    }
}

#[test]
fn item_65_a_close_without_allow_reconnect_ends_even_with_a_policy() {
    let mut config = Peer::config(Protocol::Json);
    config.reconnect_policy = Some(Box::new(
        talkback_core::reconnect::ListReconnectPolicy::default(),
    ));
    let mut peer = Peer::new(config);
    peer.connect_ws();
    peer.server_sends(HubMessage::Close(Close {
        error: Some("go away".into()),
        allow_reconnect: false,
    }));
    assert_eq!(peer.conn.state(), State::Disconnected);
    assert_eq!(
        peer.events().last(),
        Some(&Event::Closed(Some(Error::Server(
            "Server returned an error on close: go away".into()
        ))))
    );
    assert_eq!(peer.conn.poll_timeout(), None, "no reconnect is scheduled");
}

#[test]
fn sends_while_not_connected_are_refused_with_the_reference_text() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    let now = peer.now;
    let error = peer.conn.send(now, "X", vec![]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Cannot send data if the connection is not in the 'Connected' State."
    );
}
