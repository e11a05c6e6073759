//! The user agent a browser connection sends in `X-SignalR-User-Agent`.

/// The SignalR client version this library speaks like (as the native shell).
const SIGNALR_VERSION: &str = "10.0";

/// The user-agent value of a browser connection, in the official client's browser format
/// `Microsoft SignalR/<major.minor> (<version>; Unknown OS; Browser; Unknown Runtime Version)`
/// (a browser tells a script neither its OS nor its version in a form the official client
/// uses), e.g. `Microsoft SignalR/10.0 (talkback 0.1.0; Unknown OS; Browser; Unknown Runtime
/// Version)`.
pub fn user_agent() -> String {
    format!(
        "Microsoft SignalR/{SIGNALR_VERSION} (talkback {}; Unknown OS; Browser; Unknown Runtime Version)",
        env!("CARGO_PKG_VERSION"),
    )
}
