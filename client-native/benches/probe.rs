//! A small, steady load for profilers, against a running fixture (a separate process, so that
//! only the client is measured):
//!
//! ```text
//! cargo bench -p talkback --bench probe --no-run
//! probe seq  N URL   # N sequential Echo("hello") invocations after a warm-up
//! probe par  N URL   # N invocations, 100 in flight
//! probe idle N URL   # N idle WebSocket connections; prints the RSS delta per connection
//! ```
//!
//! With `PROBE_EXIT_IDLE` set, `idle` exits as soon as it has measured: under
//! `heaptrack`, `heaptrack_print --print-leaks` then lists what the idle connections hold, by
//! allocation site.
//!
//! Instruction counts per call come from two runs under `valgrind --tool=callgrind` with
//! different N: (I(N2) - I(N1)) / (N2 - N1) leaves out start-up and connection costs. The URL is
//! the fixture's base (`http://127.0.0.1:PORT`). Single-threaded tokio runtime, WebSockets, JSON.

use futures::StreamExt;
use std::time::Duration;
use talkback::{HubConnection, HubConnectionBuilder, Protocol, TransportKind, TransportSet};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

async fn connect(url: &str) -> HubConnection {
    let conn = HubConnectionBuilder::new(url)
        .with_transports(TransportSet::only(TransportKind::WebSockets))
        .with_protocol(Protocol::Json)
        .build()
        .expect("builds");
    conn.start().await.expect("starts");
    conn
}

async fn echo(conn: &HubConnection) {
    let echoed: String = conn.invoke("Echo", ("hello",)).await.expect("echo");
    assert_eq!(echoed, "hello");
}

async fn run(mode: &str, n: usize, url: &str) {
    match mode {
        "seq" | "par" => {
            let conn = connect(url).await;
            for _ in 0..200 {
                echo(&conn).await;
            }
            let width = if mode == "seq" { 1 } else { 100 };
            futures::stream::iter(0..n)
                .for_each_concurrent(width, |_| echo(&conn))
                .await;
            conn.stop().await.expect("stops");
        }
        "idle" => {
            let before = rss_bytes();
            let mut idle = Vec::with_capacity(n);
            for _ in 0..n.div_ceil(50) {
                let batch = futures::future::join_all((0..50).map(|_| connect(url))).await;
                idle.extend(batch);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = rss_bytes();
            println!(
                "{} bytes per idle connection ({} connections)",
                after.saturating_sub(before) / idle.len() as u64,
                idle.len()
            );
            if std::env::var_os("PROBE_EXIT_IDLE").is_some() {
                // Under a heap profiler: what is still allocated at exit is what the idle
                // connections hold (`heaptrack_print --print-leaks`).
                std::process::exit(0);
            }
            futures::future::join_all(idle.iter().map(|c| c.stop())).await;
        }
        other => panic!("unknown mode {other}: seq, par or idle"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`: nothing to do then.
    if args.len() < 4 || args.iter().any(|a| a == "--bench") {
        println!("usage: probe seq|par|idle N http://127.0.0.1:PORT");
        return;
    }
    let n: usize = args[2].parse().expect("N is a number");
    let url = format!("{}/hubs/test", args[3].trim_end_matches('/'));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(&args[1], n, &url));
}
