//! The handshake: checking the client's request (protocol, version, transfer format), turning
//! stateful reconnect on, and the hub's on-connected hook once connected.

use super::dispatch::Job;
use super::Session;
use crate::hub::Method;
use bytes::Bytes;
use std::time::Duration;
use talkback_core::protocol::{HandshakeRequest, Protocol, TransferFormat};
use talkback_core::stateful::MessageBuffer;
use talkback_core::transport::TransportKind;
use tokio::time::Instant;

/// The longest a stateful connection's on-connected hook waits for the client's first message
/// (see `Session::connected`).
const CONNECT_HOOK_WAIT: Duration = Duration::from_secs(1);

impl Session {
    /// Checks the handshake request; returns the version the client asked for.
    pub(super) fn accept_handshake(&mut self, record: &[u8]) -> Result<u32, String> {
        let request = HandshakeRequest::parse(record).map_err(|e| match e {
            talkback_core::protocol::ProtocolError::InvalidHandshake(text) => text,
            other => other.to_string(),
        })?;
        let Some(protocol) = Protocol::from_name(&request.protocol) else {
            return Err(format!(
                "The protocol '{}' is not supported.",
                request.protocol
            ));
        };
        if !(1..=2).contains(&request.version) {
            return Err(format!(
                "The server does not support version {} of the '{}' protocol.",
                request.version, request.protocol
            ));
        }
        if protocol.transfer_format() == TransferFormat::Binary
            && self.transport() == Some(TransportKind::ServerSentEvents)
        {
            return Err(format!(
                "Cannot use the '{}' protocol on the current transport. The transport does not support 'Binary' transfer format.",
                request.protocol
            ));
        }
        self.protocol = protocol;
        let _ = self.conn.protocol.set(protocol);

        if request.version >= 2
            && self.conn.stateful_negotiated
            && self.transport() == Some(TransportKind::WebSockets)
        {
            self.stateful = Some(MessageBuffer::new(usize::MAX));
            self.conn
                .stateful_active
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(request.version)
    }

    pub(super) fn connected(&mut self) {
        self.handshake_done = true;
        self.last_message = Instant::now();
        self.conn.changed();
        self.shared.changed();
        self.framer = Some(
            self.protocol
                .framer(self.shared.config.max_receive_message_size),
        );
        tracing::debug!(connection = %self.conn.id, protocol = self.protocol.name(), "connected");
        if let Some(transport) = self.transport() {
            self.shared.metrics.connected(transport, self.protocol);
            self.counted = Some((transport, self.protocol));
        }
        if self.stateful.is_some() && self.hub.on_connected.is_some() {
            // The official JavaScript client creates its stateful-reconnect buffer only after
            // it has processed the handshake response, then sends a Ping. In Node, where every
            // frame of one TCP read is handled before that happens, a message sent right after
            // the handshake is processed but not counted, so a later re-attach replays one
            // message too many (a duplicate the application sees). On stateful connections the
            // hook therefore runs once the client's first message arrives (at most 1 s later):
            // the same messages in the same order, only not racing the client's set-up.
            self.connect_hook_due = Some(Instant::now() + CONNECT_HOOK_WAIT);
            return;
        }
        self.run_connect_hook();
    }

    /// Queues the hub's on-connected hook on the dispatcher (so it runs before the first
    /// invocation that follows it).
    pub(super) fn run_connect_hook(&mut self) {
        self.connect_hook_due = None;
        if let Some(hook) = self.hub.on_connected.clone() {
            let ctx = self.context(Vec::new());
            // Through the dispatcher, so it runs before the first invocation.
            let job = Box::new(Job {
                ctx,
                method: Method::Lifecycle(hook),
                target: String::new(),
                arguments: Vec::new(),
                invocation_id: None,
                span: tracing::debug_span!("on_connected"),
            });
            self.dispatcher
                .push(job, self.shared.config.detailed_errors);
        }
    }
}

pub(super) fn handshake_error(text: &str) -> Bytes {
    let mut bytes = Vec::new();
    crate::wire::encode_handshake_response(Some(text), &mut bytes);
    Bytes::from(bytes)
}
