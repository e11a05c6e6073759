//! One fixture session of the test hub under a hostile client: the first byte picks JSON or
//! MessagePack, SSE or long polling, whether the harness sends the handshake, and how the rest is
//! cut into POST bodies (see `talkback_fixture::fuzzing::session`). No panic; every frame the
//! session writes parses; the session and every task it started end; memory stays bounded
//! (run with `-rss_limit_mb`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use tokio::runtime::{Builder, Runtime};

/// One current-thread runtime for every input, its clock paused (timers fire once it idles).
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
});

fuzz_target!(|data: &[u8]| {
    RUNTIME.block_on(talkback_fixture::fuzzing::session(data));
});
