//! Stateful reconnect bookkeeping (docs/protocol/hub-protocol.md, "Stateful reconnect: Ack and
//! Sequence"): sequence numbers of trackable messages, the byte-bounded replay buffer, Acks and
//! the duplicate filter after a re-attach.
//!
//! [`MessageBuffer`] is pure state: the connection engine asks it what to do and performs it.

use bytes::Bytes;
use std::collections::VecDeque;

/// The Sequence id is higher than the number of messages received.
pub const SEQUENCE_TOO_HIGH: &str = "Sequence ID greater than amount of messages we've received.";

/// What to do with an incoming message after a (possible) re-attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Deliver it to the application.
    Process,
    /// Drop it: a duplicate, or anything before the Sequence that follows a re-attach.
    Drop,
}

/// One sent trackable message kept until the peer acknowledges it.
#[derive(Debug)]
struct Buffered {
    id: u64,
    bytes: Bytes,
}

/// Both directions of one stateful connection.
#[derive(Debug)]
pub struct MessageBuffer {
    limit: usize,
    buffered: VecDeque<Buffered>,
    buffered_bytes: usize,
    sent_total: u64,
    next_inbound: u64,
    last_processed: u64,
    waiting_for_sequence: bool,
    reattaching: bool,
}

impl MessageBuffer {
    /// A buffer that holds sends back once `limit` unacknowledged bytes are outstanding.
    pub fn new(limit: usize) -> Self {
        MessageBuffer {
            limit,
            buffered: VecDeque::new(),
            buffered_bytes: 0,
            sent_total: 0,
            next_inbound: 1,
            last_processed: 0,
            waiting_for_sequence: false,
            reattaching: false,
        }
    }

    /// Numbers and keeps a trackable message; returns its sequence id.
    pub fn push_sent(&mut self, bytes: Bytes) -> u64 {
        self.sent_total += 1;
        self.buffered_bytes += bytes.len();
        self.buffered.push_back(Buffered {
            id: self.sent_total,
            bytes,
        });
        self.sent_total
    }

    /// Whether unacknowledged bytes reached the limit (new sends should wait).
    pub fn is_full(&self) -> bool {
        self.buffered_bytes >= self.limit
    }

    /// Unacknowledged bytes.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Frees every message with an id up to `sequence_id`.
    pub fn ack(&mut self, sequence_id: u64) {
        while let Some(front) = self.buffered.front() {
            if front.id > sequence_id {
                break;
            }
            self.buffered_bytes -= front.bytes.len();
            self.buffered.pop_front();
        }
    }

    /// Classifies an incoming message; `trackable` for types 1 to 5. Returns whether to process
    /// it and whether an Ack should be scheduled.
    pub fn receive(&mut self, trackable: bool, is_sequence: bool) -> (Inbound, bool) {
        if self.waiting_for_sequence {
            if !is_sequence {
                return (Inbound::Drop, false);
            }
            self.waiting_for_sequence = false;
            return (Inbound::Process, false);
        }
        if !trackable {
            return (Inbound::Process, false);
        }
        let id = self.next_inbound;
        self.next_inbound += 1;
        if id <= self.last_processed {
            // A replayed duplicate; the last one re-arms the Ack.
            return (Inbound::Drop, id == self.last_processed);
        }
        self.last_processed = id;
        (Inbound::Process, true)
    }

    /// Applies a Sequence from the peer; `Err` with [`SEQUENCE_TOO_HIGH`] if it skips messages.
    pub fn sequence(&mut self, sequence_id: u64) -> Result<(), &'static str> {
        if sequence_id > self.next_inbound {
            return Err(SEQUENCE_TOO_HIGH);
        }
        self.next_inbound = sequence_id;
        Ok(())
    }

    /// The id to acknowledge: the last trackable message processed.
    pub fn ack_id(&self) -> u64 {
        self.last_processed
    }

    /// The transport dropped: until the peer's Sequence arrives, incoming messages are dropped
    /// and nothing is sent.
    pub fn disconnected(&mut self) {
        self.reattaching = true;
        self.waiting_for_sequence = true;
    }

    /// Whether a re-attach is in progress (sends are buffered, not written).
    pub fn is_reattaching(&self) -> bool {
        self.reattaching
    }

    /// The transport is back: the Sequence id to send, then the messages to replay in order.
    pub fn resend(&mut self) -> (u64, Vec<Bytes>) {
        self.reattaching = false;
        let next = self
            .buffered
            .front()
            .map_or(self.sent_total + 1, |first| first.id);
        (
            next,
            self.buffered.iter().map(|b| b.bytes.clone()).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn acks_free_the_buffer_and_release_backpressure() {
        let mut buffer = MessageBuffer::new(10);
        assert_eq!(buffer.push_sent(Bytes::from_static(b"123456")), 1);
        assert!(!buffer.is_full());
        assert_eq!(buffer.push_sent(Bytes::from_static(b"7890")), 2);
        assert!(buffer.is_full());
        buffer.ack(1);
        assert_eq!(buffer.buffered_bytes(), 4);
        assert!(!buffer.is_full());
    }

    #[test]
    fn duplicates_after_a_sequence_are_dropped() {
        let mut buffer = MessageBuffer::new(100);
        for _ in 0..3 {
            assert_eq!(buffer.receive(true, false), (Inbound::Process, true));
        }
        buffer.disconnected();
        assert_eq!(buffer.receive(true, false).0, Inbound::Drop);
        assert_eq!(buffer.receive(false, true).0, Inbound::Process);
        buffer.sequence(2).unwrap();
        assert_eq!(buffer.receive(true, false), (Inbound::Drop, false));
        assert_eq!(buffer.receive(true, false), (Inbound::Drop, true));
        assert_eq!(buffer.receive(true, false), (Inbound::Process, true));
        assert_eq!(buffer.ack_id(), 4);
        assert_eq!(buffer.sequence(9), Err(SEQUENCE_TOO_HIGH));
    }

    #[test]
    fn resend_starts_at_the_first_unacknowledged_id() {
        let mut buffer = MessageBuffer::new(100);
        buffer.push_sent(Bytes::from_static(b"a"));
        buffer.push_sent(Bytes::from_static(b"b"));
        buffer.ack(1);
        buffer.disconnected();
        let (next, replay) = buffer.resend();
        assert_eq!(next, 2);
        assert_eq!(replay, vec![Bytes::from_static(b"b")]);
        buffer.ack(2);
        assert_eq!(buffer.resend().0, 3);
    }
}
