//! `talkback`: call a SignalR hub from the command line.
//!
//! ```text
//! talkback invoke http://localhost:5000/hubs/test Add 1 2        # prints 3
//! talkback send   http://localhost:5000/hubs/test Broadcast '"hi"'
//! talkback stream http://localhost:5000/hubs/test Counter 5 0     # one JSON line per item
//! talkback listen http://localhost:5000/hubs/test --on Broadcast --count 3
//! talkback azure send --hub chat newMessage '"hi"'   # Azure SignalR REST (see azure_cli)
//! ```
//!
//! Arguments are JSON values. Exit status: 0 on success, 1 when the server answered with an
//! error, the connection failed or the timeout passed, 2 for bad command-line input.

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use talkback::{
    Error, HubConnection, HubConnectionBuilder, Protocol, RawValue, TransportKind, TransportSet,
};
use tokio::sync::mpsc;

mod azure_cli;

#[derive(Parser)]
#[command(
    name = "talkback",
    version,
    about = "Talk to a SignalR hub from the command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Invoke a hub method and print its result as JSON.
    Invoke(Call),
    /// Send a hub method without waiting for a result.
    Send(Call),
    /// Call a streaming hub method and print each item as one JSON line.
    Stream(Call),
    /// Print every server-to-client invocation as one JSON line `{"target":..,"arguments":[..]}`.
    Listen(Listen),
    /// Azure SignalR Service: client tokens and the data-plane REST API, from a connection string.
    Azure(azure_cli::Azure),
}

#[derive(Args)]
struct Call {
    /// The hub URL, e.g. http://localhost:5000/hubs/chat.
    url: String,
    /// The hub method.
    method: String,
    /// The arguments, each a JSON value (e.g. 1, '"text"', '{"a":1}').
    #[arg(allow_negative_numbers = true)]
    arguments: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct Listen {
    /// The hub URL.
    url: String,
    /// Only print invocations of this method (repeatable; case-insensitive).
    #[arg(long = "on", value_name = "METHOD")]
    on: Vec<String>,
    /// Exit after printing this many invocations.
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct Common {
    /// A transport to allow (repeatable; default all, in the server's order).
    #[arg(long, value_enum)]
    transport: Vec<TransportArg>,
    /// The hub protocol.
    #[arg(long, value_enum, default_value = "json")]
    protocol: ProtocolArg,
    /// Connect straight over WebSockets without negotiating.
    #[arg(long)]
    skip_negotiation: bool,
    /// A bearer token for the Authorization header.
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// An extra header `Name:Value` for every request (repeatable).
    #[arg(long = "header", value_name = "K:V", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Ask for stateful reconnect.
    #[arg(long)]
    stateful: bool,
    /// Give up after this many seconds (`listen` then simply ends).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Log the protocol to stderr (-v: connection events, -vv: also message contents).
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    /// WebSockets.
    Ws,
    /// Server-Sent Events.
    Sse,
    /// Long polling.
    Lp,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    /// JSON.
    Json,
    /// MessagePack.
    Msgpack,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not of the form Name:Value"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("'{s}' has an empty header name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// How a command failed.
enum Failure {
    /// Bad input on the command line (exit 2).
    Usage(String),
    /// The server or the connection failed (exit 1).
    Failed(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Failed(match e.server_message() {
            Some(message) => message.to_string(),
            None => e.to_string(),
        })
    }
}

fn init_logging(verbose: u8) {
    if verbose == 0 {
        return;
    }
    let level = if verbose == 1 { "debug" } else { "trace" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("talkback={level},talkback_core={level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn connect(url: &str, common: &Common) -> Result<HubConnection, Failure> {
    let protocol = match common.protocol {
        ProtocolArg::Json => Protocol::Json,
        ProtocolArg::Msgpack => Protocol::MessagePack,
    };
    let mut transports = TransportSet(0);
    for t in &common.transport {
        transports = transports.with(match t {
            TransportArg::Ws => TransportKind::WebSockets,
            TransportArg::Sse => TransportKind::ServerSentEvents,
            TransportArg::Lp => TransportKind::LongPolling,
        });
    }
    if transports.0 == 0 {
        transports = if common.skip_negotiation {
            TransportSet::only(TransportKind::WebSockets)
        } else {
            TransportSet::ALL
        };
    }
    let mut builder = HubConnectionBuilder::new(url)
        .with_protocol(protocol)
        .with_transports(transports)
        .skip_negotiation(common.skip_negotiation)
        .log_message_content(common.verbose >= 2);
    if common.stateful {
        builder = builder.with_stateful_reconnect();
    }
    if let Some(token) = &common.token {
        let token = token.clone();
        builder = builder.with_access_token_factory(move || {
            let token = token.clone();
            async move { Ok(token) }
        });
    }
    for (name, value) in &common.headers {
        builder = builder.with_header(name.clone(), value.clone());
    }
    if let Some(seconds) = common.timeout {
        builder = builder.with_http_timeout(seconds_to_duration(seconds));
    }
    builder.build().map_err(|e| Failure::Usage(e.to_string()))
}

fn seconds_to_duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(u32::MAX.into()))
}

fn encode_arguments(protocol: Protocol, arguments: &[String]) -> Result<Vec<RawValue>, Failure> {
    arguments
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                Failure::Usage(format!(
                    "argument {} ('{text}') is not valid JSON: {e}",
                    i + 1
                ))
            })?;
            RawValue::encode(protocol, &value)
                .map_err(|e| Failure::Usage(format!("argument {}: {e}", i + 1)))
        })
        .collect()
}

fn to_json(raw: &RawValue) -> Result<serde_json::Value, Failure> {
    let json = raw
        .to_protocol(Protocol::Json)
        .map_err(|e| Failure::Failed(format!("could not convert a value to JSON: {e}")))?;
    serde_json::from_slice(json.as_bytes())
        .map_err(|e| Failure::Failed(format!("the server sent a value that is not JSON: {e}")))
}

fn print_line(value: &serde_json::Value) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Failed(format!("cannot write to stdout: {e}")))
}

async fn call(kind: &Command, call: &Call) -> Result<(), Failure> {
    let conn = connect(&call.url, &call.common)?;
    let arguments = encode_arguments(conn.protocol(), &call.arguments)?;
    conn.start().await?;
    let outcome = async {
        match kind {
            Command::Invoke(_) => {
                let result = conn.invoke_raw(&call.method, arguments).await?;
                let value = match result {
                    Some(raw) => to_json(&raw)?,
                    None => serde_json::Value::Null,
                };
                print_line(&value)
            }
            Command::Send(_) => Ok(conn.send_raw(&call.method, arguments).await?),
            Command::Stream(_) => {
                let mut items = conn.stream_raw(&call.method, arguments).await?;
                while let Some(item) = items.next().await {
                    print_line(&to_json(&item?)?)?;
                }
                Ok(())
            }
            Command::Listen(_) | Command::Azure(_) => Err(Failure::Usage("not a call".into())),
        }
    }
    .await;
    let _ = conn.stop().await;
    outcome
}

async fn listen(listen: &Listen) -> Result<(), Failure> {
    let conn = connect(&listen.url, &listen.common)?;
    let filter: Vec<String> = listen.on.iter().map(|m| m.to_lowercase()).collect();
    let seen = Arc::new(AtomicU64::new(0));
    let limit = listen.count;
    let (done_tx, mut done_rx) = mpsc::channel::<Result<(), Failure>>(4);
    {
        let seen = seen.clone();
        let done = done_tx.clone();
        conn.on_any(move |target, arguments| {
            if !filter.is_empty() && !filter.contains(&target.to_lowercase()) {
                return;
            }
            if limit.is_some_and(|n| seen.load(Ordering::SeqCst) >= n) {
                return;
            }
            let arguments: Result<Vec<serde_json::Value>, Failure> =
                arguments.iter().map(to_json).collect();
            let line = arguments.and_then(|arguments| {
                print_line(&serde_json::json!({ "target": target, "arguments": arguments }))
            });
            if let Err(e) = line {
                let _ = done.try_send(Err(e));
                return;
            }
            let count = seen.fetch_add(1, Ordering::SeqCst) + 1;
            if limit.is_some_and(|n| count >= n) {
                let _ = done.try_send(Ok(()));
            }
        });
    }
    conn.on_close(move |error| {
        let outcome = match error {
            Some(e) => Err(Failure::Failed(format!("the connection closed: {e}"))),
            None => Err(Failure::Failed("the connection closed".into())),
        };
        let _ = done_tx.try_send(outcome);
    });
    if limit == Some(0) {
        return Ok(());
    }
    conn.start().await?;
    let outcome = tokio::select! {
        outcome = done_rx.recv() => outcome.unwrap_or(Ok(())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    let _ = conn.stop().await;
    outcome
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let timeout = match &cli.command {
        Command::Invoke(c) | Command::Send(c) | Command::Stream(c) => c.common.timeout,
        Command::Listen(l) => l.common.timeout,
        Command::Azure(a) => a.timeout,
    };
    let timeout = timeout.map(seconds_to_duration);
    let work = async {
        match &cli.command {
            Command::Azure(a) => azure_cli::run(a).await,
            Command::Listen(l) => listen(l).await,
            command @ (Command::Invoke(c) | Command::Send(c) | Command::Stream(c)) => {
                call(command, c).await
            }
        }
    };
    match timeout {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(outcome) => outcome,
            Err(_) if matches!(cli.command, Command::Listen(_)) => Ok(()),
            Err(_) => Err(Failure::Failed(format!(
                "timed out after {} s",
                limit.as_secs_f64()
            ))),
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = match &cli.command {
        Command::Invoke(c) | Command::Send(c) | Command::Stream(c) => c.common.verbose,
        Command::Listen(l) => l.common.verbose,
        Command::Azure(a) => a.verbose,
    };
    init_logging(verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(cli));
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
