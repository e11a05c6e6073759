//! Encoding into a per-thread buffer, then copying the result out at its exact size.

use bytes::Bytes;
use std::cell::RefCell;

thread_local! {
    /// The buffer messages are encoded into on this thread, kept between messages.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `encode` on this thread's scratch buffer and returns what it wrote as bytes of exactly
/// that size: one allocation per message, where a `Vec` grown step by step costs several (and,
/// with room to spare, a second one for `Bytes`' shared header). The buffer keeps its capacity
/// for the next message unless it grew past `kept` bytes, so a thread holds at most that much.
pub fn encode_exact(kept: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            encode(&mut scratch);
            let bytes = Bytes::copy_from_slice(&scratch);
            if scratch.capacity() > kept {
                *scratch = Vec::new();
            }
            bytes
        }
        // Only an encoder that encodes from inside an encoding could find it borrowed.
        Err(_) => {
            let mut bytes = Vec::new();
            encode(&mut bytes);
            Bytes::from(bytes)
        }
    })
}
