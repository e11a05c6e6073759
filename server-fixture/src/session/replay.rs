//! Sending hub messages: encoding them in the connection's protocol, numbering and buffering
//! them under stateful reconnect, and the replay (Sequence, then every unacknowledged message)
//! after a re-attach.

use super::Session;
use crate::queue;
use crate::registry::Outbound;
use bytes::Bytes;
use talkback_core::protocol::{encode_exact, HubMessage, Protocol};

/// The most capacity the per-thread encoding buffer keeps between messages; a larger message
/// leaves it empty again, so a worker thread holds at most this much for encoding.
const KEPT_ENCODE_CAPACITY: usize = 16 * 1024;

/// Encodes one message into a buffer of exactly its size, through this worker thread's
/// scratch buffer (`encode_exact`): no `Vec` grown step by step for every reply.
fn encode(protocol: Protocol, message: &HubMessage) -> Bytes {
    encode_exact(KEPT_ENCODE_CAPACITY, |out| {
        crate::wire::encode_server_message(protocol, message, out)
    })
}

impl Session {
    /// Encodes and sends one message (numbered and buffered under stateful reconnect).
    pub(super) async fn write(&mut self, message: &HubMessage, out: &queue::Sender<Outbound>) {
        let bytes = encode(self.protocol, message);
        if let (Some(buffer), true) = (self.stateful.as_mut(), message.is_trackable()) {
            buffer.push_sent(bytes.clone());
            if buffer.buffered_bytes() > self.shared.config.replay_buffer_bytes.saturating_mul(10) {
                tracing::warn!(connection = %self.conn.id, "replay buffer over its bound: aborting");
                self.conn.abort();
            }
        }
        if self.detached_since.is_some() {
            return;
        }
        if self.write_raw(bytes, out).await {
            self.shared.metrics.sent_message();
        }
    }

    /// After a stateful re-attach: Sequence, then every unacknowledged message.
    pub(super) async fn resend(&mut self, out: &queue::Sender<Outbound>) {
        let Some(buffer) = self.stateful.as_mut() else {
            return;
        };
        let (next, replay) = buffer.resend();
        tracing::debug!(connection = %self.conn.id, next, replay = replay.len(), "re-attached");
        let sequence = encode(self.protocol, &HubMessage::Sequence(next));
        self.write_raw(sequence, out).await;
        for message in replay {
            self.write_raw(message, out).await;
        }
    }
}
