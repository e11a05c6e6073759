//! Scenario tests of the engine over the HTTP transports, automatic reconnect in virtual time
//! and stateful reconnect (checklist items named in each test).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod peer;

use bytes::Bytes;
use peer::{negotiate_body, Peer, ALL};
use std::sync::{Arc, Mutex};
use talkback_core::protocol::{HubMessage, Invocation, Protocol, StreamItem};
use talkback_core::reconnect::{ListReconnectPolicy, RetryContext};
use talkback_core::{
    Config, Duration, Error, Event, HttpEvent, HttpMethod, HttpRequest, State, Transmit,
    TransportKind, TransportSet, WebSocketEvent,
};

fn only(protocol: Protocol, kind: TransportKind) -> Config {
    let mut config = Peer::config(protocol);
    config.transports = TransportSet::only(kind);
    config
}

/// Connects over long polling; returns the outstanding poll.
fn connect_long_polling(peer: &mut Peer) -> HttpRequest {
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c", "t", ALL));
    let first = peer.expect_http();
    peer.answer(&first, 200, Bytes::new());
    let handshake = peer.expect_http();
    let poll = peer.expect_http();
    peer.answer(&handshake, 200, Bytes::new());
    peer.answer(&poll, 200, Bytes::from_static(b"{}\x1e"));
    assert_eq!(peer.conn.state(), State::Connected);
    peer.events();
    peer.expect_http()
}

/// Connects over Server-Sent Events; returns the open stream's request.
fn connect_sse(peer: &mut Peer) -> HttpRequest {
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c", "t", ALL));
    let sse = peer.expect_http();
    peer.http_event(&sse, HttpEvent::Head { status: 200 });
    let handshake = peer.expect_http();
    peer.answer(&handshake, 200, Bytes::new());
    peer.http_event(
        &sse,
        HttpEvent::Chunk(Bytes::from_static(b"data: {}\x1e\r\n\r\n")),
    );
    assert_eq!(peer.conn.state(), State::Connected);
    peer.events();
    sse
}

fn invocation(target: &str) -> HubMessage {
    HubMessage::Invocation(Invocation {
        invocation_id: None,
        target: target.into(),
        arguments: vec![],
        stream_ids: None,
        headers: Default::default(),
    })
}

#[test]
fn item_40_sse_joins_multi_line_data_and_treats_an_error_after_open_as_a_close() {
    let mut peer = Peer::new(only(Protocol::Json, TransportKind::ServerSentEvents));
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c", "t", ALL));
    let sse = peer.expect_http();
    assert!(sse.streaming);
    assert!(sse
        .headers
        .contains(&("Accept".into(), "text/event-stream".into())));
    peer.http_event(&sse, HttpEvent::Head { status: 200 });
    let handshake = peer.expect_http();
    assert_eq!(handshake.method, HttpMethod::Post);
    peer.answer(&handshake, 200, Bytes::new());
    peer.http_event(
        &sse,
        HttpEvent::Chunk(Bytes::from_static(b":\r\ndata: {}\x1e\r\n\r\n")),
    );
    assert_eq!(peer.conn.state(), State::Connected);
    // A message whose JSON holds a line break arrives as two data lines.
    peer.http_event(
        &sse,
        HttpEvent::Chunk(Bytes::from_static(
            b"data: {\"type\":1,\"target\":\"Multi\",\r\ndata: \"arguments\":[\"a\"]}\x1e\r\n\r\n",
        )),
    );
    assert!(peer
        .events()
        .iter()
        .any(|e| matches!(e, Event::Invocation { target, .. } if target == "Multi")));
    peer.http_event(&sse, HttpEvent::End { error: None });
    assert_eq!(peer.conn.state(), State::Disconnected);
    assert_eq!(peer.events().last(), Some(&Event::Closed(None)));
}

#[test]
fn item_44_long_polling_repolls_after_200_stops_on_204_and_repolls_after_its_timeout() {
    let mut peer = Peer::new(only(Protocol::Json, TransportKind::LongPolling));
    let poll = connect_long_polling(&mut peer);
    assert_eq!(poll.timeout, Some(Duration::from_secs(100)));
    peer.answer(&poll, 200, Bytes::new());
    let poll = peer.expect_http();
    peer.http_event(
        &poll,
        HttpEvent::Failed {
            timed_out: true,
            message: "timed out".into(),
        },
    );
    let poll = peer.expect_http();
    assert_eq!(
        poll.method,
        HttpMethod::Get,
        "a client-side timeout re-polls"
    );
    peer.answer(&poll, 204, Bytes::new());
    assert_eq!(peer.conn.state(), State::Disconnected);

    let mut peer = Peer::new(only(Protocol::Json, TransportKind::LongPolling));
    let poll = connect_long_polling(&mut peer);
    peer.answer(&poll, 500, Bytes::new());
    assert!(matches!(
        peer.events().last(),
        Some(Event::Closed(Some(Error::Transport(_))))
    ));
}

#[test]
fn item_44_a_poll_that_fails_on_the_wire_ends_the_transport_instead_of_polling_again() {
    // The server may have answered this poll already (its socket held the bytes when the
    // network went away): polling again would silently skip those messages.
    let mut peer = Peer::new(only(Protocol::Json, TransportKind::LongPolling));
    let poll = connect_long_polling(&mut peer);
    peer.http_event(
        &poll,
        HttpEvent::Failed {
            timed_out: false,
            message: "Connection timed out (os error 110)".into(),
        },
    );
    let polls_again = peer
        .transmits()
        .iter()
        .any(|t| matches!(t, Transmit::Http(r) if r.method == HttpMethod::Get));
    assert!(!polls_again);
    assert_eq!(peer.conn.state(), State::Disconnected);
    let Some(Event::Closed(Some(error))) = peer.events().pop() else {
        panic!("the connection closes with the error")
    };
    assert_eq!(error.to_string(), "Connection timed out (os error 110)");
}

#[test]
fn item_45_stopping_long_polling_aborts_the_poll_then_deletes_and_a_404_is_fine() {
    let mut peer = Peer::new(only(Protocol::Json, TransportKind::LongPolling));
    let poll = connect_long_polling(&mut peer);
    let now = peer.now;
    peer.conn.stop(now);
    let close = peer.expect_http();
    assert_eq!(&close.body[..], b"{\"type\":7}\x1e");
    peer.answer(&close, 200, Bytes::new());
    assert_eq!(peer.next_transmit(), Transmit::AbortHttp(poll.id));
    let delete = peer.expect_http();
    assert_eq!(delete.method, HttpMethod::Delete);
    assert_eq!(delete.url, "http://h/hubs/test?id=t");
    peer.answer(&delete, 404, Bytes::new());
    assert_eq!(peer.conn.state(), State::Disconnected);
    assert_eq!(peer.events().last(), Some(&Event::Closed(None)));
}

#[test]
fn item_48_a_refused_send_fails_with_the_servers_reason_and_only_a_404_closes_the_connection() {
    let mut peer = Peer::new(only(Protocol::Json, TransportKind::LongPolling));
    let _poll = connect_long_polling(&mut peer);
    for (status, reason) in [(409, ""), (413, "Request Entity Too Large"), (500, "")] {
        let now = peer.now;
        let op = peer.conn.send(now, "A", vec![]).unwrap();
        let post = peer.expect_http();
        peer.answer(&post, status, reason.to_owned());
        assert_eq!(peer.conn.state(), State::Connected, "{status}");
        let events = peer.events();
        let failed = events.iter().find_map(|e| match e {
            Event::Written {
                op: o,
                result: Err(e),
            } if *o == op => Some(e.to_string()),
            _ => None,
        });
        let expected = match reason {
            "" => format!("Send failed: Status code '{status}'"),
            reason => format!("Send failed: Status code '{status}': {reason}"),
        };
        assert_eq!(failed, Some(expected), "{events:?}");
    }
    // The next send goes out in a POST of its own.
    let now = peer.now;
    peer.conn.send(now, "B", vec![]).unwrap();
    let post = peer.expect_http();
    peer.answer(&post, 404, "No Connection with that ID");
    assert_eq!(peer.conn.state(), State::Disconnected);
    let Some(Event::Closed(Some(error))) = peer.events().pop() else {
        panic!("closed with an error")
    };
    assert_eq!(
        error.to_string(),
        "Send failed: Status code '404': No Connection with that ID"
    );
}

#[test]
fn item_48_a_send_lost_on_the_wire_fails_only_its_calls_and_the_next_send_goes_out() {
    for transport in [TransportKind::LongPolling, TransportKind::ServerSentEvents] {
        let mut peer = Peer::new(only(Protocol::Json, transport));
        match transport {
            TransportKind::LongPolling => drop(connect_long_polling(&mut peer)),
            _ => drop(connect_sse(&mut peer)),
        }
        for timed_out in [false, true] {
            let now = peer.now;
            let op = peer.conn.send(now, "A", vec![]).unwrap();
            let post = post_with(&mut peer, b"\"A\"");
            peer.http_event(
                &post,
                HttpEvent::Failed {
                    timed_out,
                    message: "connection reset".into(),
                },
            );
            assert_eq!(peer.conn.state(), State::Connected, "{transport:?}");
            let failed = peer.events().into_iter().find_map(|e| match e {
                Event::Written {
                    op: o,
                    result: Err(e),
                } if o == op => Some(e.to_string()),
                _ => None,
            });
            assert_eq!(failed.as_deref(), Some("connection reset"), "{transport:?}");
        }
        let now = peer.now;
        let op = peer.conn.send(now, "B", vec![]).unwrap();
        let post = post_with(&mut peer, b"\"B\"");
        peer.answer(&post, 200, Bytes::new());
        assert!(peer
            .events()
            .contains(&Event::Written { op, result: Ok(()) }));
    }
}

/// The POST that carries `needle`, answering the POSTs before it (SSE's first Ping) with 200.
fn post_with(peer: &mut Peer, needle: &[u8]) -> HttpRequest {
    loop {
        let post = peer.expect_http();
        if post.body.windows(needle.len()).any(|w| w == needle) {
            return post;
        }
        peer.answer(&post, 200, Bytes::new());
    }
}

#[test]
fn item_49_queued_sends_go_out_concatenated_in_one_post_in_order() {
    let mut peer = Peer::new(only(Protocol::Json, TransportKind::LongPolling));
    let _poll = connect_long_polling(&mut peer);
    let now = peer.now;
    peer.conn.send(now, "A", vec![]).unwrap();
    let first = peer.expect_http();
    peer.conn.send(now, "B", vec![]).unwrap();
    peer.conn.send(now, "C", vec![]).unwrap();
    assert!(peer.transmits().is_empty(), "one POST at a time");
    peer.answer(&first, 200, Bytes::new());
    let second = peer.expect_http();
    assert_eq!(
        &second.body[..],
        b"{\"type\":1,\"target\":\"B\",\"arguments\":[]}\x1e{\"type\":1,\"target\":\"C\",\"arguments\":[]}\x1e"
    );
    assert!(second
        .headers
        .contains(&("Content-Type".into(), "text/plain;charset=UTF-8".into())));
}

#[test]
fn item_56_long_polling_sends_no_pings_and_has_no_server_timeout() {
    let mut peer = Peer::new(only(Protocol::MessagePack, TransportKind::LongPolling));
    let _poll = connect_long_polling(&mut peer);
    assert_eq!(peer.conn.poll_timeout(), None);
    peer.advance(Duration::from_secs(600));
    assert_eq!(peer.conn.state(), State::Connected);
    assert!(peer.transmits().is_empty());
}

/// A policy that records what it was told and answers from a list.
fn recording(delays: Vec<Option<u64>>, seen: Arc<Mutex<Vec<RetryContext>>>) -> Config {
    let mut config = Peer::config(Protocol::Json);
    let mut delays = delays.into_iter();
    config.reconnect_policy = Some(Box::new(move |context: &RetryContext| {
        seen.lock().unwrap().push(context.clone());
        delays.next().flatten().map(Duration::from_secs)
    }));
    config
}

fn lose_socket(peer: &mut Peer) {
    peer.ws(WebSocketEvent::Closed {
        code: None,
        reason: String::new(),
    });
}

#[test]
fn item_61_the_default_delays_are_0_2_10_30_seconds_then_stop_in_virtual_time() {
    let mut config = Peer::config(Protocol::Json);
    config.reconnect_policy = Some(Box::new(ListReconnectPolicy::default()));
    let mut peer = Peer::new(config);
    peer.connect_ws();
    let lost_at = peer.now;
    lose_socket(&mut peer);
    let mut attempts = Vec::new();
    for _ in 0..4 {
        let deadline = peer.conn.poll_timeout().expect("a retry is scheduled");
        attempts.push(deadline.duration_since(lost_at).as_secs());
        peer.advance(deadline.duration_since(peer.now));
        let negotiate = peer.expect_http();
        peer.answer(&negotiate, 503, Bytes::new());
    }
    // Each failed attempt ends immediately, so the delays add up: 0, 2, 12, 42.
    assert_eq!(attempts, vec![0, 2, 12, 42]);
    assert_eq!(peer.conn.poll_timeout(), None);
    assert_eq!(peer.conn.state(), State::Disconnected);
}

#[test]
fn item_60_when_retries_run_out_on_close_fires_without_an_error() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut peer = Peer::new(recording(vec![Some(1), None], seen));
    peer.connect_ws();
    lose_socket(&mut peer);
    peer.advance(Duration::from_secs(1));
    let negotiate = peer.expect_http();
    peer.answer(&negotiate, 500, Bytes::new());
    assert_eq!(peer.events().last(), Some(&Event::Closed(None)));
}

#[test]
fn item_61_a_custom_policy_is_told_the_count_the_elapsed_time_and_the_reason() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut peer = Peer::new(recording(vec![Some(5), Some(7), None], seen.clone()));
    peer.connect_ws();
    lose_socket(&mut peer);
    peer.advance(Duration::from_secs(5));
    let negotiate = peer.expect_http();
    peer.answer(&negotiate, 500, Bytes::new());
    peer.advance(Duration::from_secs(7));
    let negotiate = peer.expect_http();
    peer.answer(&negotiate, 500, Bytes::new());
    let seen = seen.lock().unwrap();
    let summary: Vec<(u32, u64)> = seen
        .iter()
        .map(|c| (c.previous_retry_count, c.elapsed.as_secs()))
        .collect();
    assert_eq!(summary, vec![(0, 0), (1, 5), (2, 12)]);
    assert!(seen[0]
        .retry_reason
        .contains("WebSocket closed with status code: 1006"));
    assert!(seen[1]
        .retry_reason
        .contains("Unexpected status code returned from negotiate '500'"));
}

#[test]
fn item_62_reconnecting_fires_before_the_first_delay_even_when_it_is_zero() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut peer = Peer::new(recording(vec![Some(0)], seen));
    peer.connect_ws();
    lose_socket(&mut peer);
    let events = peer.events();
    assert_eq!(
        events[events.len() - 2],
        Event::StateChanged {
            from: State::Connected,
            to: State::Reconnecting
        }
    );
    assert!(matches!(events.last(), Some(Event::Reconnecting(_))));
    assert!(
        peer.transmits().is_empty(),
        "the attempt waits for its (zero) timer"
    );
}

#[test]
fn item_63_each_attempt_negotiates_again_and_reports_the_new_connection_id() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut peer = Peer::new(recording(vec![Some(0)], seen));
    peer.connect_ws();
    lose_socket(&mut peer);
    peer.advance(Duration::ZERO);
    peer.negotiate(negotiate_body("c2", "t2", ALL));
    let Transmit::OpenWebSocket { url, .. } = peer.next_transmit() else {
        panic!()
    };
    assert!(url.ends_with("id=t2"));
    peer.ws(WebSocketEvent::Opened);
    peer.ws(WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
    let events = peer.events();
    assert!(events.contains(&Event::Reconnected {
        connection_id: Some("c2".into())
    }));
    assert_eq!(peer.conn.state(), State::Connected);
}

#[test]
fn item_64_stop_during_a_reconnect_delay_cancels_it_and_closes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut peer = Peer::new(recording(vec![Some(30)], seen));
    peer.connect_ws();
    lose_socket(&mut peer);
    peer.advance(Duration::from_secs(3));
    let now = peer.now;
    peer.conn.stop(now);
    assert_eq!(peer.conn.state(), State::Disconnected);
    assert_eq!(peer.events().last(), Some(&Event::Closed(None)));
    peer.advance(Duration::from_secs(60));
    assert!(peer.transmits().is_empty(), "no attempt after stop");
}

#[test]
fn item_65_a_close_with_allow_reconnect_goes_into_reconnecting() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut peer = Peer::new(recording(vec![Some(0)], seen));
    peer.connect_ws();
    peer.server_sends(HubMessage::Close(talkback_core::protocol::Close {
        error: Some("come back".into()),
        allow_reconnect: true,
    }));
    assert_eq!(peer.conn.state(), State::Reconnecting);
    assert!(peer.events().contains(&Event::Reconnecting(Error::Server(
        "Server returned an error on close: come back".into()
    ))));
}

// ------------------------------------------------------------------ stateful reconnect

fn stateful_peer(buffer: usize) -> Peer {
    let mut config = Peer::config(Protocol::Json);
    config.stateful_reconnect = true;
    config.stateful_reconnect_buffer_size = buffer;
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    peer.negotiate(Bytes::from_static(
        br#"{"connectionId":"c","connectionToken":"t","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#,
    ));
    peer.next_transmit();
    peer.ws(WebSocketEvent::Opened);
    peer.ws(WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
    peer.transmits();
    peer.events();
    peer
}

fn reattach(peer: &mut Peer) {
    lose_socket(peer);
    match peer.next_transmit() {
        Transmit::OpenWebSocket { url, .. } => assert_eq!(url, "ws://h/hubs/test?id=t"),
        other => panic!("{other:?}"),
    }
    peer.ws(WebSocketEvent::Opened);
}

#[test]
fn item_86_only_types_1_to_5_are_numbered_and_buffered() {
    let mut peer = stateful_peer(100_000);
    let now = peer.now;
    peer.conn.send(now, "A", vec![]).unwrap();
    peer.advance(Duration::from_secs(16)); // a Ping goes out
    peer.conn.send(peer.now, "B", vec![]).unwrap();
    peer.client_sent();
    reattach(&mut peer);
    let sent = peer.client_sent();
    assert_eq!(sent[0], HubMessage::Sequence(1));
    assert_eq!(
        sent[1..].to_vec(),
        vec![invocation("A"), invocation("B")],
        "no Ping replayed"
    );
}

#[test]
fn item_87_acks_go_out_about_a_second_after_messages_and_incoming_acks_free_the_buffer() {
    let mut peer = stateful_peer(60);
    for target in ["X", "Y", "Z"] {
        peer.server_sends(invocation(target));
    }
    peer.advance(Duration::from_millis(999));
    assert!(peer.client_sent().is_empty());
    peer.advance(Duration::from_millis(1));
    assert_eq!(
        peer.client_sent(),
        vec![HubMessage::Ack(3)],
        "one coalesced Ack"
    );
    let now = peer.now;
    peer.conn.send(now, "A", vec![]).unwrap();
    peer.conn.send(now, "B", vec![]).unwrap();
    assert!(peer.conn.is_send_blocked(), "76 bytes unacknowledged >= 60");
    peer.server_sends(HubMessage::Ack(2));
    assert!(!peer.conn.is_send_blocked());
}

#[test]
fn item_88_after_a_reattach_the_client_sends_sequence_then_replays_unacknowledged() {
    let mut peer = stateful_peer(100_000);
    let now = peer.now;
    for target in ["A", "B", "C"] {
        peer.conn.send(now, target, vec![]).unwrap();
    }
    peer.server_sends(HubMessage::Ack(1));
    peer.client_sent();
    reattach(&mut peer);
    assert_eq!(
        peer.client_sent(),
        vec![HubMessage::Sequence(2), invocation("B"), invocation("C")]
    );
    // With nothing to replay it still sends Sequence.
    peer.server_sends(HubMessage::Sequence(1));
    peer.server_sends(HubMessage::Ack(3));
    reattach(&mut peer);
    assert_eq!(peer.client_sent(), vec![HubMessage::Sequence(4)]);
}

#[test]
fn item_89_after_a_reattach_messages_before_sequence_and_duplicates_are_dropped() {
    let mut peer = stateful_peer(100_000);
    peer.server_sends(invocation("one"));
    peer.server_sends(invocation("two"));
    peer.events();
    reattach(&mut peer);
    peer.server_sends(invocation("stale"));
    peer.server_sends(HubMessage::Sequence(2));
    peer.server_sends(invocation("two"));
    peer.server_sends(invocation("three"));
    let targets: Vec<String> = peer
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Invocation { target, .. } => Some(target),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec!["three"]);
}

#[test]
fn item_90_a_sequence_id_from_the_future_closes_the_connection() {
    let mut peer = stateful_peer(100_000);
    peer.server_sends(invocation("one"));
    reattach(&mut peer);
    peer.server_sends(HubMessage::Sequence(5));
    assert_eq!(peer.conn.state(), State::Disconnected);
    let events = peer.events();
    let Some(Event::Closed(Some(error))) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        error.to_string(),
        "Sequence ID greater than amount of messages we've received."
    );
}

#[test]
fn item_91_sends_wait_while_the_buffer_is_full_and_fail_when_the_connection_closes() {
    let mut peer = stateful_peer(50);
    let now = peer.now;
    let first = peer.conn.send(now, "AAAAAAAA", vec![]).unwrap();
    let second = peer.conn.send(now, "BBBBBBBB", vec![]).unwrap();
    let events = peer.events();
    assert!(events.contains(&Event::Written {
        op: first,
        result: Ok(())
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Written { op, .. } if *op == second)),
        "the send that filled the buffer waits: {events:?}"
    );
    let now = peer.now;
    peer.conn.stop(now);
    peer.ws(WebSocketEvent::Closed {
        code: Some(1000),
        reason: String::new(),
    });
    assert!(peer
        .events()
        .iter()
        .any(|e| matches!(e, Event::Written { op, result: Err(_) } if *op == second)));
}

#[test]
fn item_92_a_reattach_is_silent_and_a_failed_one_falls_back_to_the_reconnect_policy() {
    let mut peer = stateful_peer(100_000);
    let item = HubMessage::StreamItem(StreamItem {
        invocation_id: "0".into(),
        item: peer.arg(1),
        headers: Default::default(),
    });
    let now = peer.now;
    let (id, _) = peer.conn.stream(now, "Counter", vec![], vec![]).unwrap();
    peer.events();
    peer.transmits();
    reattach(&mut peer);
    peer.server_sends(HubMessage::Sequence(1));
    peer.server_sends(item);
    let events = peer.events();
    assert!(
        matches!(&events[..], [Event::StreamItem { id: i, .. }] if *i == id),
        "{events:?}"
    );

    // A re-attach that cannot open ends the connection the normal way.
    peer.transmits();
    lose_socket(&mut peer);
    peer.next_transmit();
    peer.ws(WebSocketEvent::Failed {
        status: Some(404),
        message: "gone".into(),
    });
    assert_eq!(peer.conn.state(), State::Disconnected);
    assert!(matches!(peer.events().last(), Some(Event::Closed(Some(_)))));
}

#[test]
fn item_92_a_reattach_the_server_accepts_then_closes_at_once_ends_the_connection_instead_of_looping(
) {
    let mut peer = stateful_peer(100_000);
    let now = peer.now;
    let (id, _) = peer.conn.invoke(now, "Delay", vec![], vec![]).unwrap();
    peer.events();
    peer.transmits();
    reattach(&mut peer);
    // Some servers and proxies accept the upgrade, then close with "Connection not found.".
    // Three tries in a row, then the session counts as gone.
    peer.transmits();
    for _ in 0..2 {
        peer.ws(WebSocketEvent::Closed {
            code: Some(4404),
            reason: "Connection not found.".into(),
        });
        match peer.next_transmit() {
            Transmit::OpenWebSocket { .. } => {}
            other => panic!("another re-attach, got {other:?}"),
        }
        peer.ws(WebSocketEvent::Opened);
        peer.transmits();
    }
    peer.ws(WebSocketEvent::Closed {
        code: Some(4404),
        reason: "Connection not found.".into(),
    });
    let transmits = peer.transmits();
    assert!(
        !transmits
            .iter()
            .any(|t| matches!(t, Transmit::OpenWebSocket { .. })),
        "no second re-attach: {transmits:?}"
    );
    assert_eq!(peer.conn.state(), State::Disconnected);
    let events = peer.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::InvocationCompleted { id: i, result: Err(_) } if *i == id
        )),
        "the pending invoke fails: {events:?}"
    );
    let Some(Event::Closed(Some(error))) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        error.to_string(),
        "WebSocket closed with status code: 4404 (Connection not found.)."
    );
}

#[test]
fn item_92_a_reattach_dropped_without_a_close_frame_is_retried_longer_but_not_forever() {
    let mut peer = stateful_peer(100_000);
    reattach(&mut peer);
    // Resets (no Close frame) before the server spoke are the network's doing more often than
    // the server's answer: more than three are tried, ten in a row end the session.
    peer.transmits();
    for _ in 0..9 {
        peer.ws(WebSocketEvent::Closed {
            code: None,
            reason: String::new(),
        });
        match peer.next_transmit() {
            Transmit::OpenWebSocket { .. } => {}
            other => panic!("another re-attach, got {other:?}"),
        }
        peer.ws(WebSocketEvent::Opened);
        peer.transmits();
    }
    assert_ne!(peer.conn.state(), State::Disconnected);
    peer.ws(WebSocketEvent::Closed {
        code: None,
        reason: String::new(),
    });
    let transmits = peer.transmits();
    assert!(
        !transmits
            .iter()
            .any(|t| matches!(t, Transmit::OpenWebSocket { .. })),
        "no eleventh re-attach: {transmits:?}"
    );
    assert_eq!(peer.conn.state(), State::Disconnected);
}

#[test]
fn item_92_a_failed_reattach_goes_to_the_reconnect_policy_under_a_new_connection() {
    let mut config = Peer::config(Protocol::Json);
    config.stateful_reconnect = true;
    config.reconnect_policy = Some(Box::new(ListReconnectPolicy::new(vec![Duration::ZERO])));
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    peer.negotiate(Bytes::from_static(
        br#"{"connectionId":"c","connectionToken":"t","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#,
    ));
    peer.next_transmit();
    peer.ws(WebSocketEvent::Opened);
    peer.ws(WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
    peer.transmits();
    peer.events();
    reattach(&mut peer);
    for _ in 0..2 {
        peer.ws(WebSocketEvent::Closed {
            code: Some(4404),
            reason: "Connection not found.".into(),
        });
        peer.transmits();
        peer.ws(WebSocketEvent::Opened);
    }
    peer.ws(WebSocketEvent::Closed {
        code: Some(4404),
        reason: "Connection not found.".into(),
    });
    assert_eq!(peer.conn.state(), State::Reconnecting);
    assert!(peer
        .events()
        .iter()
        .any(|e| matches!(e, Event::Reconnecting(_))));
    peer.advance(Duration::ZERO);
    let negotiates: Vec<String> = peer
        .transmits()
        .into_iter()
        .filter_map(|t| match t {
            Transmit::Http(r) if r.url.contains("/negotiate?") => Some(r.url),
            _ => None,
        })
        .collect();
    assert_eq!(
        negotiates.len(),
        1,
        "a fresh negotiate for a new connection"
    );
}

#[test]
fn item_92_a_reattach_the_server_confirmed_leaves_the_next_drop_its_own_reattach() {
    let mut peer = stateful_peer(100_000);
    // Two drops of a fresh re-attach before the server spoke, then a confirmed one: the
    // count starts over, so each later drop has its own tries.
    for _ in 0..3 {
        reattach(&mut peer);
        for _ in 0..2 {
            peer.transmits();
            lose_socket(&mut peer);
            assert!(matches!(
                peer.next_transmit(),
                Transmit::OpenWebSocket { .. }
            ));
            peer.ws(WebSocketEvent::Opened);
        }
        peer.server_sends(HubMessage::Sequence(1));
        assert_eq!(peer.conn.state(), State::Connected);
        peer.transmits();
    }
}
