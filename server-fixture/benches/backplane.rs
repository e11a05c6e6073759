//! Benchmark: broadcast to N connections through the Redis backplane, one node against two.
//!
//! Starts a `redis-server` on a free loopback port; for each scenario, fixture nodes as separate
//! processes (the `talkback-fixture` binary, `--port 0 [--redis URL --redis-prefix P]`), N JSON
//! WebSocket receivers in this process spread evenly over the nodes, and one sender on the first
//! node, which sends M `Broadcast(t)` calls back to back (`t` = microseconds since the start of
//! the bench, so each receiver knows the latency of each delivery). Scenarios:
//!
//! * `1 node, no Redis`: the local fan-out only;
//! * `1 node, Redis`: the same, and every broadcast is also published (nobody else listens);
//! * `2 nodes, Redis`: the second node's half of the receivers is reached through Redis.
//!
//! ```text
//! ulimit -n 20000
//! cargo bench -p talkback-fixture --bench backplane -- --connections 10000 --messages 10
//! ```
//!
//! Nodes run as processes so that no process holds more than N + a few sockets (the receivers
//! here; 10,000 fit under a 20,000 descriptor limit), and so that two nodes are two schedulers,
//! as in a real cluster (on one machine they still share its cores, and Redis, and this
//! process's receivers).
//!
//! Prints, per scenario, one line starting with `RESULT`: deliveries per second (N x M over the
//! time from the first send to the last delivery), the latency of a delivery under that burst
//! (p50/p99/max), and for two nodes the same for the deliveries that crossed Redis (the second
//! node's receivers) and the node's backplane counters. Compare scenarios within one run.
#![allow(missing_docs)]

use futures::{SinkExt, StreamExt};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const HANDSHAKE: &str = "{\"protocol\":\"json\",\"version\":1}\x1e";
const FIXTURE: &str = env!("CARGO_BIN_EXE_talkback-fixture");

struct Options {
    connections: usize,
    messages: usize,
    /// Only the scenarios whose name contains this.
    only: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        connections: 10_000,
        messages: 10,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connections" | "--messages" => {
                let value = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("a number after the option");
                if arg == "--connections" {
                    o.connections = value;
                } else {
                    o.messages = value;
                }
            }
            "--only" => o.only = args.next(),
            // `cargo bench` passes `--bench`; ignore it and anything unknown.
            _ => {}
        }
    }
    o
}

/// A child process that is killed when dropped, its output drained.
struct Child {
    child: tokio::process::Child,
}

impl Child {
    /// Spawns `command` and returns once a stdout line contains `ready` (and that line).
    async fn spawn(mut command: tokio::process::Command, ready: &str) -> (Child, String) {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the process starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains(ready) {
                    return line;
                }
            }
            panic!("the process ended before '{ready}'");
        })
        .await
        .expect("the process is ready within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (Child { child }, line)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn start_redis() -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = tokio::process::Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"]);
    let (child, _) = Child::spawn(command, "Ready to accept connections").await;
    (child, format!("redis://127.0.0.1:{port}"))
}

/// A fixture node process; its base URL.
async fn start_node(redis: Option<(&str, &str)>) -> (Child, String) {
    let mut command = tokio::process::Command::new(FIXTURE);
    command
        // Receivers never send: no client timeout while 10,000 of them connect.
        .args(["--port", "0", "--no-admin", "--client-timeout-ms", "600000"])
        .env("RUST_LOG", "warn");
    if let Some((url, prefix)) = redis {
        command.args(["--redis", url, "--redis-prefix", prefix]);
    }
    let (child, line) = Child::spawn(command, "listening on ").await;
    let url = line
        .split_whitespace()
        .last()
        .expect("listening on URL")
        .to_owned();
    (child, url)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A JSON connection to the test hub (skipping negotiate), handshake done and the Welcome read.
async fn connect(base: &str) -> Ws {
    let url = format!("{base}/hubs/test").replacen("http", "ws", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(HANDSHAKE)).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("Welcome") {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => seen.push_str(t.as_str()),
            other => panic!("handshake failed: {other:?}"),
        }
    }
    ws
}

/// Reads until `expected` Broadcasts arrived; returns each one's latency in microseconds.
async fn receive(mut ws: Ws, expected: usize, t0: Instant) -> Vec<u64> {
    let mut latencies = Vec::with_capacity(expected);
    while latencies.len() < expected {
        let text = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            _ => break,
        };
        let now = t0.elapsed().as_micros() as u64;
        for record in text.as_str().split('\x1e').filter(|r| !r.is_empty()) {
            let value: serde_json::Value = serde_json::from_str(record).unwrap();
            if value["target"] == "Broadcast" {
                let sent = value["arguments"][0].as_u64().unwrap();
                latencies.push(now.saturating_sub(sent));
            }
        }
    }
    latencies
}

/// `p50/p99/max` of sorted microseconds, in milliseconds.
fn summary(sorted: &[u64]) -> String {
    if sorted.is_empty() {
        return "no deliveries".into();
    }
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pick(0.5),
        pick(0.99),
        pick(1.0)
    )
}

/// One backplane counter of a node, from its `/metrics`.
async fn counter(base: &str, name: &str) -> u64 {
    let Ok(text) = reqwest::get(format!("{base}/metrics")).await else {
        return 0;
    };
    let text = text.text().await.unwrap_or_default();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn scenario(name: &str, nodes: &[String], o: &Options, t0: Instant) {
    // Connect the receivers 64 at a time; node of receiver i is i % nodes.
    let receivers: Vec<(usize, Ws)> = futures::stream::iter(0..o.connections)
        .map(|i| {
            let node = i % nodes.len();
            let base = nodes[node].clone();
            async move { (node, connect(&base).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut sender = connect(&nodes[0]).await;
    let published_before = counter(&nodes[0], "talkback_backplane_published_total").await;
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|(node, ws)| (node, tokio::spawn(receive(ws, o.messages, t0))))
        .collect();
    let start = Instant::now();
    for _ in 0..o.messages {
        let t = t0.elapsed().as_micros() as u64;
        let message = format!("{{\"type\":1,\"target\":\"Broadcast\",\"arguments\":[{t}]}}\x1e");
        sender.send(Message::text(message)).await.unwrap();
    }
    let mut all = Vec::with_capacity(o.connections * o.messages);
    let mut remote = Vec::new();
    for (node, task) in tasks {
        let latencies = tokio::time::timeout(Duration::from_secs(300), task)
            .await
            .expect("every delivery within 300 s")
            .unwrap();
        if node > 0 {
            remote.extend_from_slice(&latencies);
        }
        all.extend(latencies);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    remote.sort_unstable();
    let mut line = format!(
        "RESULT {name}: {} deliveries ({} connections x {} messages) in {:.2} s = {:.0} msg/s; latency {}",
        all.len(),
        o.connections,
        o.messages,
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        summary(&all),
    );
    if nodes.len() > 1 {
        let published =
            counter(&nodes[0], "talkback_backplane_published_total").await - published_before;
        let received = counter(&nodes[1], "talkback_backplane_received_total").await;
        line.push_str(&format!(
            "; through Redis: {} deliveries = {:.0} msg/s, latency {}; node 1 published {published}, node 2 received {received}",
            remote.len(),
            remote.len() as f64 / elapsed.as_secs_f64(),
            summary(&remote),
        ));
    }
    println!("{line}");
    let _ = sender.close(None).await;
}

#[tokio::main]
async fn main() {
    let o = options();
    let (redis, url) = start_redis().await;
    let t0 = Instant::now();
    let scenarios: [(&str, usize, Option<&str>); 3] = [
        ("1 node, no Redis", 1, None),
        ("1 node, Redis", 1, Some("one-")),
        ("2 nodes, Redis", 2, Some("two-")),
    ];
    for (name, count, prefix) in scenarios {
        if o.only
            .as_ref()
            .is_some_and(|only| !name.contains(only.as_str()))
        {
            continue;
        }
        let mut children = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..count {
            let (child, base) = start_node(prefix.map(|p| (url.as_str(), p))).await;
            children.push(child);
            urls.push(base);
        }
        scenario(name, &urls, &o, t0).await;
        for child in children {
            child.stop().await;
        }
    }
    redis.stop().await;
}
