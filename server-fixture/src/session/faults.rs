//! The last step to the transport: queueing bytes on the bounded outbound queue (without
//! missing the session's deadlines), where the delay and drop-after faults apply.

use super::Session;
use crate::queue;
use crate::registry::Outbound;
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

impl Session {
    /// Sends bytes to the transport, applying the delay and drop-after faults; false if they
    /// could not be queued (the connection was aborted or missed its liveness deadline).
    pub(super) async fn write_raw(&mut self, bytes: Bytes, out: &queue::Sender<Outbound>) -> bool {
        if let Some(delay) = self.conn.faults.delay() {
            tokio::time::sleep(delay).await;
        }
        self.last_sent = Instant::now();
        // Wait for room, but not past an abort nor the connection's liveness deadline: a
        // client that neither reads nor writes is still closed on time.
        let Some(Ok(permit)) = self.guarded(out.reserve()).await else {
            return false;
        };
        self.shared.metrics.sent_bytes(bytes.len());
        permit.send(Outbound::Frame(bytes));
        if self.conn.faults.count_message() {
            // The n-th message must reach the client first: wait until the transport took it
            // from the queue (bounded), give it a moment to write it, then drop.
            let conn = self.conn.clone();
            let out = out.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(1);
                while out.capacity() < out.max_capacity() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                tracing::debug!(connection = %conn.id, "fault: dropping the transport");
                conn.drop_transport();
            });
        }
        true
    }
}
