//! Negotiate URL, response parsing and transport selection (docs/protocol/transport.md,
//! "Negotiate request" to "Transport selection and fallback").

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use proptest::prelude::*;
use talkback_core::negotiate::*;
use talkback_core::{TransferFormat, TransportKind, TransportSet};

fn conn(r: NegotiateResponse) -> NegotiateConnection {
    match r {
        NegotiateResponse::Connection(c) => c,
        other => panic!("expected a connection, got {other:?}"),
    }
}

#[test]
fn item_18_negotiate_url_adds_version_once_and_keeps_the_query() {
    assert_eq!(
        negotiate_url("https://x/client/?hub=chat", false).unwrap(),
        "https://x/client/negotiate?hub=chat&negotiateVersion=1"
    );
    assert_eq!(
        negotiate_url("http://localhost:5000/hub", false).unwrap(),
        "http://localhost:5000/hub/negotiate?negotiateVersion=1"
    );
    assert_eq!(
        negotiate_url("http://h/hub?NegotiateVersion=1", false).unwrap(),
        "http://h/hub/negotiate?NegotiateVersion=1"
    );
    assert_eq!(
        negotiate_url("http://h/hub?a=1", true).unwrap(),
        "http://h/hub/negotiate?a=1&negotiateVersion=1&useStatefulReconnect=true"
    );
    assert_eq!(
        negotiate_url("http://h/hub?useStatefulReconnect=true", true).unwrap(),
        "http://h/hub/negotiate?useStatefulReconnect=true&negotiateVersion=1"
    );
    assert!(negotiate_url("not a url", false).is_err());
}

#[test]
fn item_19_negotiate_url_handles_paths_with_and_without_a_trailing_slash() {
    assert_eq!(
        negotiate_url("https://x/client/", false).unwrap(),
        "https://x/client/negotiate?negotiateVersion=1"
    );
    assert_eq!(
        negotiate_url("https://x/client", false).unwrap(),
        "https://x/client/negotiate?negotiateVersion=1"
    );
    assert_eq!(
        negotiate_url("https://x", false).unwrap(),
        "https://x/negotiate?negotiateVersion=1"
    );
}

#[test]
fn stateful_reconnect_in_the_user_url_is_detected() {
    assert!(url_requests_stateful_reconnect(
        "http://h/hub?UseStatefulReconnect=true"
    ));
    assert!(!url_requests_stateful_reconnect(
        "http://h/hub?useStatefulReconnect=false"
    ));
    assert!(!url_requests_stateful_reconnect("http://h/hub"));
}

#[test]
fn a_v1_response_is_parsed_with_its_token_transports_and_stateful_flag() {
    let body = br#"{"connectionToken":"tok","connectionId":"id","negotiateVersion":1,
        "availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},
        {"transport":"ServerSentEvents","transferFormats":["Text"]},
        {"transport":"LongPolling","transferFormats":["Text","Binary"]}],
        "useStatefulReconnect":true}"#;
    let c = conn(NegotiateResponse::parse(body).unwrap());
    assert_eq!(c.connection_id, "id");
    assert_eq!(c.connection_token, "tok");
    assert_eq!(c.negotiate_version, 1);
    assert!(c.use_stateful_reconnect);
    let names: Vec<&str> = c
        .available_transports
        .iter()
        .map(|t| t.transport.as_str())
        .collect();
    assert_eq!(names, ["WebSockets", "ServerSentEvents", "LongPolling"]);
    assert_eq!(
        c.available_transports[1].transfer_formats,
        [TransferFormat::Text]
    );
}

#[test]
fn item_23_version_0_uses_the_connection_id_as_the_token() {
    let c = conn(
        NegotiateResponse::parse(br#"{"connectionId":"abc","availableTransports":[]}"#).unwrap(),
    );
    assert_eq!(c.connection_token, "abc");
    assert_eq!(c.negotiate_version, 0);
    let c = conn(
        NegotiateResponse::parse(
            br#"{"connectionId":"abc","connectionToken":"ignored","negotiateVersion":0}"#,
        )
        .unwrap(),
    );
    assert_eq!(c.connection_token, "abc");
}

#[test]
fn item_24_unknown_fields_and_formats_are_ignored_and_unknown_transports_kept() {
    let body = br#"{"connectionId":"i","connectionToken":"t","negotiateVersion":1,
        "tokenLifetimeSeconds":3600,"somethingNew":{"a":[1,2]},
        "availableTransports":[{"transport":"WebTransport","transferFormats":["Text","Quantum"],"extra":1}]}"#;
    let c = conn(NegotiateResponse::parse(body).unwrap());
    assert_eq!(c.available_transports[0].transport, "WebTransport");
    assert_eq!(
        c.available_transports[0].transfer_formats,
        [TransferFormat::Text]
    );
    assert!(!c.use_stateful_reconnect);
}

#[test]
fn item_25_a_protocol_version_field_is_rejected_as_asp_net_signalr() {
    let err =
        NegotiateResponse::parse(br#"{"ProtocolVersion":"1.5","ConnectionId":"x"}"#).unwrap_err();
    assert_eq!(err, NegotiateParseError::AspNetSignalR);
    assert!(err.to_string().contains("ASP.NET SignalR Server"));
}

#[test]
fn item_26_an_error_field_becomes_the_error_response() {
    assert_eq!(
        NegotiateResponse::parse(br#"{"error":"This connection is not allowed."}"#).unwrap(),
        NegotiateResponse::Error("This connection is not allowed.".into())
    );
}

#[test]
fn empty_error_url_and_token_count_as_absent_like_the_reference_client() {
    let c = conn(
        NegotiateResponse::parse(
            br#"{"error":"","url":"","connectionId":"i","ProtocolVersion":""}"#,
        )
        .unwrap(),
    );
    assert_eq!(c.connection_id, "i");
    assert_eq!(
        NegotiateResponse::parse(br#"{"url":"https://svc","accessToken":""}"#).unwrap(),
        NegotiateResponse::Redirect {
            url: "https://svc".into(),
            access_token: None
        }
    );
    assert_eq!(
        NegotiateResponse::parse(br#"{"error":"no","ProtocolVersion":"1.5"}"#).unwrap(),
        NegotiateResponse::Error("no".into())
    );
}

#[test]
fn item_28_a_redirect_needs_no_connection_id_and_keeps_its_access_token() {
    assert_eq!(
        NegotiateResponse::parse(br#"{"url":"https://svc/client/?hub=chat","accessToken":"jwt"}"#)
            .unwrap(),
        NegotiateResponse::Redirect {
            url: "https://svc/client/?hub=chat".into(),
            access_token: Some("jwt".into())
        }
    );
    assert_eq!(
        NegotiateResponse::parse(br#"{"url":"https://svc"}"#).unwrap(),
        NegotiateResponse::Redirect {
            url: "https://svc".into(),
            access_token: None
        }
    );
}

#[test]
fn malformed_and_oversized_bodies_get_clear_errors() {
    for body in [
        &b""[..],
        b"[]",
        b"{",
        b"{\"negotiateVersion\":1,\"connectionId\":\"i\"}",
        b"{\"connectionId\":5}",
        b"{\"connectionId\":\"i\",\"availableTransports\":{}}",
        b"{\"connectionId\":\"i\",\"negotiateVersion\":-1}",
    ] {
        assert!(
            matches!(
                NegotiateResponse::parse(body),
                Err(NegotiateParseError::Invalid(_))
            ),
            "{body:?}"
        );
    }
    let big = format!(r#"{{"connectionId":"{}"}}"#, "a".repeat(MAX_FIELD_LEN + 1));
    assert!(NegotiateResponse::parse(big.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("longer than"));
    let huge = vec![b' '; MAX_NEGOTIATE_BODY + 1];
    assert!(NegotiateResponse::parse(&huge)
        .unwrap_err()
        .to_string()
        .contains("more than"));
}

#[test]
fn item_30_connect_url_appends_the_token_without_reencoding() {
    assert_eq!(
        connect_url("http://h/hub", "a+b/c=="),
        "http://h/hub?id=a+b/c=="
    );
    assert_eq!(
        connect_url("http://h/hub?x=1", "tok"),
        "http://h/hub?x=1&id=tok"
    );
}

#[test]
fn access_tokens_are_encoded_like_encode_uri_component() {
    assert_eq!(
        with_access_token("http://h/hub?id=1", "a b+c/d=é!~*'()"),
        "http://h/hub?id=1&access_token=a%20b%2Bc%2Fd%3D%C3%A9!~*'()"
    );
    assert_eq!(
        with_access_token("http://h/hub", "t"),
        "http://h/hub?access_token=t"
    );
}

#[test]
fn http_urls_become_websocket_urls() {
    assert_eq!(websocket_url("http://h/hub?id=1"), "ws://h/hub?id=1");
    assert_eq!(websocket_url("https://h/hub"), "wss://h/hub");
    assert_eq!(websocket_url("ws://h/hub"), "ws://h/hub");
}

#[test]
fn a_url_with_a_multibyte_character_in_its_first_bytes_is_returned_unchanged_without_a_panic() {
    for url in ["ws:é", "é", "htt\u{e9}p://h", "h\u{1F600}"] {
        assert_eq!(websocket_url(url), url);
    }
    assert_eq!(websocket_url("http://hé/hub"), "ws://hé/hub");
}

fn transport(name: &str, formats: &[TransferFormat]) -> AvailableTransport {
    AvailableTransport {
        transport: name.into(),
        transfer_formats: formats.to_vec(),
    }
}

#[test]
fn item_31_transports_are_chosen_in_server_order_skipping_unknown_disabled_and_format_lacking() {
    use TransferFormat::{Binary, Text};
    let available = [
        transport("WebTransport", &[Text, Binary]),
        transport("LongPolling", &[Text, Binary]),
        transport("ServerSentEvents", &[Text]),
        transport("WebSockets", &[Text, Binary]),
    ];
    let client =
        TransportSet::only(TransportKind::ServerSentEvents).with(TransportKind::LongPolling);
    let choice = choose_transports(&available, client, Binary);
    assert_eq!(choice.candidates, [TransportKind::LongPolling]);
    let reasons: Vec<&str> = choice.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "Skipping transport 'WebTransport' because it is not supported by this client.",
            "'ServerSentEvents' does not support Binary.",
            "'WebSockets' is disabled by the client.",
        ]
    );
    assert_eq!(choice.no_candidate_error(), None);

    let choice = choose_transports(&available, TransportSet::ALL, Text);
    assert_eq!(
        choice.candidates,
        [
            TransportKind::LongPolling,
            TransportKind::ServerSentEvents,
            TransportKind::WebSockets
        ]
    );
}

#[test]
fn no_candidates_give_the_reference_errors() {
    let choice = choose_transports(&[], TransportSet::ALL, TransferFormat::Text);
    assert_eq!(choice.no_candidate_error().unwrap(), NO_COMMON_TRANSPORT);
    let choice = choose_transports(
        &[transport("ServerSentEvents", &[TransferFormat::Text])],
        TransportSet::ALL,
        TransferFormat::Binary,
    );
    assert_eq!(
        choice.no_candidate_error().unwrap(),
        "Unable to connect to the server with any of the available transports. \
         ServerSentEvents failed: 'ServerSentEvents' does not support Binary."
    );
}

#[test]
fn status_and_wrapper_messages_match_the_reference_client() {
    assert_eq!(
        unexpected_status_message(500, b""),
        "Unexpected status code returned from negotiate '500'"
    );
    assert_eq!(
        unexpected_status_message(404, b"\n"),
        "Unexpected status code returned from negotiate '404' Either this is not a SignalR endpoint or there is a proxy blocking the connection."
    );
    assert_eq!(
        negotiation_failed_message("boom"),
        "Failed to complete negotiation with the server: boom"
    );
    assert_eq!(
        unable_to_connect_message(&["WebSockets failed: x".into(), "LongPolling failed: y".into()]),
        "Unable to connect to the server with any of the available transports. WebSockets failed: x LongPolling failed: y"
    );
    assert_eq!(
        unexpected_status_message(502, b"<h1>502 Bad Gateway</h1>\r\n"),
        "Unexpected status code returned from negotiate '502': <h1>502 Bad Gateway</h1>"
    );
}

fn arb_format() -> impl Strategy<Value = Vec<TransferFormat>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![TransferFormat::Text]),
        Just(vec![TransferFormat::Binary]),
        Just(vec![TransferFormat::Text, TransferFormat::Binary]),
    ]
}

fn arb_response() -> impl Strategy<Value = NegotiateResponse> {
    let connection = (
        ".{0,40}",
        ".{0,40}",
        0u32..3,
        prop::collection::vec((".{0,20}", arb_format()), 0..5),
        any::<bool>(),
    )
        .prop_map(|(id, token, version, transports, stateful)| {
            let connection_token = if version >= 1 { token } else { id.clone() };
            NegotiateResponse::Connection(NegotiateConnection {
                connection_id: id,
                connection_token,
                negotiate_version: version,
                available_transports: transports
                    .into_iter()
                    .map(|(transport, transfer_formats)| AvailableTransport {
                        transport,
                        transfer_formats,
                    })
                    .collect(),
                use_stateful_reconnect: stateful,
            })
        });
    prop_oneof![
        connection,
        (".{1,60}", prop::option::of(".{1,60}"))
            .prop_map(|(url, access_token)| NegotiateResponse::Redirect { url, access_token }),
        ".{1,60}".prop_map(NegotiateResponse::Error),
    ]
}

proptest! {
    #[test]
    fn to_json_then_parse_gives_back_the_response(response in arb_response()) {
        let json = response.to_json();
        prop_assert_eq!(NegotiateResponse::parse(json.as_bytes()).unwrap(), response);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = NegotiateResponse::parse(&body);
    }

    #[test]
    fn parse_never_panics_on_json_like_text(body in r#"[{}\[\]",:a-zA-Z0-9 ]{0,200}"#) {
        let _ = NegotiateResponse::parse(body.as_bytes());
    }
}
