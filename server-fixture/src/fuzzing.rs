//! Entry points for the cargo-fuzz targets under `fuzz/` (feature `fuzzing`, not public API).
//!
//! - [`session()`](fn@session): one fixture session of the test hub, driven in memory the way the SSE and
//!   long-polling transports drive it (client bytes arrive as POST bodies on the connection's
//!   inbound pipe, frames are pulled from its outbound queue). Run it on a current-thread runtime
//!   with paused time (`start_paused`), so the session's timers fire as soon as it idles.
//! - [`AzureRest`]: the Azure-mode REST API (`/api/...`) answered by the fixture's router in
//!   memory, with requests built from arbitrary bytes and signed with a valid token.
//!
//! Both panic on a broken invariant (that is how the fuzzer sees it); bad input itself must only
//! ever get an error answer.

use crate::registry::{Inbound, Outbound, RequestInfo, Shared};
use crate::{session, test_hub, AzureConfig, Config};
use axum::body::Body;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use talkback_core::azure::{generate_token, AccessKey, TokenRequest};
use talkback_core::protocol::{Decoded, HandshakeResponse, Protocol, TextFramer};
use talkback_core::transport::TransportKind;

/// The most bytes the harness reads from a session per input; past it, it stops reading, like a
/// client that does not read (the session must then end on its own, by its liveness deadline).
const READ_BUDGET: usize = 1 << 20;

/// POST body sizes the input is cut into (picked by bits 3–5 of the first byte).
const CUTS: [usize; 8] = [1, 2, 7, 64, 512, 4096, 65_536, usize::MAX];

/// Rounds of "let the runtime idle a virtual minute" allowed for a session, and then for every
/// task it started, to end. Far more than the handshake, client and reconnect timeouts need.
const END_ROUNDS: usize = 64;

/// Drives one session of the test hub with `data`.
///
/// The first byte picks the protocol of the handshake the harness sends (bit 0: JSON or
/// MessagePack), the transport for JSON (bit 1: Server-Sent Events or long polling; MessagePack
/// always uses long polling, as SSE cannot carry binary), whether the harness sends that
/// handshake (bit 2 clear) or the input carries its own, and how the rest is cut into POST
/// bodies (bits 3–5). After each body the runtime runs until idle and what the session wrote is
/// read, in the protocol the handshake chose.
///
/// Panics if a frame the session wrote does not parse in its protocol, if a queue holds more
/// than its bound, or if the session or any task it started outlives its end (a leak).
pub async fn session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let protocol = if mode & 1 == 0 {
        Protocol::Json
    } else {
        Protocol::MessagePack
    };
    let transport = if protocol == Protocol::Json && mode & 2 == 0 {
        TransportKind::ServerSentEvents
    } else {
        TransportKind::LongPolling
    };
    let handshake = if mode & 4 == 0 {
        format!(r#"{{"protocol":"{}","version":1}}"#, protocol.name()).into_bytes()
    } else {
        Vec::new()
    };
    let cut = CUTS[usize::from(mode >> 3) & 7];

    let shared = Arc::new(Shared::with_backplane(
        Config::default(),
        vec![test_hub()],
        None,
    ));
    let hub = shared
        .static_hub("test")
        .expect("the test hub is registered");
    let conn = shared.create(&hub, Some("fuzz-user".into()), false, 1);
    drop(hub);
    conn.transport
        .set(transport)
        .expect("a new connection has no transport");
    let _ = conn.request.set(RequestInfo {
        query: [("id".to_owned(), conn.token.clone())].into(),
        headers: [("x-fuzz".to_owned(), "1".to_owned())].into(),
    });
    // Long polling: this harness is a poll that always waits while it reads, and none once it
    // stops (see routes.rs, `long_poll`).
    let polling = |waiting: bool| {
        if transport == TransportKind::LongPolling {
            *conn.poll_idle_since.lock() = (!waiting).then(std::time::Instant::now);
        }
    };
    polling(true);
    session::ensure_started(&shared, &conn);

    let mut reader = Reader::new();
    // Held for the whole run: this harness is the only transport request.
    let outbound = conn.pipe.outbound.clone();
    let mut rx = outbound.lock().await;
    let mut handshake = Some(handshake).filter(|h| !h.is_empty()).map(|mut h| {
        h.push(0x1e);
        h
    });
    let mut chunks = rest.chunks(cut);
    loop {
        let body = match handshake.take() {
            Some(h) => Bytes::from(h),
            None => match chunks.next() {
                Some(c) => Bytes::copy_from_slice(c),
                None => break,
            },
        };
        // What routes.rs's `send` does with a POST body (bounded here: a session that takes
        // no input for a virtual hour ends the run, and must then end by itself below).
        let sent = tokio::time::timeout(
            Duration::from_secs(3600),
            conn.pipe.inbound.send(Inbound::Data(body)),
        );
        if conn.is_closed() || !matches!(sent.await, Ok(Ok(()))) {
            break;
        }
        settle().await;
        check_bounds(&shared, &conn);
        if !reader.drain(&mut rx, &conn) {
            polling(false);
        }
    }
    // The transport goes away (the SSE response or the poll ends), as when the client leaves.
    polling(false);
    if !conn.is_closed() {
        let _ = conn.pipe.inbound.try_send(Inbound::Closed);
    }
    let mut rounds = 0;
    while !conn.is_closed() {
        rounds += 1;
        assert!(rounds <= END_ROUNDS, "the session did not end");
        reader.drain(&mut rx, &conn);
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    reader.drain(&mut rx, &conn);
    drop(rx);
    drop(outbound);
    // Every task the session started (dispatcher, invocations, streams, hooks) ends too.
    let handle = tokio::runtime::Handle::current();
    let mut rounds = 0;
    while handle.metrics().num_alive_tasks() > 0 {
        rounds += 1;
        assert!(
            rounds <= END_ROUNDS,
            "{} tasks outlived the session",
            handle.metrics().num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    assert!(
        shared.all(None).is_empty(),
        "an ended connection is still listed"
    );
    drop(conn);
    assert_eq!(
        Arc::strong_count(&shared),
        1,
        "something still holds the fixture's state after every task ended"
    );
}

/// Lets every task run until all wait (for input, room, or a timer): on a runtime with paused
/// time, the clock only moves once the runtime is idle.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The queues of one connection stay within their bounds.
fn check_bounds(shared: &Shared, conn: &crate::registry::Conn) {
    let commands = &conn.commands;
    assert!(commands.max_capacity() <= shared.config.outbound_queue_capacity.max(1));
    assert!(commands.capacity() <= commands.max_capacity());
    assert!(conn.pipe.inbound.capacity() <= conn.pipe.inbound.max_capacity());
}

/// Reads what the session wrote, as a client would, and checks that it parses.
struct Reader {
    handshake: Option<TextFramer>,
    /// The protocol the handshake chose and its framer (once the handshake response arrived).
    framer: Option<(Protocol, talkback_core::protocol::Framer)>,
    /// The handshake was refused: nothing may follow.
    refused: bool,
    ended: bool,
    read: usize,
}

impl Reader {
    fn new() -> Self {
        Reader {
            handshake: Some(TextFramer::new(usize::MAX)),
            framer: None,
            refused: false,
            ended: false,
            read: 0,
        }
    }

    /// Reads what is queued; false once the read budget is spent (the harness stops reading).
    fn drain(
        &mut self,
        rx: &mut crate::queue::Receiver<Outbound>,
        conn: &crate::registry::Conn,
    ) -> bool {
        while self.read < READ_BUDGET {
            match rx.try_recv() {
                Ok(Outbound::Frame(bytes)) => {
                    assert!(!self.ended, "a frame after the transport's end");
                    self.read += bytes.len();
                    self.parse(&bytes, conn);
                }
                Ok(Outbound::End) => self.ended = true,
                Err(_) => return true,
            }
        }
        false
    }

    fn parse(&mut self, bytes: &[u8], conn: &crate::registry::Conn) {
        if let Some(framer) = self.handshake.as_mut() {
            framer.push(bytes);
            let Some(record) = framer
                .next_record()
                .expect("the handshake response is framed")
            else {
                return;
            };
            let response =
                HandshakeResponse::parse(&record).expect("the handshake response parses");
            if response.error.is_some() {
                self.refused = true;
            } else {
                // The protocol the client's handshake asked for (the input may carry its own).
                let protocol = *conn
                    .protocol
                    .get()
                    .expect("a successful handshake set the protocol");
                self.framer = Some((protocol, protocol.framer(usize::MAX)));
            }
            let rest = framer.take_remaining();
            self.handshake = None;
            self.messages(&rest);
        } else {
            self.messages(bytes);
        }
    }

    fn messages(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        assert!(!self.refused, "a message after a refused handshake");
        let (protocol, framer) = self
            .framer
            .as_mut()
            .expect("messages follow a successful handshake");
        framer.push(bytes);
        while let Some(record) = framer.next_record().expect("server frames are well framed") {
            match protocol.decode(&record) {
                Ok(Decoded::Message(_)) => {}
                other => panic!("the server wrote a record that does not decode: {other:?}"),
            }
        }
    }
}

/// The Azure-mode REST API, answered in memory by the fixture's router.
pub struct AzureRest {
    shared: Arc<Shared>,
    service: hyper_util::service::TowerToHyperService<axum::Router>,
    key: AccessKey,
    connection_id: String,
    calls: u32,
}

impl std::fmt::Debug for AzureRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureRest")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// The access key of [`AzureRest`]'s fixture.
const AZURE_KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

/// Calls after which [`AzureRest`] starts over with a fresh fixture, so that groups, users and
/// connections added by earlier inputs stay bounded.
const AZURE_CALLS_PER_FIXTURE: u32 = 256;

impl Default for AzureRest {
    fn default() -> Self {
        Self::new()
    }
}

impl AzureRest {
    /// A fixture in Azure mode (default service mode, test hub) with two live connections of
    /// hub `test` for user `u1`, one in group `g`. Needs a tokio runtime only for [`Self::call`].
    pub fn new() -> Self {
        let config = Config {
            azure: Some(AzureConfig::with_key(AZURE_KEY)),
            ..Config::default()
        };
        let shared = Arc::new(Shared::with_backplane(config, vec![test_hub()], None));
        let hub = shared
            .static_hub("test")
            .expect("the test hub is registered");
        let conn = shared.create(&hub, Some("u1".into()), false, 1);
        let _ = shared.create(&hub, Some("u1".into()), false, 1);
        shared.fan_out.join("test", "g", &conn.id);
        let router = crate::routes::router(shared.clone());
        AzureRest {
            service: hyper_util::service::TowerToHyperService::new(router),
            shared,
            key: AccessKey::new(AZURE_KEY),
            connection_id: conn.id.clone(),
            calls: 0,
        }
    }

    /// Answers one request built from `data` and returns its status.
    ///
    /// The first byte picks the method (bits 0–2), the API (bit 3: `/api/v1/` or 2022-06-01 with
    /// its `api-version` added) and whether the request carries a valid token for its URL (bit 4
    /// clear). The rest is `path \xff query \xff body`; `{conn}` in the path stands for a live
    /// connection's id, and bytes a URL cannot carry raw are percent-encoded.
    ///
    /// Panics on a 5xx answer (bad input must get a 4xx) or an answer body over 256 KB.
    pub async fn call(&mut self, data: &[u8]) -> u16 {
        self.calls += 1;
        if self.calls > AZURE_CALLS_PER_FIXTURE {
            *self = Self::new();
            self.calls = 1;
        }
        let Some((&mode, rest)) = data.split_first() else {
            return 0;
        };
        let method = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
        ][usize::from(mode & 7)];
        let mut parts = rest.splitn(3, |&b| b == 0xff);
        let path = parts.next().unwrap_or_default();
        let query = parts.next().unwrap_or_default();
        let body = parts.next().unwrap_or_default();
        let v1 = mode & 8 != 0;
        let mut uri = String::from(if v1 { "/api/v1/" } else { "/api/" });
        let path = String::from_utf8_lossy(path).replace("{conn}", &self.connection_id);
        encode_into(path.as_bytes(), b"?#", &mut uri);
        let mut q = String::new();
        encode_into(query, b"#", &mut q);
        if !v1 {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str("api-version=2022-06-01");
        }
        if !q.is_empty() {
            uri.push('?');
            uri.push_str(&q);
        }
        let mut request = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header(http::header::HOST, "localhost");
        if mode & 16 == 0 {
            // A valid token for the URL, unless the URL makes it longer than a token may be
            // (then the request goes unsigned, and gets 401).
            let audience = format!("http://localhost{uri}");
            if let Ok(token) =
                generate_token(&self.key, &TokenRequest::new(audience), SystemTime::now())
            {
                request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
        }
        let Ok(request) = request.body(Body::from(body.to_vec())) else {
            return 0;
        };
        use hyper::service::Service;
        let response = match self.service.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{method} {uri} answered {status}"
        );
        // The largest answer is the OpenAPI document (about 92 KB).
        let body = axum::body::to_bytes(response.into_body(), 256 * 1024)
            .await
            .expect("an answer body under 256 KB");
        let _ = body;
        // The fan-out queued messages for connections without a session: let them go.
        for conn in self.shared.all(None) {
            if let Some(side) = conn.pipe.session_side.lock().as_mut() {
                while side.commands.try_recv().is_ok() {}
            }
        }
        status.as_u16()
    }
}

/// Appends `bytes` to `out`, percent-encoding what a URI cannot carry raw (and `extra`).
fn encode_into(bytes: &[u8], extra: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_graphic() && !extra.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}
