//! Benchmark: broadcast through the Redis backplane, one node against two.
//!
//! Starts a `redis-server` on a free loopback port, then for each scenario fixture nodes in this
//! process (`spawn` with `Config::redis`), N WebSocket receivers spread evenly over the nodes
//! (JSON, skipNegotiation) and one sender on the first node, which sends M `Broadcast(t)` calls
//! back to back (`t` = microseconds since the start, so each receiver knows the latency of each
//! delivery). Scenarios: one node without Redis (the local fan-out), one node with Redis, two
//! nodes with Redis (the second node's half of the receivers is reached through Redis).
//!
//! ```text
//! cargo bench -p talkback-fixture --bench backplane -- --connections 2000 --messages 100
//! ```
//!
//! Receivers and nodes share this process: N connections need about 2N file descriptors, so
//! raise `ulimit -n` before N = 10,000.
//!
//! Prints per scenario: deliveries per second (N x M over the time from the first send to the
//! last delivery) and the p50/p99/max latency of a delivery under that burst. Lines starting
//! with `RESULT` are the figures. Compare scenarios within one run (same machine, same load).
#![allow(missing_docs)]

use futures::{SinkExt, StreamExt};
use std::process::Stdio;
use std::time::{Duration, Instant};
use talkback_fixture::{Config, RedisConfig, Server};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const HANDSHAKE: &str = "{\"protocol\":\"json\",\"version\":1}\x1e";

struct Options {
    connections: usize,
    messages: usize,
}

fn options() -> Options {
    let mut o = Options {
        connections: 2000,
        messages: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .expect("a number after the option")
        };
        match arg.as_str() {
            "--connections" => o.connections = value(),
            "--messages" => o.messages = value(),
            // `cargo bench` passes `--bench`; ignore it and anything unknown.
            _ => {}
        }
    }
    o
}

async fn start_redis() -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/redis-setup.sh)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("Ready to accept connections") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("redis://127.0.0.1:{port}"))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A JSON connection to the test hub, handshake done and the Welcome read.
async fn connect(server: &Server) -> Ws {
    let url = server.hub_url("test").replacen("http", "ws", 1);
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

async fn scenario(name: &str, nodes: &[Server], o: &Options, t0: Instant) {
    let mut receivers = Vec::with_capacity(o.connections);
    for i in 0..o.connections {
        receivers.push(connect(&nodes[i % nodes.len()]).await);
    }
    let mut sender = connect(&nodes[0]).await;
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, o.messages, t0)))
        .collect();
    let start = Instant::now();
    for _ in 0..o.messages {
        let t = t0.elapsed().as_micros() as u64;
        let message = format!("{{\"type\":1,\"target\":\"Broadcast\",\"arguments\":[{t}]}}\x1e");
        sender.send(Message::text(message)).await.unwrap();
    }
    let mut latencies = Vec::with_capacity(o.connections * o.messages);
    for task in tasks {
        latencies.extend(
            tokio::time::timeout(Duration::from_secs(120), task)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "RESULT {name}: {} deliveries ({} connections x {} messages) in {:.2} s = {:.0} msg/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        o.connections,
        o.messages,
        elapsed.as_secs_f64(),
        rate,
        pick(0.5),
        pick(0.99),
        pick(1.0),
    );
}

async fn node(redis: Option<(&str, &str)>) -> Server {
    let config = Config {
        redis: redis.map(|(url, prefix)| RedisConfig::new(url).with_prefix(prefix)),
        ..Config::default()
    };
    talkback_fixture::spawn(config).await.unwrap()
}

#[tokio::main]
async fn main() {
    let o = options();
    let (_redis, url) = start_redis().await;
    let t0 = Instant::now();

    let alone = [node(None).await];
    scenario("1 node, no Redis", &alone, &o, t0).await;
    for n in alone {
        n.shutdown().await;
    }
    let one = [node(Some((&url, "one-"))).await];
    scenario("1 node, Redis", &one, &o, t0).await;
    for n in one {
        n.shutdown().await;
    }
    let two = [
        node(Some((&url, "two-"))).await,
        node(Some((&url, "two-"))).await,
    ];
    scenario("2 nodes, Redis", &two, &o, t0).await;
    for n in two {
        n.shutdown().await;
    }
}
