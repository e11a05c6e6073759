//! The Azure-mode REST API's request parsing (path segments, names, repeated `excluded`, `ttl`,
//! `api-version`, bodies) through the fixture's router in memory: the first byte picks the
//! method, the API version, whether the request is signed and whether `{conn}` names a live
//! connection; the rest is `path \xff query \xff body` (see
//! `talkback_fixture::fuzzing::AzureRest`). Never a panic nor a 5xx; answers stay small.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::sync::LazyLock;
use talkback_fixture::fuzzing::AzureRest;
use tokio::runtime::{Builder, Runtime};

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
});

thread_local! {
    /// The fixture, started over every few hundred calls (see `AzureRest::call`).
    static REST: RefCell<Option<AzureRest>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    REST.with(|rest| {
        let mut rest = rest.borrow_mut();
        let rest = rest.get_or_insert_with(AzureRest::new);
        RUNTIME.block_on(rest.call(data));
    });
});
