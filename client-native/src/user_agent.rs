//! The `User-Agent` value, in the reference clients' format
//! `Microsoft SignalR/<major.minor> (<version>; <OS>; <runtime>; <runtime version>)`.

/// The SignalR client version this library speaks like.
const SIGNALR_VERSION: &str = "10.0";

/// The user-agent value this client sends, e.g.
/// `Microsoft SignalR/10.0 (talkback 0.1.0; Linux; Rust; 1.85.0)`.
pub fn user_agent() -> String {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "macOS",
        "windows" => "Windows NT",
        "freebsd" => "FreeBSD",
        "android" => "Android",
        "ios" => "iOS",
        other => other,
    };
    format!(
        "Microsoft SignalR/{SIGNALR_VERSION} (talkback {}; {os}; Rust; {})",
        env!("CARGO_PKG_VERSION"),
        env!("TALKBACK_RUSTC_VERSION"),
    )
}
