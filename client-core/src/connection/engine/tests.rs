//! Smoke tests of the engine on its own; the scenario suites are in `client-core/tests/`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;
use crate::connection::{HttpMethod, HttpRequest};
use crate::protocol::Protocol;

fn drain(conn: &mut Connection) -> (Vec<Transmit>, Vec<Event>) {
    let mut t = Vec::new();
    while let Some(x) = conn.poll_transmit() {
        t.push(x);
    }
    let mut e = Vec::new();
    while let Some(x) = conn.poll_event() {
        e.push(x);
    }
    (t, e)
}

const NEGOTIATE: &[u8] = br#"{"connectionId":"c1","connectionToken":"t1","negotiateVersion":1,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#;

#[test]
fn starts_over_websockets_and_completes_an_invocation() {
    let t0 = Instant::now();
    let mut conn = Connection::new(Config::new("http://h/hubs/test"));
    conn.start(t0).unwrap();
    let (t, _) = drain(&mut conn);
    let Transmit::Http(req) = &t[0] else {
        panic!("{t:?}")
    };
    assert_eq!(req.url, "http://h/hubs/test/negotiate?negotiateVersion=1");
    conn.handle_http(
        t0,
        req.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::from_static(NEGOTIATE),
        },
    );
    let (t, _) = drain(&mut conn);
    assert_eq!(
        t,
        vec![Transmit::OpenWebSocket {
            url: "ws://h/hubs/test?id=t1".into(),
            headers: vec![]
        }]
    );
    conn.handle_websocket(t0, WebSocketEvent::Opened);
    let (t, _) = drain(&mut conn);
    assert!(
        matches!(&t[0], Transmit::WebSocketSend { data, .. } if &data[..] == b"{\"protocol\":\"json\",\"version\":1}\x1e")
    );
    conn.handle_websocket(t0, WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
    let (t, e) = drain(&mut conn);
    assert_eq!(conn.state(), State::Connected);
    assert!(
        e.contains(&Event::Started {
            connection_id: Some("c1".into())
        }),
        "{e:?}"
    );
    assert!(
        matches!(&t[0], Transmit::WebSocketSend { data, .. } if &data[..] == b"{\"type\":6}\x1e")
    );
    let arg = RawValue::encode(Protocol::Json, &1).unwrap();
    let (id, _) = conn.invoke(t0, "Echo", vec![arg], vec![]).unwrap();
    assert_eq!(id, "0");
    conn.handle_websocket(
        t0,
        WebSocketEvent::Message(Bytes::from_static(
            b"{\"type\":3,\"invocationId\":\"0\",\"result\":1}\x1e",
        )),
    );
    let (_, e) = drain(&mut conn);
    assert!(
        matches!(
            &e[..],
            [
                Event::Written { .. },
                Event::InvocationCompleted {
                    result: Ok(Some(_)),
                    ..
                }
            ]
        ),
        "{e:?}"
    );
    conn.stop(t0);
    let (t, _) = drain(&mut conn);
    assert!(t.contains(&Transmit::CloseWebSocket));
    assert_eq!(
        conn.state(),
        State::Disconnecting,
        "until the socket reports its close"
    );
    conn.handle_websocket(
        t0,
        WebSocketEvent::Closed {
            code: Some(1000),
            reason: String::new(),
        },
    );
    let (_, e) = drain(&mut conn);
    assert_eq!(conn.state(), State::Disconnected);
    assert_eq!(e.last(), Some(&Event::Closed(None)));
}

#[test]
fn stop_gives_up_waiting_for_a_websocket_close_after_five_seconds() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    conn.stop(t0);
    drain(&mut conn);
    assert_eq!(
        conn.poll_timeout(),
        Some(t0 + crate::Duration::from_secs(5))
    );
    conn.handle_timeout(t0 + crate::Duration::from_secs(5));
    let (t, e) = drain(&mut conn);
    assert!(!t.contains(&Transmit::CloseWebSocket), "no second close");
    assert_eq!(conn.state(), State::Disconnected);
    assert_eq!(e.last(), Some(&Event::Closed(None)));
}

fn connect_ws(config: Config, negotiate: &[u8], t0: Instant) -> Connection {
    let mut conn = Connection::new(config);
    conn.start(t0).unwrap();
    let (t, _) = drain(&mut conn);
    let Transmit::Http(req) = &t[0] else {
        panic!("{t:?}")
    };
    let body = Bytes::copy_from_slice(negotiate);
    conn.handle_http(t0, req.id, HttpEvent::Response { status: 200, body });
    conn.handle_websocket(t0, WebSocketEvent::Opened);
    conn.handle_websocket(t0, WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
    drain(&mut conn);
    assert_eq!(conn.state(), State::Connected);
    conn
}

#[test]
fn a_stateful_websocket_reattaches_and_replays_without_state_events() {
    let t0 = Instant::now();
    let mut config = Config::new("http://h/hubs/test");
    config.stateful_reconnect = true;
    let negotiate = br#"{"connectionId":"c1","connectionToken":"t1","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#;
    let mut conn = connect_ws(config, negotiate, t0);
    conn.send(t0, "A", vec![]).unwrap();
    drain(&mut conn);
    conn.handle_websocket(
        t0,
        WebSocketEvent::Closed {
            code: Some(1006),
            reason: String::new(),
        },
    );
    let (t, e) = drain(&mut conn);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(
        t,
        vec![Transmit::OpenWebSocket {
            url: "ws://h/hubs/test?id=t1".into(),
            headers: vec![]
        }]
    );
    conn.send(t0, "B", vec![]).unwrap();
    conn.handle_websocket(t0, WebSocketEvent::Opened);
    let (t, _) = drain(&mut conn);
    let sent: Vec<&[u8]> = t
        .iter()
        .map(|t| match t {
            Transmit::WebSocketSend { data, .. } => &data[..],
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            &b"{\"type\":9,\"sequenceId\":1}\x1e"[..],
            &b"{\"type\":1,\"target\":\"A\",\"arguments\":[]}\x1e"[..],
            &b"{\"type\":1,\"target\":\"B\",\"arguments\":[]}\x1e"[..],
        ]
    );
    assert_eq!(conn.state(), State::Connected);
}

#[test]
fn long_polling_opens_with_the_first_poll_and_posts_the_handshake() {
    let t0 = Instant::now();
    let mut config = Config::new("http://h/hubs/test");
    config.transports = crate::TransportSet::only(TransportKind::LongPolling);
    let mut conn = Connection::new(config);
    conn.start(t0).unwrap();
    let (t, _) = drain(&mut conn);
    let Transmit::Http(req) = &t[0] else { panic!() };
    let body = Bytes::from_static(br#"{"connectionId":"c1","availableTransports":[{"transport":"LongPolling","transferFormats":["Text"]}]}"#);
    conn.handle_http(t0, req.id, HttpEvent::Response { status: 200, body });
    let (t, _) = drain(&mut conn);
    let Transmit::Http(poll) = &t[0] else {
        panic!()
    };
    assert_eq!(poll.url, "http://h/hubs/test?id=c1&_=1");
    conn.handle_http(
        t0,
        poll.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::new(),
        },
    );
    let (t, _) = drain(&mut conn);
    let [Transmit::Http(post), Transmit::Http(poll2)] = &t[..] else {
        panic!("{t:?}")
    };
    assert_eq!(post.method, HttpMethod::Post);
    assert_eq!(&post.body[..], b"{\"protocol\":\"json\",\"version\":1}\x1e");
    conn.handle_http(
        t0,
        post.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::new(),
        },
    );
    let body =
        Bytes::from_static(b"{}\x1e{\"type\":1,\"target\":\"Welcome\",\"arguments\":[\"c1\"]}\x1e");
    conn.handle_http(t0, poll2.id, HttpEvent::Response { status: 200, body });
    let (t, e) = drain(&mut conn);
    assert!(
        matches!(
            &e[..],
            [
                Event::StateChanged { .. },
                Event::Started { .. },
                Event::Invocation { .. }
            ]
        ),
        "{e:?}"
    );
    assert!(
        matches!(&t[..], [Transmit::Http(p)] if p.method == HttpMethod::Get),
        "no ping over long polling: {t:?}"
    );
    assert_eq!(conn.poll_timeout(), None);
}

/// A connection over long polling, connected, with its next poll in flight.
fn connect_long_polling(t0: Instant) -> (Connection, HttpRequest) {
    let mut config = Config::new("http://h/hubs/test");
    config.transports = crate::TransportSet::only(TransportKind::LongPolling);
    let mut conn = Connection::new(config);
    conn.start(t0).unwrap();
    let (t, _) = drain(&mut conn);
    let Transmit::Http(req) = &t[0] else { panic!() };
    let body = Bytes::from_static(br#"{"connectionId":"c1","availableTransports":[{"transport":"LongPolling","transferFormats":["Text"]}]}"#);
    conn.handle_http(t0, req.id, HttpEvent::Response { status: 200, body });
    let (t, _) = drain(&mut conn);
    let Transmit::Http(poll) = &t[0] else {
        panic!()
    };
    conn.handle_http(
        t0,
        poll.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::new(),
        },
    );
    let (t, _) = drain(&mut conn);
    let [Transmit::Http(handshake), Transmit::Http(poll)] = &t[..] else {
        panic!("{t:?}")
    };
    conn.handle_http(
        t0,
        handshake.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::new(),
        },
    );
    conn.handle_http(
        t0,
        poll.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::from_static(b"{}\x1e"),
        },
    );
    let (t, _) = drain(&mut conn);
    let [Transmit::Http(poll)] = &t[..] else {
        panic!("{t:?}")
    };
    assert_eq!(conn.state(), State::Connected);
    (conn, poll.clone())
}

/// Answers the Close's POST of a stopping long-polling connection: the DELETE follows, gets
/// `status`, and the connection closes without an error.
fn finish_stop_with_delete(conn: &mut Connection, t0: Instant, close: &HttpRequest, status: u16) {
    conn.handle_http(
        t0,
        close.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::new(),
        },
    );
    let (t, _) = drain(conn);
    let [Transmit::Http(delete)] = &t[..] else {
        panic!("{t:?}")
    };
    assert_eq!(delete.method, HttpMethod::Delete);
    conn.handle_http(
        t0,
        delete.id,
        HttpEvent::Response {
            status,
            body: Bytes::new(),
        },
    );
    let (_, e) = drain(conn);
    assert_eq!(e.last(), Some(&Event::Closed(None)));
    assert_eq!(conn.state(), State::Disconnected);
}

#[test]
fn a_long_poll_the_server_ends_while_stopping_still_gets_the_delete_after_the_close() {
    let t0 = Instant::now();
    let (mut conn, poll) = connect_long_polling(t0);
    conn.stop(t0);
    let (t, _) = drain(&mut conn);
    let [Transmit::Http(close), Transmit::AbortHttp(aborted)] = &t[..] else {
        panic!("{t:?}")
    };
    assert_eq!(
        *aborted, poll.id,
        "the poll ends at stop(), as the official client's"
    );
    assert_eq!(&close.body[..], b"{\"type\":7}\x1e");
    // The server has our Close: it ends the poll before answering the POST (an answer the
    // shell had already taken in before the abort).
    conn.handle_http(
        t0,
        poll.id,
        HttpEvent::Response {
            status: 204,
            body: Bytes::new(),
        },
    );
    assert_eq!(conn.state(), State::Disconnecting);
    assert!(
        drain(&mut conn).0.is_empty(),
        "the DELETE waits for the Close's POST"
    );
    finish_stop_with_delete(&mut conn, t0, close, 404);
}

#[test]
fn stopping_long_polling_with_a_post_in_flight_sends_close_then_deletes() {
    let t0 = Instant::now();
    let (mut conn, _poll) = connect_long_polling(t0);
    conn.send(t0, "A", vec![]).unwrap();
    let (t, _) = drain(&mut conn);
    let [Transmit::Http(post)] = &t[..] else {
        panic!("{t:?}")
    };
    conn.stop(t0);
    assert_eq!(conn.state(), State::Disconnecting);
    let (t, _) = drain(&mut conn);
    assert!(
        matches!(&t[..], [Transmit::AbortHttp(_)]),
        "the poll ends at once and the Close waits for the POST in flight: {t:?}"
    );
    conn.handle_http(
        t0,
        post.id,
        HttpEvent::Response {
            status: 200,
            body: Bytes::new(),
        },
    );
    let (t, _) = drain(&mut conn);
    let [Transmit::Http(close)] = &t[..] else {
        panic!("{t:?}")
    };
    assert_eq!(&close.body[..], b"{\"type\":7}\x1e");
    finish_stop_with_delete(&mut conn, t0, close, 202);
}

/// The failed start's error, after feeding `negotiate` the answer `status`/`body`.
fn start_failure(config: Config, status: u16, body: &'static [u8]) -> Error {
    let t0 = Instant::now();
    let mut conn = Connection::new(config);
    conn.start(t0).unwrap();
    let (t, _) = drain(&mut conn);
    let Transmit::Http(req) = &t[0] else {
        panic!("{t:?}")
    };
    conn.handle_http(
        t0,
        req.id,
        HttpEvent::Response {
            status,
            body: Bytes::from_static(body),
        },
    );
    let (t, e) = drain(&mut conn);
    if let Some(Transmit::OpenWebSocket { .. }) = t.first() {
        conn.handle_websocket(
            t0,
            WebSocketEvent::Failed {
                status: Some(404),
                message: "refused".into(),
            },
        );
        let (_, e) = drain(&mut conn);
        return start_failed(e);
    }
    start_failed(e)
}

fn start_failed(events: Vec<Event>) -> Error {
    events
        .into_iter()
        .find_map(|e| match e {
            Event::StartFailed(error) => Some(error),
            _ => None,
        })
        .expect("the start failed")
}

#[test]
fn a_negotiate_refused_with_a_status_carries_the_status_and_the_body() {
    let error = start_failure(Config::new("http://h/hubs/test"), 503, b"busy");
    let Error::Connect(failure) = error else {
        panic!("{error:?}")
    };
    assert!(failure.negotiate);
    assert_eq!(failure.status, Some(503));
    assert_eq!(failure.status_text.as_deref(), Some("busy"));
    assert!(failure.transports.is_empty());
}

#[test]
fn every_transport_failing_lists_each_with_its_kind() {
    const OFFER: &[u8] = br#"{"connectionId":"c1","connectionToken":"t1","negotiateVersion":1,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},{"transport":"ServerSentEvents","transferFormats":["Text"]},{"transport":"LongPolling","transferFormats":["Text","Binary"]},{"transport":"Carrier","transferFormats":["Text"]}]}"#;
    let mut config = Config::new("http://h/hubs/test");
    config.protocol = Protocol::MessagePack;
    // WebSockets and ServerSentEvents.
    config.transports = crate::TransportSet(1 | 2);
    let error = start_failure(config, 200, OFFER);
    let Error::Connect(failure) = error else {
        panic!("{error:?}")
    };
    use crate::error::TransportFailureKind::{self, *};
    let kinds: Vec<(&str, TransportFailureKind)> = failure
        .transports
        .iter()
        .map(|t| (t.transport.as_str(), t.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("WebSockets", Failed),
            ("ServerSentEvents", Format),
            ("LongPolling", Disabled),
            ("Carrier", Unsupported),
        ]
    );
    assert_eq!(failure.transports[0].reason, "refused (HTTP status 404)");
    assert!(!failure.negotiate);
    assert!(
        failure
            .message
            .starts_with("Unable to connect to the server with any of the available transports. WebSockets failed: refused (HTTP status 404)"),
        "{}",
        failure.message
    );
}

// Keep-alive driven by network input, for hidden browser tabs whose timers are throttled
// (dotnet/aspnetcore #31079): `handle_timeout` is never called in these tests.

const PING: &[u8] = b"{\"type\":6}\x1e";

fn pings_sent(t: &[Transmit]) -> usize {
    t.iter()
        .filter(|t| matches!(t, Transmit::WebSocketSend { data, .. } if &data[..] == PING))
        .count()
}

fn server_ping(conn: &mut Connection, at: Instant) -> usize {
    conn.handle_websocket(at, WebSocketEvent::Message(Bytes::from_static(PING)));
    pings_sent(&drain(conn).0)
}

#[test]
fn a_message_received_after_the_keep_alive_interval_sends_the_overdue_ping_without_a_timer() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    assert_eq!(
        conn.poll_timeout(),
        Some(t0 + crate::Duration::from_secs(15))
    );
    // The timer of a throttled tab has not fired; a server message arrives 40 s in.
    assert_eq!(
        server_ping(&mut conn, t0 + crate::Duration::from_secs(40)),
        1
    );
    assert_eq!(conn.state(), State::Connected);
    // The next ping is due a whole interval after this one.
    assert_eq!(
        conn.poll_timeout(),
        Some(t0 + crate::Duration::from_secs(55))
    );
}

#[test]
fn a_message_received_well_before_the_ping_is_due_sends_no_ping() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    assert_eq!(
        server_ping(&mut conn, t0 + crate::Duration::from_secs(5)),
        0
    );
    assert_eq!(
        server_ping(&mut conn, t0 + crate::Duration::from_secs(11)),
        0
    );
    // Within the last quarter of the interval (11.25 s of 15 s) the ping goes out early.
    assert_eq!(
        server_ping(&mut conn, t0 + crate::Duration::from_secs(12)),
        1
    );
}

#[test]
fn with_a_server_ping_about_every_15_seconds_and_no_timer_the_client_keeps_pinging() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    let mut at = t0;
    let mut last_client_ping = t0; // the one sent with the handshake
    let mut longest = crate::Duration::ZERO;
    for i in 0..60 {
        // The server's heartbeat pings every 15–16 s; network jitter makes a gap a bit shorter.
        at += crate::Duration::from_millis(match i % 3 {
            0 => 14_900,
            1 => 15_000,
            _ => 16_000,
        });
        if server_ping(&mut conn, at) > 0 {
            longest = longest.max(at - last_client_ping);
            last_client_ping = at;
        }
        assert_eq!(conn.state(), State::Connected);
    }
    longest = longest.max(at - last_client_ping);
    // The server closes a client silent for 30 s (ClientTimeoutInterval).
    assert!(longest < crate::Duration::from_secs(28), "{longest:?}");
}

#[test]
fn a_message_after_the_server_timeout_deadline_keeps_the_connection() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    // The timer that should have reported the server timeout at 30 s is late; bytes came first.
    server_ping(&mut conn, t0 + crate::Duration::from_secs(45));
    assert_eq!(conn.state(), State::Connected);
}

#[test]
fn an_overdue_server_timeout_is_handled_on_other_network_input() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    // An HTTP outcome the connection no longer waits for, 31 s in, without a timer call.
    conn.handle_http(
        t0 + crate::Duration::from_secs(31),
        RequestId(u64::MAX),
        HttpEvent::Failed {
            timed_out: false,
            message: "late".into(),
        },
    );
    let (_, e) = drain(&mut conn);
    assert_eq!(conn.state(), State::Disconnected);
    assert!(
        matches!(e.last(), Some(Event::Closed(Some(Error::Transport(m)))) if m.contains("Server timeout")),
        "{e:?}"
    );
}

#[test]
fn an_overdue_stateful_ack_goes_out_with_the_next_message_received_without_a_timer() {
    let t0 = Instant::now();
    let mut config = Config::new("http://h/hubs/test");
    config.stateful_reconnect = true;
    let negotiate = br#"{"connectionId":"c1","connectionToken":"t1","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#;
    let mut conn = connect_ws(config, negotiate, t0);
    let invocation = Bytes::from_static(b"{\"type\":1,\"target\":\"Tick\",\"arguments\":[]}\x1e");
    conn.handle_websocket(t0, WebSocketEvent::Message(invocation.clone()));
    drain(&mut conn);
    // The Ack is due 1 s later; its timer is held back, and another message arrives at 2 s.
    conn.handle_websocket(
        t0 + crate::Duration::from_secs(2),
        WebSocketEvent::Message(invocation),
    );
    let (t, _) = drain(&mut conn);
    assert!(
        t.iter().any(|t| matches!(
            t,
            Transmit::WebSocketSend { data, .. } if data.starts_with(b"{\"type\":8,")
        )),
        "{t:?}"
    );
}

#[test]
fn an_invocation_id_is_read_back_only_in_its_canonical_decimal_form() {
    assert_eq!(invocation_number("0"), Some(0));
    assert_eq!(invocation_number("17"), Some(17));
    assert_eq!(invocation_number(&u64::MAX.to_string()), Some(u64::MAX));
    for other in [
        "",
        "00",
        "017",
        "+1",
        "-1",
        " 1",
        "1a",
        "18446744073709551616",
        "١",
    ] {
        assert_eq!(invocation_number(other), None, "{other:?}");
    }
}

#[test]
fn a_completion_whose_id_only_parses_to_a_pending_call_completes_nothing() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    let arg = RawValue::encode(Protocol::Json, &1).unwrap();
    let (id, _) = conn.invoke(t0, "Echo", vec![arg], vec![]).unwrap();
    assert_eq!(id, "0");
    drain(&mut conn);
    for padded in ["00", "+0"] {
        let message = format!("{{\"type\":3,\"invocationId\":\"{padded}\",\"result\":1}}\x1e");
        conn.handle_websocket(t0, WebSocketEvent::Message(Bytes::from(message)));
        let (_, e) = drain(&mut conn);
        assert!(e.is_empty(), "{padded}: {e:?}");
    }
    conn.handle_websocket(
        t0,
        WebSocketEvent::Message(Bytes::from_static(
            b"{\"type\":3,\"invocationId\":\"0\",\"result\":1}\x1e",
        )),
    );
    let (_, e) = drain(&mut conn);
    assert!(
        matches!(&e[..], [Event::InvocationCompleted { id, result: Ok(Some(_)) }] if id == "0"),
        "{e:?}"
    );
}

#[test]
fn a_connected_connection_gives_back_the_room_of_its_drained_queues() {
    let t0 = Instant::now();
    let mut conn = connect_ws(Config::new("http://h/hub"), NEGOTIATE, t0);
    let idle = |conn: &Connection| {
        conn.transmits.capacity() == 0
            && conn.events.capacity() == 0
            && conn.requests.capacity() == 0
            && conn.calls.capacity() == 0
    };
    assert!(idle(&conn), "after connecting");
    // A burst of calls grows the queues and maps; the connection then waits for nothing.
    for _ in 0..20 {
        let arg = RawValue::encode(Protocol::Json, &1).unwrap();
        conn.invoke(t0, "Echo", vec![arg], vec![]).unwrap();
    }
    drain(&mut conn);
    let replies: String = (0..20)
        .map(|i| format!("{{\"type\":3,\"invocationId\":\"{i}\",\"result\":1}}\x1e"))
        .collect();
    conn.handle_websocket(t0, WebSocketEvent::Message(Bytes::from(replies)));
    assert_eq!(drain(&mut conn).1.len(), 20);
    assert!(!idle(&conn), "a busy connection keeps its room");
    // The next thing the server sends by itself (its ping) lets the room go.
    conn.handle_websocket(
        t0,
        WebSocketEvent::Message(Bytes::from_static(b"{\"type\":6}\x1e")),
    );
    drain(&mut conn);
    assert!(idle(&conn), "after the server's ping");
    assert!(conn
        .link
        .as_ref()
        .is_some_and(|l| l.ws_target.is_none() && l.url.is_empty()));
}
