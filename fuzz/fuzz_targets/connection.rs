//! The whole engine under hostile servers: the first byte picks the protocol and the transport,
//! the rest is split into negotiate body, handshake and hub bytes fed in arbitrary chunks. The
//! engine must never panic, whatever the server sends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::{
    Config, Connection, Duration, HttpEvent, Instant, Protocol, Transmit, TransportKind,
    TransportSet, WebSocketEvent,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut config = Config::new("http://h/hubs/x");
    config.protocol = if mode & 1 == 0 { Protocol::Json } else { Protocol::MessagePack };
    config.stateful_reconnect = mode & 2 != 0;
    let kind = match (mode >> 2) % 3 {
        0 => TransportKind::WebSockets,
        1 => TransportKind::ServerSentEvents,
        _ => TransportKind::LongPolling,
    };
    config.transports = TransportSet::only(kind);
    config.reconnect_policy = Some(Box::new(talkback_core::reconnect::ListReconnectPolicy::default()));
    let mut conn = Connection::new(config);
    conn.start(t0).unwrap();
    let negotiate = format!(
        r#"{{"connectionId":"c","connectionToken":"t","negotiateVersion":1,"useStatefulReconnect":{},"availableTransports":[{{"transport":"{}","transferFormats":["Text","Binary"]}}]}}"#,
        mode & 2 != 0,
        kind.name()
    );
    let mut now = t0;
    let mut chunks = rest.chunks(1 + (mode as usize >> 4) * 7).peekable();
    let mut first = true;
    for step in 0..10_000 {
        // Answer whatever the engine asked for, feeding fuzz bytes as server data.
        let mut transmits = Vec::new();
        while let Some(t) = conn.poll_transmit() {
            transmits.push(t);
        }
        while conn.poll_event().is_some() {}
        if transmits.is_empty() && chunks.peek().is_none() {
            break;
        }
        for t in transmits {
            match t {
                Transmit::Http(req) if req.url.contains("/negotiate") => conn.handle_http(
                    now,
                    req.id,
                    HttpEvent::Response { status: 200, body: negotiate.clone().into() },
                ),
                Transmit::Http(req) if req.streaming => {
                    conn.handle_http(now, req.id, HttpEvent::Head { status: 200 });
                    if let Some(c) = chunks.next() {
                        let mut framed = b"data: ".to_vec();
                        framed.extend_from_slice(c);
                        framed.extend_from_slice(b"\r\n\r\n");
                        conn.handle_http(now, req.id, HttpEvent::Chunk(framed.into()));
                    }
                }
                Transmit::Http(req) => {
                    let body = if req.method == talkback_core::HttpMethod::Get && !first {
                        chunks.next().map(|c| c.to_vec()).unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    first = false;
                    conn.handle_http(now, req.id, HttpEvent::Response { status: 200, body: body.into() });
                }
                Transmit::OpenWebSocket { .. } => conn.handle_websocket(now, WebSocketEvent::Opened),
                Transmit::WebSocketSend { .. } => {
                    if let Some(c) = chunks.next() {
                        let mut bytes = if first { b"{}\x1e".to_vec() } else { Vec::new() };
                        first = false;
                        bytes.extend_from_slice(c);
                        conn.handle_websocket(now, WebSocketEvent::Message(bytes.into()));
                    }
                }
                Transmit::FetchAccessToken => conn.handle_access_token(now, Ok(None)),
                Transmit::AbortHttp(_) | Transmit::CloseWebSocket => {}
            }
        }
        if step % 16 == 15 {
            now += Duration::from_secs(5);
            conn.handle_timeout(now);
        }
    }
});
