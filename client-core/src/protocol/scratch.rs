//! Encoding into a per-thread buffer, then copying the result out at its exact size.

use bytes::Bytes;
use std::cell::RefCell;

thread_local! {
    /// The buffer messages and values are encoded into on this thread, kept between uses.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// How much room the scratch buffer keeps for values encoded outside a message (arguments,
/// results, stream items).
pub(crate) const VALUE_SCRATCH_KEPT: usize = 16 * 1024;

/// Runs `use_it` on this thread's scratch buffer, emptied first. The buffer keeps its capacity
/// for the next use unless this use grew it past `kept` bytes, so a thread holds at most the
/// largest `kept` of its users (a small value encoded between two large messages leaves the
/// messages' room alone). An encoder that encodes from inside an encoding finds the buffer
/// taken and gets a new one.
pub(crate) fn with_scratch<R>(kept: usize, use_it: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let before = scratch.capacity();
            let result = use_it(&mut scratch);
            if scratch.capacity() > kept.max(before) {
                *scratch = Vec::new();
            }
            result
        }
        Err(_) => use_it(&mut Vec::new()),
    })
}

/// Runs `encode` on this thread's scratch buffer and returns what it wrote as bytes of exactly
/// that size: one allocation per message, where a `Vec` grown step by step costs several (and,
/// with room to spare, a second one for `Bytes`' shared header). The buffer keeps its capacity
/// for the next message unless it grew past `kept` bytes.
pub fn encode_exact(kept: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    with_scratch(kept, |scratch| {
        encode(scratch);
        Bytes::copy_from_slice(scratch)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity() -> usize {
        SCRATCH.with(|scratch| scratch.borrow().capacity())
    }

    #[test]
    fn the_buffer_keeps_the_room_of_its_largest_bound_and_no_more() {
        let large = encode_exact(64 * 1024, |out| out.resize(40 * 1024, b'x'));
        assert_eq!(large.len(), 40 * 1024);
        assert!(capacity() >= 40 * 1024);
        // A small value under a smaller bound leaves the messages' room alone.
        with_scratch(16 * 1024, |out| out.extend_from_slice(b"[1]"));
        assert!(capacity() >= 40 * 1024);
        // A use that grows the buffer past its own bound and past what it found gives it back.
        with_scratch(16 * 1024, |out| out.resize(80 * 1024, b'y'));
        assert_eq!(capacity(), 0);
        encode_exact(64 * 1024, |out| out.resize(80 * 1024, b'z'));
        assert_eq!(capacity(), 0);
    }
}
