//! `talkback-fixture`: runs the SignalR test service on 127.0.0.1 until Ctrl-C.

use clap::Parser;
use std::time::Duration;
use talkback_core::transport::{TransportKind, TransportSet};

/// A full SignalR service for tests: the `test` hub and the `chat` demo over WebSockets,
/// Server-Sent Events and long polling, JSON and MessagePack.
#[derive(Parser, Debug)]
#[command(name = "talkback-fixture", version)]
struct Args {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Send a Ping after this many milliseconds without sending.
    #[arg(long, default_value_t = 15_000)]
    keep_alive_ms: u64,
    /// Close a client silent for this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    client_timeout_ms: u64,
    /// Close a connection whose client sent no message (pings do not count) for this many
    /// seconds (default: never).
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Close a connection without a handshake after this many milliseconds.
    #[arg(long, default_value_t = 15_000)]
    handshake_timeout_ms: u64,
    /// Answer a long poll with no data after this many milliseconds.
    #[arg(long, default_value_t = 90_000)]
    long_poll_timeout_ms: u64,
    /// Agree to stateful reconnect when clients ask.
    #[arg(long)]
    stateful_reconnect: bool,
    /// How long a stateful connection waits for its client to re-attach, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    reconnect_window_ms: u64,
    /// Send the detail of unexpected hub errors to clients.
    #[arg(long)]
    detailed_errors: bool,
    /// Largest hub message accepted from a client, in bytes.
    #[arg(long, default_value_t = 32 * 1024)]
    max_message_size: usize,
    /// The most TCP connections served at once; more get 503 (default: the open-files limit
    /// less a reserve).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Close an HTTP connection that takes longer than this to send a request's headers, or
    /// that idles this long between requests, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    header_read_timeout_ms: u64,
    /// Refuse (408) a POST body that sends nothing for this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    request_body_timeout_ms: u64,
    /// An origin allowed by CORS on the hub routes (repeatable; default: any origin but `null`).
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// Require `X-Talkback-Admin: TOKEN` on admin requests (default: any non-empty value).
    #[arg(long)]
    admin_token: Option<String>,
    /// Do not serve the admin (fault) endpoints.
    #[arg(long)]
    no_admin: bool,
    /// Transports offered: any of ws, sse, lp (repeatable; default all).
    #[arg(long = "transport", value_parser = parse_transport)]
    transports: Vec<TransportKind>,
    /// Also act as a local Azure SignalR Service (`/client/`, `/api/` REST API, upstream);
    /// prints its connection string at start.
    #[arg(long)]
    azure: bool,
    /// An access key (repeatable: the first signs, all are accepted, as during a rotation;
    /// default: a random key).
    #[arg(long = "azure-access-key", value_name = "KEY", requires = "azure")]
    azure_access_keys: Vec<String>,
    /// The Azure service mode: default (the fixture's hubs are the app server) or serverless.
    #[arg(long, value_name = "MODE", default_value = "default", value_parser = parse_service_mode)]
    service_mode: talkback_fixture::ServiceMode,
    /// The application name: hub names become `<app>_<hub>`.
    #[arg(long = "azure-app-name", value_name = "APP", requires = "azure")]
    azure_app_name: Option<String>,
    /// A serverless upstream rule, `URL[;hub=P][;category=P][;event=P]`, the URL with
    /// `{hub}`, `{category}`, `{event}` (repeatable; the first match wins).
    #[arg(long = "upstream", value_name = "RULE", requires = "azure",
          value_parser = talkback_fixture::UpstreamRule::parse)]
    upstreams: Vec<talkback_fixture::UpstreamRule>,
    /// In serverless mode, close a client whose invocation no upstream rule matches (default:
    /// ignore the invocation).
    #[arg(long, requires = "azure")]
    disconnect_without_upstream: bool,
    /// The free tier's limits: 20 connections, 20,000 messages a day.
    #[arg(long, requires = "azure")]
    free_tier: bool,
    /// Service units: 1,000 client connections each (ignored with --free-tier).
    #[arg(long, default_value_t = 1, requires = "azure")]
    units: usize,
    /// Messages allowed per UTC day (2 KB pieces; default unlimited, 20,000 with --free-tier).
    #[arg(long, value_name = "N", requires = "azure")]
    messages_per_day: Option<u64>,
    /// Join a Redis backplane at this URL (`redis://127.0.0.1:6379[/db]`): every fan-out crosses
    /// nodes, in ASP.NET Core's backplane format. Redis unreachable at start is an error.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Prepended to every Redis channel name (ASP.NET Core's `ChannelPrefix`).
    #[arg(long, value_name = "PREFIX", requires = "redis")]
    redis_prefix: Option<String>,
    /// A hub's channel name on the backplane, `HUB=NAME` (`test=Contoso.TestHub`, as ASP.NET
    /// Core names it after the hub's .NET type; repeatable; default: the hub's path name).
    #[arg(long = "redis-hub-name", value_name = "HUB=NAME", requires = "redis",
          value_parser = talkback_fixture::RedisConfig::parse_hub_name)]
    redis_hub_names: Vec<(String, String)>,
    /// The built npm package talkback-signalr that the demo page at `/` loads (default:
    /// client-wasm/npm/dist of the source tree; scripts/build-npm.sh builds it).
    #[arg(long, value_name = "DIR")]
    demo_package_dir: Option<std::path::PathBuf>,
}

fn parse_service_mode(name: &str) -> Result<talkback_fixture::ServiceMode, String> {
    match name.to_ascii_lowercase().as_str() {
        "default" => Ok(talkback_fixture::ServiceMode::Default),
        "serverless" => Ok(talkback_fixture::ServiceMode::Serverless),
        _ => Err(format!(
            "unknown service mode '{name}' (default or serverless)"
        )),
    }
}

fn parse_transport(name: &str) -> Result<TransportKind, String> {
    match name.to_ascii_lowercase().as_str() {
        "ws" | "websockets" => Ok(TransportKind::WebSockets),
        "sse" | "serversentevents" => Ok(TransportKind::ServerSentEvents),
        "lp" | "longpolling" => Ok(TransportKind::LongPolling),
        _ => Err(format!("unknown transport '{name}' (ws, sse or lp)")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "talkback_fixture=info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = talkback_fixture::Config {
        host: args.host,
        port: args.port,
        keep_alive_interval: Duration::from_millis(args.keep_alive_ms),
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        idle_timeout: args.idle_timeout.map(Duration::from_secs),
        handshake_timeout: Duration::from_millis(args.handshake_timeout_ms),
        long_poll_timeout: Duration::from_millis(args.long_poll_timeout_ms),
        allow_stateful_reconnect: args.stateful_reconnect,
        reconnect_window: Duration::from_millis(args.reconnect_window_ms),
        detailed_errors: args.detailed_errors,
        max_receive_message_size: args.max_message_size,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        request_body_timeout: Duration::from_millis(args.request_body_timeout_ms),
        cors_origins: args.cors_origins,
        admin_enabled: !args.no_admin,
        admin_token: args.admin_token,
        demo_package_dir: args.demo_package_dir,
        ..Default::default()
    };
    if let Some(max) = args.max_connections {
        config.max_connections = max;
    }
    if let Some(url) = args.redis {
        let mut redis = talkback_fixture::RedisConfig::new(url);
        if let Some(prefix) = args.redis_prefix {
            redis = redis.with_prefix(prefix);
        }
        for (hub, name) in args.redis_hub_names {
            redis = redis.with_hub_name(hub, name);
        }
        config.redis = Some(redis);
    }
    if args.azure {
        let mut azure = talkback_fixture::AzureConfig::default();
        if !args.azure_access_keys.is_empty() {
            azure.access_keys = args
                .azure_access_keys
                .iter()
                .map(|k| talkback_core::azure::AccessKey::new(k.as_str()))
                .collect();
        }
        azure.mode = args.service_mode;
        azure.application_name = args.azure_app_name;
        azure.upstreams = args.upstreams;
        if args.disconnect_without_upstream {
            azure.no_upstream = talkback_fixture::NoUpstream::Disconnect;
        }
        azure.max_client_connections = args.units.max(1).saturating_mul(1000);
        if args.free_tier {
            azure = azure.free_tier();
        }
        if args.messages_per_day.is_some() {
            azure.messages_per_day = args.messages_per_day;
        }
        config.azure = Some(azure);
    }
    if !args.transports.is_empty() {
        config.transports = args
            .transports
            .iter()
            .fold(TransportSet(0), |set, kind| set.with(*kind));
    }
    let server = match talkback_fixture::spawn(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("talkback-fixture: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.url());
    println!("test hub: {}", server.hub_url("test"));
    println!("chat hub: {}", server.hub_url("chat"));
    println!("demo:     {}/ (chat and live dashboard)", server.url());
    if let Some(connection_string) = server.azure_connection_string() {
        println!("azure connection string: {connection_string}");
        println!(
            "azure app negotiate:     {}/api/negotiate?hub=<hub>[&userId=<user>]",
            server.url()
        );
    }
    if !args.no_admin {
        println!(
            "admin:    {}/admin/connections (send the X-Talkback-Admin header)",
            server.url()
        );
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
