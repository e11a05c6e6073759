//! The user agent a browser connection sends in `X-SignalR-User-Agent`, and the one a
//! connection of the npm package in Node.js sends in `User-Agent`.

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

/// The user-agent value of a connection of the npm package in Node.js, in the official
/// client's Node.js format `Microsoft SignalR/<major.minor> (<version>; <OS>; NodeJS; <Node.js
/// version>)`: `platform` is Node.js's `process.platform` (named as the official client names
/// it: `Windows NT`, `macOS`, `Linux`, else as it is), `node_version` its
/// `process.versions.node`. E.g. `Microsoft SignalR/10.0 (talkback 0.1.0; Linux; NodeJS;
/// 20.20.2)`.
pub fn node_user_agent(platform: &str, node_version: &str) -> String {
    let os = match platform {
        "win32" => "Windows NT",
        "darwin" => "macOS",
        "linux" => "Linux",
        "" => "Unknown OS",
        other => other,
    };
    let version = if node_version.is_empty() {
        "Unknown Runtime Version"
    } else {
        node_version
    };
    format!(
        "Microsoft SignalR/{SIGNALR_VERSION} (talkback {}; {os}; NodeJS; {version})",
        env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_user_agent_has_the_official_node_shape() {
        assert_eq!(
            node_user_agent("linux", "20.20.2"),
            format!(
                "Microsoft SignalR/10.0 (talkback {}; Linux; NodeJS; 20.20.2)",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn the_node_user_agent_names_platforms_as_the_official_client_does() {
        let os = |platform| {
            let agent = node_user_agent(platform, "22.1.0");
            agent.split("; ").nth(1).map(str::to_owned)
        };
        assert_eq!(os("win32").as_deref(), Some("Windows NT"));
        assert_eq!(os("darwin").as_deref(), Some("macOS"));
        assert_eq!(os("freebsd").as_deref(), Some("freebsd"));
        assert_eq!(os("").as_deref(), Some("Unknown OS"));
        assert!(node_user_agent("linux", "").ends_with("; NodeJS; Unknown Runtime Version)"));
    }
}
