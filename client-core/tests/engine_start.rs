//! Scenario tests of the engine: negotiate, redirects, transport choice and fallback, the
//! handshake, skipNegotiation, access tokens and headers (checklist items named in each test).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod peer;

use bytes::Bytes;
use peer::{negotiate_body, Peer, ALL};
use talkback_core::protocol::Protocol;
use talkback_core::{
    Error, Event, HttpEvent, HttpMethod, State, Transmit, TransportKind, TransportSet,
    WebSocketEvent,
};

fn start_failed(events: &[Event]) -> Option<&Error> {
    events.iter().find_map(|e| match e {
        Event::StartFailed(error) => Some(error),
        _ => None,
    })
}

#[test]
fn item_04_the_handshake_asks_for_version_1_without_stateful_reconnect() {
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        let mut peer = Peer::new(Peer::config(protocol));
        peer.start().unwrap();
        peer.negotiate(negotiate_body("c", "t", ALL));
        peer.next_transmit();
        peer.ws(WebSocketEvent::Opened);
        let Transmit::WebSocketSend { data, .. } = peer.next_transmit() else {
            panic!("the handshake goes first")
        };
        let expected = format!("{{\"protocol\":\"{}\",\"version\":1}}\x1e", protocol.name());
        assert_eq!(&data[..], expected.as_bytes());
    }
}

#[test]
fn item_18_negotiate_is_an_empty_post_with_version_1_not_duplicated() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    let request = peer.expect_http();
    assert_eq!(request.method, HttpMethod::Post);
    assert!(request.body.is_empty());
    assert_eq!(
        request.url,
        "http://h/hubs/test/negotiate?negotiateVersion=1"
    );

    let config = talkback_core::Config::new("http://h/hubs/test?negotiateVersion=1&x=y");
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    let request = peer.expect_http();
    assert_eq!(
        request.url.matches("negotiateVersion").count(),
        1,
        "{}",
        request.url
    );
    assert!(request.url.contains("x=y"));
}

#[test]
fn item_19_a_base_path_ending_in_a_slash_gets_negotiate_appended_directly() {
    let config = talkback_core::Config::new("https://x/client/?hub=chat");
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    assert_eq!(
        peer.expect_http().url,
        "https://x/client/negotiate?hub=chat&negotiateVersion=1"
    );
}

#[test]
fn item_23_a_version_0_negotiate_uses_the_connection_id_as_token() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(Bytes::from_static(
        br#"{"connectionId":"abc","availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#,
    ));
    let Transmit::OpenWebSocket { url, .. } = peer.next_transmit() else {
        panic!()
    };
    assert_eq!(url, "ws://h/hubs/test?id=abc");
}

#[test]
fn item_24_unknown_negotiate_fields_are_ignored() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(Bytes::from_static(
        br#"{"connectionId":"a","connectionToken":"b","negotiateVersion":1,"tokenLifetimeSeconds":3600,"future":{"x":[1]},"availableTransports":[{"transport":"WebSockets","transferFormats":["Text"],"extra":true}]}"#,
    ));
    assert!(matches!(
        peer.next_transmit(),
        Transmit::OpenWebSocket { .. }
    ));
}

#[test]
fn item_25_a_classic_aspnet_signalr_server_is_refused() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(Bytes::from_static(
        br#"{"ProtocolVersion":"1.5","ConnectionId":"x"}"#,
    ));
    let events = peer.events();
    let error = start_failed(&events).expect("start fails").to_string();
    assert!(
        error.starts_with("Detected a connection attempt to an ASP.NET SignalR Server."),
        "{error}"
    );
}

#[test]
fn item_26_a_negotiate_error_fails_start_without_trying_a_transport() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(Bytes::from_static(
        br#"{"error":"This connection is not allowed."}"#,
    ));
    assert!(peer.transmits().is_empty(), "no transport is tried");
    let events = peer.events();
    assert_eq!(
        start_failed(&events),
        Some(&Error::Server("This connection is not allowed.".into()))
    );
    assert_eq!(peer.conn.state(), State::Disconnected);
}

#[test]
fn item_27_a_non_200_negotiate_fails_start_and_404_adds_the_hint() {
    for (status, hint) in [(500, false), (404, true)] {
        let mut peer = Peer::new(Peer::config(Protocol::Json));
        peer.start().unwrap();
        let request = peer.expect_http();
        peer.answer(&request, status, Bytes::new());
        let events = peer.events();
        let text = start_failed(&events).unwrap().to_string();
        assert!(
            text.contains(&format!(
                "Unexpected status code returned from negotiate '{status}'"
            )),
            "{text}"
        );
        assert_eq!(
            text.contains("Either this is not a SignalR endpoint"),
            hint,
            "{text}"
        );
    }
}

#[test]
fn item_28_a_redirect_is_negotiated_again_with_its_access_token() {
    let mut config = Peer::config(Protocol::Json);
    config.has_access_token_factory = true;
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    assert_eq!(peer.next_transmit(), Transmit::FetchAccessToken);
    peer.conn
        .handle_access_token(peer.now, Ok(Some("app-token".into())));
    let first = peer.expect_http();
    assert!(first
        .headers
        .contains(&("Authorization".into(), "Bearer app-token".into())));
    peer.answer(
        &first,
        200,
        Bytes::from_static(
            br#"{"url":"https://service/client/?hub=chat","accessToken":"service-token"}"#,
        ),
    );
    let second = peer.expect_http();
    assert_eq!(
        second.url,
        "https://service/client/negotiate?hub=chat&negotiateVersion=1"
    );
    assert!(
        second
            .headers
            .contains(&("Authorization".into(), "Bearer service-token".into())),
        "the redirect token replaces the factory's: {:?}",
        second.headers
    );
    peer.answer(&second, 200, negotiate_body("c", "t", ALL));
    let Transmit::OpenWebSocket { url, headers } = peer.next_transmit() else {
        panic!()
    };
    assert_eq!(url, "wss://service/client/?hub=chat&id=t");
    assert!(headers.contains(&("Authorization".into(), "Bearer service-token".into())));
}

#[test]
fn item_29_the_hundredth_redirect_stops_start() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    for _ in 0..100 {
        let request = peer.expect_http();
        peer.answer(
            &request,
            200,
            Bytes::from_static(br#"{"url":"http://h/hubs/test"}"#),
        );
    }
    assert!(peer.transmits().is_empty());
    let events = peer.events();
    assert_eq!(
        start_failed(&events).map(ToString::to_string).as_deref(),
        Some("Negotiate redirection limit exceeded.")
    );
}

#[test]
fn item_30_the_connect_url_appends_the_token_with_the_right_separator_unencoded() {
    let config = talkback_core::Config::new("http://h/hubs/test?tenant=a");
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c", "to+k/en=", ALL));
    let Transmit::OpenWebSocket { url, .. } = peer.next_transmit() else {
        panic!()
    };
    assert_eq!(url, "ws://h/hubs/test?tenant=a&id=to+k/en=");
}

#[test]
fn item_31_transports_are_tried_in_server_order_skipping_unknown_disabled_and_binary_less() {
    let mut config = Peer::config(Protocol::MessagePack);
    config.transports =
        TransportSet::only(TransportKind::ServerSentEvents).with(TransportKind::LongPolling);
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    peer.negotiate(negotiate_body(
        "c",
        "t",
        &[
            ("Carrier", &["Text", "Binary"]),
            ("WebSockets", &["Text", "Binary"]),
            ("ServerSentEvents", &["Text"]),
            ("LongPolling", &["Text", "Binary"]),
        ],
    ));
    let poll = peer.expect_http();
    assert_eq!(
        poll.method,
        HttpMethod::Get,
        "long polling is the only candidate"
    );
    assert!(
        poll.url.starts_with("http://h/hubs/test?id=t&_="),
        "{}",
        poll.url
    );
}

#[test]
fn item_32_a_transport_that_fails_to_start_gets_a_fresh_negotiate_for_the_next() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c1", "t1", ALL));
    assert!(matches!(
        peer.next_transmit(),
        Transmit::OpenWebSocket { .. }
    ));
    peer.ws(WebSocketEvent::Failed {
        status: Some(404),
        message: "refused".into(),
    });
    peer.negotiate(negotiate_body("c2", "t2", ALL));
    let sse = peer.expect_http();
    assert_eq!(
        sse.url, "http://h/hubs/test?id=t2",
        "the second token is used"
    );
    assert!(sse.streaming);
}

#[test]
fn item_33_the_aggregate_error_names_every_failed_transport() {
    let mut config = Peer::config(Protocol::Json);
    config.transports =
        TransportSet::only(TransportKind::WebSockets).with(TransportKind::LongPolling);
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c", "t", ALL));
    peer.next_transmit();
    peer.ws(WebSocketEvent::Failed {
        status: None,
        message: "WebSocket failed to connect.".into(),
    });
    peer.negotiate(negotiate_body("c", "t", ALL));
    let poll = peer.expect_http();
    peer.answer(&poll, 500, Bytes::new());
    let events = peer.events();
    let text = start_failed(&events).unwrap().to_string();
    assert!(
        text.starts_with("Unable to connect to the server with any of the available transports."),
        "{text}"
    );
    assert!(
        text.contains("WebSockets failed: WebSocket failed to connect."),
        "{text}"
    );
    assert!(
        text.contains("ServerSentEvents failed: 'ServerSentEvents' is disabled by the client."),
        "{text}"
    );
    assert!(text.contains("LongPolling failed:"), "{text}");
}

#[test]
fn item_34_skip_negotiation_needs_websockets_only_and_connects_without_an_id() {
    let mut config = Peer::config(Protocol::Json);
    config.skip_negotiation = true;
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    let events = peer.events();
    assert_eq!(
        start_failed(&events).map(ToString::to_string).as_deref(),
        Some("Negotiation can only be skipped when using the WebSocket transport directly.")
    );

    let mut config = Peer::config(Protocol::Json);
    config.skip_negotiation = true;
    config.transports = TransportSet::only(TransportKind::WebSockets);
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    let Transmit::OpenWebSocket { url, .. } = peer.next_transmit() else {
        panic!("no negotiate")
    };
    assert_eq!(url, "ws://h/hubs/test");
    peer.ws(WebSocketEvent::Opened);
    peer.ws(WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
    assert!(peer.events().contains(&Event::Started {
        connection_id: None
    }));
    assert_eq!(peer.conn.connection_id(), None);
}

#[test]
fn item_35_the_token_goes_in_the_query_for_browsers_and_in_a_header_for_native() {
    for in_query in [false, true] {
        let mut config = Peer::config(Protocol::Json);
        config.has_access_token_factory = true;
        config.access_token_in_query = in_query;
        config.headers_on_websocket = !in_query;
        let mut peer = Peer::new(config);
        peer.start().unwrap();
        peer.next_transmit();
        peer.conn
            .handle_access_token(peer.now, Ok(Some("a b/c".into())));
        peer.negotiate(negotiate_body("c", "t", ALL));
        let Transmit::OpenWebSocket { url, headers } = peer.next_transmit() else {
            panic!()
        };
        if in_query {
            assert_eq!(url, "ws://h/hubs/test?id=t&access_token=a%20b%2Fc");
            assert!(headers.is_empty());
        } else {
            assert_eq!(url, "ws://h/hubs/test?id=t");
            assert!(headers.contains(&("Authorization".into(), "Bearer a b/c".into())));
        }
    }
}

#[test]
fn item_50_user_agent_and_user_headers_go_on_every_http_request() {
    let mut config = Peer::config(Protocol::Json);
    config.transports = TransportSet::only(TransportKind::LongPolling);
    config.user_agent = "Microsoft SignalR/10.0 (0.1.0; Linux; Rust; 1.x)".into();
    config.headers = vec![("X-Custom".into(), "1".into())];
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    let mut requests = vec![peer.negotiate(negotiate_body("c", "t", ALL))];
    let poll = peer.expect_http();
    peer.answer(&poll, 200, Bytes::new());
    requests.push(poll);
    requests.push(peer.expect_http()); // the handshake POST
    for request in requests {
        assert!(
            request.headers.contains(&(
                "User-Agent".into(),
                "Microsoft SignalR/10.0 (0.1.0; Linux; Rust; 1.x)".into()
            )),
            "{request:?}"
        );
        assert!(
            request.headers.contains(&("X-Custom".into(), "1".into())),
            "{request:?}"
        );
    }
}

#[test]
fn item_52_the_token_factory_runs_for_every_negotiate_and_once_more_on_a_401() {
    let mut config = Peer::config(Protocol::Json);
    config.has_access_token_factory = true;
    config.transports = TransportSet::only(TransportKind::LongPolling);
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    assert_eq!(peer.next_transmit(), Transmit::FetchAccessToken);
    peer.conn
        .handle_access_token(peer.now, Ok(Some("one".into())));
    peer.negotiate(negotiate_body("c", "t", ALL));
    let poll = peer.expect_http();
    assert!(
        poll.headers
            .contains(&("Authorization".into(), "Bearer one".into())),
        "the cached token is reused"
    );
    peer.answer(&poll, 200, Bytes::new());
    let handshake = peer.expect_http();
    let _second_poll = peer.expect_http();
    peer.answer(&handshake, 401, Bytes::new());
    assert_eq!(
        peer.next_transmit(),
        Transmit::FetchAccessToken,
        "a 401 refreshes the token"
    );
    peer.conn
        .handle_access_token(peer.now, Ok(Some("two".into())));
    let retry = peer.expect_http();
    assert_eq!(retry.body, handshake.body, "the same send is retried");
    assert!(retry
        .headers
        .contains(&("Authorization".into(), "Bearer two".into())));
    peer.answer(&retry, 401, Bytes::new());
    assert!(
        !peer.transmits().contains(&Transmit::FetchAccessToken),
        "only one retry"
    );
    assert_eq!(
        peer.conn.state(),
        State::Disconnected,
        "a refused handshake fails the start"
    );
}

#[test]
fn a_failing_token_factory_fails_start_with_an_access_token_error() {
    let mut config = Peer::config(Protocol::Json);
    config.has_access_token_factory = true;
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    assert_eq!(peer.next_transmit(), Transmit::FetchAccessToken);
    peer.conn
        .handle_access_token(peer.now, Err("the identity provider is down".into()));
    assert_eq!(peer.conn.state(), State::Disconnected);
    let events = peer.events();
    assert_eq!(
        start_failed(&events),
        Some(&Error::AccessToken(
            "Failed to complete negotiation with the server: the identity provider is down".into()
        ))
    );
}

#[test]
fn item_58_a_failed_first_start_reports_start_failed_and_no_close() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    let request = peer.expect_http();
    peer.http_event(
        &request,
        HttpEvent::Failed {
            timed_out: false,
            message: "connection refused".into(),
        },
    );
    let events = peer.events();
    assert!(start_failed(&events).is_some());
    assert!(
        !events.iter().any(|e| matches!(e, Event::Closed(_))),
        "{events:?}"
    );
    assert_eq!(
        events.first(),
        Some(&Event::StateChanged {
            from: State::Disconnected,
            to: State::Connecting
        })
    );
}

#[test]
fn item_08_a_handshake_error_fails_start_with_the_reference_text() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c", "t", ALL));
    peer.next_transmit();
    peer.ws(WebSocketEvent::Opened);
    peer.ws(WebSocketEvent::Message(Bytes::from_static(
        b"{\"error\":\"The protocol 'json' is not supported.\"}\x1e",
    )));
    let events = peer.events();
    assert_eq!(
        start_failed(&events).map(ToString::to_string).as_deref(),
        Some("Server returned handshake error: The protocol 'json' is not supported.")
    );
    assert!(peer.transmits().contains(&Transmit::CloseWebSocket));
}

#[test]
fn item_03_hub_messages_after_the_handshake_response_are_read_in_the_same_pass() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c", "t", ALL));
    peer.next_transmit();
    peer.ws(WebSocketEvent::Opened);
    // The response arrives split, with an Invocation glued to it.
    peer.ws(WebSocketEvent::Message(Bytes::from_static(b"{")));
    peer.ws(WebSocketEvent::Message(Bytes::from_static(
        b"}\x1e{\"type\":1,\"target\":\"Welcome\",\"arguments\":[\"c\"]}\x1e",
    )));
    let events = peer.events();
    assert!(events.contains(&Event::Started {
        connection_id: Some("c".into())
    }));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Invocation { target, .. } if target == "Welcome")));
}

#[test]
fn item_84_a_server_that_turns_on_stateful_reconnect_unasked_fails_start() {
    let mut peer = Peer::new(Peer::config(Protocol::Json));
    peer.start().unwrap();
    peer.negotiate(Bytes::from_static(
        br#"{"connectionId":"c","connectionToken":"t","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{"transport":"WebSockets","transferFormats":["Text"]}]}"#,
    ));
    let events = peer.events();
    assert_eq!(
        start_failed(&events).map(ToString::to_string).as_deref(),
        Some("Client didn't negotiate Stateful Reconnect but the server did.")
    );
}

#[test]
fn item_83_stateful_reconnect_asks_in_negotiate_and_uses_version_2_on_websockets_only() {
    for (transport, version) in [("WebSockets", 2), ("LongPolling", 1)] {
        let mut config = Peer::config(Protocol::Json);
        config.stateful_reconnect = true;
        let mut peer = Peer::new(config);
        peer.start().unwrap();
        let request = peer.expect_http();
        assert!(
            request
                .url
                .ends_with("negotiateVersion=1&useStatefulReconnect=true"),
            "{}",
            request.url
        );
        let body = format!(
            r#"{{"connectionId":"c","connectionToken":"t","negotiateVersion":1,"useStatefulReconnect":true,"availableTransports":[{{"transport":"{transport}","transferFormats":["Text"]}}]}}"#
        );
        peer.answer(&request, 200, body);
        let handshake = match peer.next_transmit() {
            Transmit::OpenWebSocket { .. } => {
                peer.ws(WebSocketEvent::Opened);
                match peer.next_transmit() {
                    Transmit::WebSocketSend { data, .. } => data,
                    other => panic!("{other:?}"),
                }
            }
            Transmit::Http(poll) => {
                peer.answer(&poll, 200, Bytes::new());
                peer.expect_http().body
            }
            other => panic!("{other:?}"),
        };
        let expected = format!("{{\"protocol\":\"json\",\"version\":{version}}}\x1e");
        assert_eq!(&handshake[..], expected.as_bytes(), "{transport}");
    }
}

#[test]
fn malformed_server_bytes_close_with_a_protocol_error_and_never_panic() {
    for garbage in [
        &b"{\"type\":1,\"target\":5}\x1e"[..],
        b"\xff\xfe\x1e",
        b"[1,2]\x1e",
    ] {
        let mut peer = Peer::new(Peer::config(Protocol::Json));
        peer.connect_ws();
        peer.ws(WebSocketEvent::Message(Bytes::copy_from_slice(garbage)));
        let events = peer.events();
        assert!(
            matches!(events.last(), Some(Event::Closed(Some(Error::Protocol(_))))),
            "{garbage:?}: {events:?}"
        );
    }
}

#[test]
fn an_sse_stream_that_never_answers_is_closed_after_the_handshake_timeout_and_the_next_transport_tried(
) {
    let mut config = Peer::config(Protocol::Json);
    config.transports =
        TransportSet::only(TransportKind::ServerSentEvents).with(TransportKind::LongPolling);
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c1", "t1", ALL));
    let sse = peer.expect_http();
    assert!(sse.streaming);
    // A proxy holds the stream: no head, no bytes.
    peer.advance(talkback_core::Duration::from_millis(14_999));
    assert!(peer.transmits().is_empty());
    peer.advance(talkback_core::Duration::from_millis(1));
    assert_eq!(peer.next_transmit(), Transmit::AbortHttp(sse.id));
    let negotiate = peer.expect_http();
    assert!(negotiate.url.contains("/negotiate?"), "a fresh negotiate");
    peer.answer(&negotiate, 200, negotiate_body("c2", "t2", ALL));
    let poll = peer.expect_http();
    assert_eq!(poll.method, HttpMethod::Get);
    assert!(poll.url.contains("id=t2"), "{}", poll.url);
    assert_eq!(peer.conn.state(), State::Connecting);
}

#[test]
fn a_websocket_whose_handshake_never_completes_is_closed_and_every_failure_is_reported() {
    let mut config = Peer::config(Protocol::Json);
    config.transports = TransportSet::only(TransportKind::WebSockets);
    config.handshake_timeout = talkback_core::Duration::from_secs(5);
    let mut peer = Peer::new(config);
    peer.start().unwrap();
    peer.negotiate(negotiate_body("c1", "t1", ALL));
    peer.next_transmit();
    peer.ws(WebSocketEvent::Opened);
    peer.transmits();
    peer.advance(talkback_core::Duration::from_secs(5));
    assert!(peer.transmits().contains(&Transmit::CloseWebSocket));
    assert_eq!(peer.conn.state(), State::Disconnected);
    let events = peer.events();
    let error = start_failed(&events).expect("start fails");
    assert_eq!(
        error.to_string(),
        "Unable to connect to the server with any of the available transports. WebSockets \
         failed: The transport did not open and complete the handshake within 5000 ms. \
         ServerSentEvents failed: 'ServerSentEvents' is disabled by the client. LongPolling \
         failed: 'LongPolling' is disabled by the client."
    );
}
