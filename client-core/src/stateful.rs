//! Stateful reconnect bookkeeping (`protocol.md` 2.6): sequence numbers, the byte-bounded replay
//! buffer, Acks and duplicate suppression.
