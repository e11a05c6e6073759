//! A live dashboard on Azure SignalR Service in serverless mode, run locally against the
//! fixture standing in for the service (no Azure subscription needed):
//!
//! - the **upstream** (what an Azure Functions app would be) is a small axum handler: it is told
//!   about each connection and answers the client's `GetSnapshot` call, subscribing the caller
//!   to the `alerts` group;
//! - the **publisher** pushes a `metric` to everyone every 200 ms and an `alert` to the `alerts`
//!   group every third tick, through the REST API ([`ServiceClient`]);
//! - the **dashboard** is a native client that gets its URL and token the two-step way (what a
//!   `negotiate` function returns, then the service itself) and prints what it receives.
//!
//! `cargo run -p talkback-examples --example serverless_dashboard [-- --updates N]` (or
//! `DASHBOARD_UPDATES=N`) ends after N metric updates (default 10) and at least one alert;
//! it exits non-zero if they do not arrive.
//!
//! With `--serve [--port P] [--package-dir DIR]` it also serves a **browser dashboard** (the page
//! in `examples/assets/serverless/`, using the npm package `talkback-signalr` built by
//! `scripts/build-npm.sh`, read from `client-wasm/npm/dist` or DIR) on the upstream's port, with
//! the app's own `POST /api/negotiate?user=U` answering `{url, accessToken}` as a Functions
//! `negotiate` function does. The page shows the metrics and the alerts, and its "Acknowledge"
//! button sends `Acknowledge(seq)` to the upstream, which tells every client (the page, the
//! native dashboard) through the REST API. It prints `dashboard page: URL` and runs until Ctrl-C
//! (or until stdin closes, with `--exit-on-eof`). `DASHBOARD_PUBLISH_TICKS=N` stops the
//! publisher after N ticks, to see what the page shows when updates stop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use talkback::azure::{Message, ServiceClient};
use talkback::HubConnectionBuilder;
use talkback_fixture::{AzureConfig, Config, ServiceMode, UpstreamRule};
use tokio::sync::mpsc;

const HUB: &str = "dashboard";
const GROUP: &str = "alerts";

/// The browser dashboard, compiled in (`--serve`).
const PAGE_HTML: &str = include_str!("../assets/serverless/index.html");
const PAGE_JS: &str = include_str!("../assets/serverless/app.js");
const PAGE_CSS: &str = include_str!("../assets/serverless/style.css");

/// The files of the npm package the page loads (`/pkg/{file}`): nothing else is served.
const PACKAGE_FILES: [&str; 4] = [
    "index.js",
    "msgpack.js",
    "talkback_wasm.js",
    "talkback_wasm_bg.wasm",
];

/// The largest package file served.
const MAX_PACKAGE_FILE: u64 = 16 * 1024 * 1024;

/// The longest user name the page's negotiate accepts.
const MAX_USER: usize = 64;

/// What the upstream shares with the publisher: the REST client and the latest metric.
#[derive(Clone)]
struct App {
    service: ServiceClient,
    latest_cpu: Arc<AtomicU64>,
    package_dir: Arc<PathBuf>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The command line (see the module documentation).
struct Options {
    updates: u64,
    serve: bool,
    port: u16,
    package_dir: PathBuf,
    exit_on_eof: bool,
    publish_ticks: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let options = Options::parse()?;
    let wanted = options.updates;

    // 1. The upstream listens first, so the service can be told where it is.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let upstream_url = format!("{base_url}/upstream");

    // 2. The service: the fixture in serverless mode, posting every event to the upstream.
    let azure = AzureConfig {
        mode: ServiceMode::Serverless,
        upstreams: vec![UpstreamRule::all(upstream_url)],
        ..AzureConfig::default() // a random access key
    };
    let server = talkback_fixture::spawn(Config {
        azure: Some(azure),
        ..Config::default()
    })
    .await?;
    // With the real service, this is the connection string from the Azure portal.
    let connection_string = server.azure_connection_string().ok_or("no Azure mode")?;
    let service = ServiceClient::from_connection_string(&connection_string)?;

    let app = App {
        service: service.clone(),
        latest_cpu: Arc::new(AtomicU64::new(0)),
        package_dir: Arc::new(options.package_dir.clone()),
    };
    let mut router = axum::Router::new().route("/upstream", post(upstream));
    if options.serve {
        router = router.merge(page_routes());
    }
    let router = router.with_state(app.clone());
    let upstream_task = tokio::spawn(async move { axum::serve(listener, router).await });

    // 3. The publisher: a metric to everyone every 200 ms, an alert to a group every third.
    let publisher = tokio::spawn(publish(app, options.publish_ticks));

    // 4. The dashboard: step one is what a `negotiate` function would answer ({url, accessToken});
    //    step two, the client connects to the service with them.
    let info = service.client_info(HUB, Some("viewer-1"))?;
    let token = info.access_token;
    let dashboard = HubConnectionBuilder::new(info.url)
        .with_access_token_factory(move || {
            let token = token.clone();
            async move { Ok(token) }
        })
        .build()?;
    let (tx, mut updates) = mpsc::unbounded_channel();
    for kind in ["metric", "alert", "acknowledged"] {
        let tx = tx.clone();
        dashboard.on(kind, move |(value,): (Value,)| {
            let _ = tx.send((kind, value));
        });
    }
    dashboard.start().await?;
    println!("dashboard connected as {:?}", dashboard.connection_id());

    // A client invocation goes to the upstream, whose answer is the result.
    let snapshot: Value = dashboard.invoke("GetSnapshot", ()).await?;
    println!("snapshot  {snapshot}");

    if options.serve {
        // The page and the native dashboard side by side until Ctrl-C; the native one prints
        // what is not a metric (five of those a second would hide the rest).
        println!("dashboard page: {base_url}/");
        let stop = stop_signal(options.exit_on_eof);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                update = updates.recv() => match update {
                    Some(("metric", _)) => {}
                    Some((kind, value)) => println!("native    {kind:<12} {value}"),
                    None => break,
                },
            }
        }
        dashboard.stop().await?;
        publisher.abort();
        server.shutdown().await;
        upstream_task.abort();
        println!("stopped");
        return Ok(());
    }

    // Updates come every 200 ms: give them that and 5 s more, then give up.
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(wanted.saturating_mul(200).saturating_add(5000));
    let (mut metrics, mut alert_count) = (0u64, 0u64);
    let outcome = loop {
        if metrics >= wanted && alert_count > 0 {
            break Ok(());
        }
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(Some((kind, value))) => {
                println!("{kind:<9} {value}");
                match kind {
                    "metric" => metrics += 1,
                    "alert" => alert_count += 1,
                    _ => {}
                }
            }
            _ => {
                break Err(format!(
                    "only {metrics} metrics and {alert_count} alerts arrived"
                ))
            }
        }
    };

    dashboard.stop().await?;
    publisher.abort();
    server.shutdown().await;
    upstream_task.abort();
    outcome?;
    println!("done: {metrics} metrics, {alert_count} alerts");
    Ok(())
}

/// The upstream webhook. The service POSTs each event with `X-ASRS-*` headers; a real upstream
/// should also check `X-ASRS-Signature` (HMAC-SHA256 of the connection id with the access key).
async fn upstream(State(app): State<App>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let header = |name: &str| {
        let value = headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or_default().to_owned()
    };
    let (category, event) = (header("x-asrs-category"), header("x-asrs-event"));
    let connection_id = header("x-asrs-connection-id");
    match (category.as_str(), event.as_str()) {
        // Answering 2xx lets the connection in; anything else would close it.
        ("connections", "connected") => {
            println!(
                "upstream  {connection_id} of {} connected",
                header("x-asrs-user-id")
            );
            (StatusCode::OK, String::new())
        }
        ("connections", _) => (StatusCode::OK, String::new()),
        ("messages", "GetSnapshot") => {
            println!(
                "upstream  GetSnapshot from {} ({connection_id})",
                header("x-asrs-user-id")
            );
            // Subscribe the caller to the alerts, then answer with the current values.
            if let Err(e) = app
                .service
                .add_connection_to_group(HUB, GROUP, &connection_id)
                .await
            {
                return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
            // The body is the client's Invocation message (JSON protocol); the answer is a
            // Completion for its invocation id, framed with the record separator 0x1E.
            let invocation: Value = serde_json::from_slice(&body).unwrap_or_default();
            let completion = json!({
                "type": 3,
                "invocationId": invocation["invocationId"],
                "result": {"cpu": app.latest_cpu.load(Ordering::Relaxed), "groups": [GROUP]},
            });
            (StatusCode::OK, format!("{completion}\u{1e}"))
        }
        ("messages", "Acknowledge") => {
            // The page's `send("Acknowledge", seq)`: a non-blocking invocation, so the answer
            // goes nowhere. Everyone hears about it through the REST API.
            let invocation: Value = serde_json::from_slice(&body).unwrap_or_default();
            let Some(seq) = invocation["arguments"][0].as_u64() else {
                return (
                    StatusCode::BAD_REQUEST,
                    "Acknowledge takes an alert's seq".into(),
                );
            };
            let user = header("x-asrs-user-id");
            println!("upstream  Acknowledge alert {seq} from {user} ({connection_id})");
            let ack = Message::new("acknowledged", vec![json!({"seq": seq, "by": user})]);
            match app.service.send_to_all(HUB, &ack, &[]).await {
                Ok(()) => (StatusCode::OK, String::new()),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        _ => (StatusCode::NOT_FOUND, format!("no handler for {event}")),
    }
}

/// The browser dashboard's routes: the page, and the app's negotiate endpoint.
fn page_routes() -> axum::Router<App> {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", PAGE_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", PAGE_CSS) }),
        )
        .route("/pkg/{file}", get(package_file))
        .route("/api/negotiate", post(negotiate))
}

/// A compiled-in asset, not cached (so a rebuilt example shows at once).
fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /pkg/{file}`: one file of the built npm package, read from disk at each request (so
/// rebuilding the package is enough), only the names in [`PACKAGE_FILES`].
async fn package_file(State(app): State<App>, Path(file): Path<String>) -> Response {
    let Some(name) = PACKAGE_FILES.iter().find(|f| **f == file) else {
        return (StatusCode::NOT_FOUND, "no such package file").into_response();
    };
    let path = app.package_dir.join(name);
    let missing = || {
        let text = format!(
            "{} is missing: build the npm package with scripts/build-npm.sh",
            path.display()
        );
        (StatusCode::NOT_FOUND, text).into_response()
    };
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() && m.len() <= MAX_PACKAGE_FILE => {}
        Ok(m) if m.is_file() => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "package file too large").into_response()
        }
        _ => return missing(),
    }
    let content_type = if name.ends_with(".wasm") {
        "application/wasm"
    } else {
        "text/javascript; charset=utf-8"
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => asset(content_type, bytes),
        Err(_) => missing(),
    }
}

#[derive(Deserialize)]
struct NegotiateQuery {
    user: Option<String>,
}

/// `POST /api/negotiate?user=U`: what an Azure Functions `negotiate` function (the
/// `SignalRConnectionInfo` input binding) answers, `{url, accessToken}`, which the client
/// follows to the service. A real app takes the user from its own sign-in, not the query.
async fn negotiate(State(app): State<App>, Query(query): Query<NegotiateQuery>) -> Response {
    let user = query.user.unwrap_or_else(|| "viewer".into());
    let plain = !user.is_empty()
        && user.len() <= MAX_USER
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain {
        let text = format!("user: 1 to {MAX_USER} letters, digits, '-', '_' or '.'");
        return (StatusCode::BAD_REQUEST, text).into_response();
    }
    match app.service.client_info(HUB, Some(&user)) {
        Ok(info) => Json(info).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Resolves on Ctrl-C, or when stdin ends if `on_eof` (so a test's pipe ends the example).
async fn stop_signal(on_eof: bool) {
    let eof = async {
        if on_eof {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = eof => {}
    }
}

/// Pushes updates through the REST API until aborted, or for `ticks` ticks.
async fn publish(app: App, ticks: Option<u64>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    for seq in 0..ticks.unwrap_or(u64::MAX) {
        ticker.tick().await;
        let cpu = 40 + (seq * 37) % 50; // a made-up reading
        app.latest_cpu.store(cpu, Ordering::Relaxed);
        let metric = Message::new("metric", vec![json!({"seq": seq, "cpu": cpu})]);
        if let Err(e) = app.service.send_to_all(HUB, &metric, &[]).await {
            eprintln!("publisher: {e}");
        }
        if seq % 3 == 2 {
            let alert = Message::new("alert", vec![json!({"seq": seq, "text": "cpu spike"})]);
            if let Err(e) = app.service.send_to_group(HUB, GROUP, &alert, &[]).await {
                eprintln!("publisher: {e}");
            }
        }
    }
}

impl Options {
    fn parse() -> Result<Self, Error> {
        let mut options = Options {
            updates: number("DASHBOARD_UPDATES", std::env::var("DASHBOARD_UPDATES").ok())?
                .unwrap_or(10),
            serve: false,
            port: 0,
            package_dir: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../client-wasm/npm/dist"
            )),
            exit_on_eof: false,
            publish_ticks: number(
                "DASHBOARD_PUBLISH_TICKS",
                std::env::var("DASHBOARD_PUBLISH_TICKS").ok(),
            )?,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--updates" => options.updates = number(&arg, args.next())?.ok_or("--updates N")?,
                "--serve" => options.serve = true,
                "--exit-on-eof" => options.exit_on_eof = true,
                "--port" => {
                    let port = number(&arg, args.next())?.ok_or("--port P")?;
                    options.port = u16::try_from(port).map_err(|_| "--port: 0 to 65535")?;
                }
                "--package-dir" => {
                    options.package_dir = args.next().ok_or("--package-dir DIR")?.into();
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (--updates N, --serve, --port P, \
                         --package-dir DIR, --exit-on-eof)"
                    )
                    .into())
                }
            }
        }
        Ok(options)
    }
}

/// A number given as `what`, if given.
fn number(what: &str, text: Option<String>) -> Result<Option<u64>, Error> {
    text.map(|t| {
        t.trim()
            .parse()
            .map_err(|_| format!("{what}: not a number: {t:?}").into())
    })
    .transpose()
}
