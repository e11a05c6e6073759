//! Azure connection strings parse or fail cleanly; what parses prints back to an equal value,
//! never prints its key, and yields URLs without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use talkback_core::azure::{AccessKey, ConnectionString, RestApiVersion};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cs) = ConnectionString::parse(text) else {
        return;
    };
    for hub in ["chat", "Chat_2", "a&hub=b"] {
        let _ = cs.client_url(hub);
        let _ = cs.client_audience(hub);
        let _ = cs.server_url(hub);
        let _ = cs.rest_hub_url(hub, RestApiVersion::V1);
        let _ = cs.rest_hub_url(hub, RestApiVersion::V2022_06_01);
    }
    // What Display and Debug print does not depend on the key's value.
    let shown = format!("{cs} {cs:?}");
    let mut other = cs.clone();
    if other.access_key.is_some() {
        other.access_key = Some(AccessKey::new("another key"));
    }
    assert_eq!(shown, format!("{other} {other:?}"), "the key shows");
    // Access-key strings round-trip through their canonical text.
    if cs.auth_type.is_none() {
        let again = ConnectionString::parse(&cs.to_secret_string()).expect("canonical text parses");
        assert_eq!(again, cs);
    }
});
