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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use talkback::azure::{Message, ServiceClient};
use talkback::HubConnectionBuilder;
use talkback_fixture::{AzureConfig, Config, ServiceMode, UpstreamRule};
use tokio::sync::mpsc;

const HUB: &str = "dashboard";
const GROUP: &str = "alerts";

/// What the upstream shares with the publisher: the REST client and the latest metric.
#[derive(Clone)]
struct App {
    service: ServiceClient,
    latest_cpu: Arc<AtomicU64>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let wanted = updates_wanted()?;

    // 1. The upstream listens first, so the service can be told where it is.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}/upstream", listener.local_addr()?);

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
    };
    let router = axum::Router::new()
        .route("/upstream", post(upstream))
        .with_state(app.clone());
    let upstream_task = tokio::spawn(async move { axum::serve(listener, router).await });

    // 3. The publisher: a metric to everyone every 200 ms, an alert to a group every third.
    let publisher = tokio::spawn(publish(app));

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
    let alerts = tx.clone();
    dashboard.on("metric", move |(metric,): (Value,)| {
        let _ = tx.send(("metric", metric));
    });
    dashboard.on("alert", move |(alert,): (Value,)| {
        let _ = alerts.send(("alert", alert));
    });
    dashboard.start().await?;
    println!("dashboard connected as {:?}", dashboard.connection_id());

    // A client invocation goes to the upstream, whose answer is the result.
    let snapshot: Value = dashboard.invoke("GetSnapshot", ()).await?;
    println!("snapshot  {snapshot}");

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
                    _ => alert_count += 1,
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
        _ => (StatusCode::NOT_FOUND, format!("no handler for {event}")),
    }
}

/// Pushes updates through the REST API until aborted.
async fn publish(app: App) {
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    for seq in 0u64.. {
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

/// N from `--updates N` or `DASHBOARD_UPDATES`, default 10.
fn updates_wanted() -> Result<u64, Error> {
    let args: Vec<String> = std::env::args().collect();
    let text = match args.iter().position(|a| a == "--updates") {
        Some(i) => args.get(i + 1).cloned().ok_or("--updates needs a number")?,
        None => std::env::var("DASHBOARD_UPDATES").unwrap_or_else(|_| "10".into()),
    };
    Ok(text
        .parse()
        .map_err(|_| format!("not a number of updates: {text}"))?)
}
