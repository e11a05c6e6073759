//! A scripted SignalR server for the sans-IO engine, with virtual time.
//!
//! The test drives the [`Connection`] through this peer: it answers the engine's HTTP requests
//! and WebSocket operations by hand, encodes server messages with the core's own codecs and
//! decodes what the client sent. Time only moves when the test calls [`Peer::advance`], so
//! scenarios spanning minutes run in microseconds.
#![allow(dead_code)]

use bytes::Bytes;
use talkback_core::protocol::{Decoded, HubMessage, Protocol, RawValue};
use talkback_core::{
    Config, Connection, Duration, Event, HttpEvent, HttpMethod, HttpRequest, Instant, State,
    Transmit, WebSocketEvent,
};

/// The engine under test plus everything it produced that the test has not looked at yet.
pub(crate) struct Peer {
    pub conn: Connection,
    pub now: Instant,
    pub protocol: Protocol,
    transmits: Vec<Transmit>,
    events: Vec<Event>,
}

/// A negotiate v1 body offering `transports` (name, formats).
pub(crate) fn negotiate_body(id: &str, token: &str, transports: &[(&str, &[&str])]) -> Bytes {
    let transports: Vec<serde_json::Value> = transports
        .iter()
        .map(|(name, formats)| serde_json::json!({"transport": name, "transferFormats": formats}))
        .collect();
    Bytes::from(
        serde_json::json!({
            "connectionId": id, "connectionToken": token, "negotiateVersion": 1,
            "availableTransports": transports,
        })
        .to_string(),
    )
}

/// Every transport with its usual formats.
pub(crate) const ALL: &[(&str, &[&str])] = &[
    ("WebSockets", &["Text", "Binary"]),
    ("ServerSentEvents", &["Text"]),
    ("LongPolling", &["Text", "Binary"]),
];

impl Peer {
    /// A disconnected engine with `config`.
    pub(crate) fn new(config: Config) -> Self {
        let protocol = config.protocol;
        Peer {
            conn: Connection::new(config),
            now: Instant::now(),
            protocol,
            transmits: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A config for `http://h/hubs/test` with `protocol`.
    pub(crate) fn config(protocol: Protocol) -> Config {
        let mut config = Config::new("http://h/hubs/test");
        config.protocol = protocol;
        config
    }

    fn pump(&mut self) {
        while let Some(t) = self.conn.poll_transmit() {
            self.transmits.push(t);
        }
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
    }

    /// Everything the engine asked for since the last call.
    pub(crate) fn transmits(&mut self) -> Vec<Transmit> {
        self.pump();
        std::mem::take(&mut self.transmits)
    }

    /// Every event since the last call.
    pub(crate) fn events(&mut self) -> Vec<Event> {
        self.pump();
        std::mem::take(&mut self.events)
    }

    /// Calls `start` and returns its result.
    pub(crate) fn start(&mut self) -> Result<(), talkback_core::Error> {
        let r = self.conn.start(self.now);
        self.pump();
        r
    }

    /// The next transmit, which must be an HTTP request.
    pub(crate) fn expect_http(&mut self) -> HttpRequest {
        self.pump();
        assert!(
            !self.transmits.is_empty(),
            "expected an HTTP request, got nothing"
        );
        match self.transmits.remove(0) {
            Transmit::Http(request) => request,
            other => panic!("expected an HTTP request, got {other:?}"),
        }
    }

    /// The next transmit, whatever it is.
    pub(crate) fn next_transmit(&mut self) -> Transmit {
        self.pump();
        assert!(
            !self.transmits.is_empty(),
            "expected a transmit, got nothing"
        );
        self.transmits.remove(0)
    }

    /// Answers a request with a whole response.
    pub(crate) fn answer(&mut self, request: &HttpRequest, status: u16, body: impl Into<Bytes>) {
        self.conn.handle_http(
            self.now,
            request.id,
            HttpEvent::Response {
                status,
                body: body.into(),
            },
        );
        self.pump();
    }

    /// Reports an HTTP event.
    pub(crate) fn http_event(&mut self, request: &HttpRequest, event: HttpEvent) {
        self.conn.handle_http(self.now, request.id, event);
        self.pump();
    }

    /// Reports a WebSocket event.
    pub(crate) fn ws(&mut self, event: WebSocketEvent) {
        self.conn.handle_websocket(self.now, event);
        self.pump();
    }

    /// Answers the negotiate with `body` and returns the request.
    pub(crate) fn negotiate(&mut self, body: Bytes) -> HttpRequest {
        let request = self.expect_http();
        assert_eq!(request.method, HttpMethod::Post, "negotiate is a POST");
        assert!(request.url.contains("/negotiate?"), "{}", request.url);
        self.answer(&request, 200, body);
        request
    }

    /// Starts and connects over WebSockets with a handshake `{}` and drains what it produced.
    pub(crate) fn connect_ws(&mut self) {
        self.start().unwrap();
        self.negotiate(negotiate_body("c1", "t1", ALL));
        match self.next_transmit() {
            Transmit::OpenWebSocket { .. } => {}
            other => panic!("expected OpenWebSocket, got {other:?}"),
        }
        self.ws(WebSocketEvent::Opened);
        self.ws(WebSocketEvent::Message(Bytes::from_static(b"{}\x1e")));
        assert_eq!(self.conn.state(), State::Connected);
        self.transmits();
        self.events();
    }

    /// Encodes `message` in the peer's protocol and delivers it over the WebSocket.
    pub(crate) fn server_sends(&mut self, message: HubMessage) {
        let mut bytes = Vec::new();
        self.protocol.encode(&message, &mut bytes);
        self.ws(WebSocketEvent::Message(bytes.into()));
    }

    /// The hub messages the client sent over the WebSocket since the last look (the handshake
    /// request, which is JSON text, is skipped).
    pub(crate) fn client_sent(&mut self) -> Vec<HubMessage> {
        let mut out = Vec::new();
        for transmit in self.transmits() {
            if let Transmit::WebSocketSend { data, .. } = transmit {
                out.extend(decode_all(self.protocol, &data));
            }
        }
        out
    }

    /// Moves virtual time forward by `d`, firing every deadline on the way in order.
    pub(crate) fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(deadline) = self.conn.poll_timeout() {
            if deadline > end {
                break;
            }
            self.now = self.now.max(deadline);
            self.conn.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
    }

    /// An argument in the peer's protocol.
    pub(crate) fn arg<T: serde::Serialize>(&self, value: T) -> RawValue {
        RawValue::encode(self.protocol, &value).unwrap()
    }
}

/// Decodes every framed message in `data` (handshake records are skipped).
pub(crate) fn decode_all(protocol: Protocol, data: &[u8]) -> Vec<HubMessage> {
    if data.starts_with(b"{\"protocol\"") {
        return Vec::new();
    }
    let mut framer = protocol.framer(1 << 20);
    framer.push(data);
    let mut out = Vec::new();
    while let Some(record) = framer.next_record().unwrap() {
        if let Decoded::Message(message) = protocol.decode(&record).unwrap() {
            out.push(message);
        }
    }
    out
}
