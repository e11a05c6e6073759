//! Echo benchmark of the tokio client against the in-process fixture:
//!
//! - invocations per second over one connection, one at a time and with 100 in flight, per
//!   transport and protocol;
//! - client memory per idle connection: 1,000 WebSocket connections to a fixture running in a
//!   child process (so only client memory is counted), RSS delta from `/proc/self/status`.
//!
//! Run with `cargo bench -p talkback --bench echo` (`-- --quick` for a short run).

use futures::StreamExt;
use std::time::{Duration, Instant};
use talkback::{HubConnection, HubConnectionBuilder, Protocol, TransportKind, TransportSet};

const SERVE_FLAG: &str = "--serve-fixture";

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn start_fixture() -> talkback_fixture::Server {
    talkback_fixture::spawn(talkback_fixture::Config::default())
        .await
        .expect("the fixture starts")
}

async fn connect(url: &str, transport: TransportKind, protocol: Protocol) -> HubConnection {
    let conn = HubConnectionBuilder::new(url)
        .with_transports(TransportSet::only(transport))
        .with_protocol(protocol)
        .build()
        .expect("builds");
    conn.start().await.expect("starts");
    conn
}

async fn sequential(conn: &HubConnection, n: usize) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        let echoed: usize = conn.invoke("Echo", (i,)).await.expect("echo");
        assert_eq!(echoed, i);
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn in_flight(conn: &HubConnection, n: usize, width: usize) -> f64 {
    let started = Instant::now();
    let done = futures::stream::iter(0..n)
        .map(|i| {
            let conn = conn.clone();
            async move {
                let echoed: usize = conn.invoke("Echo", (i,)).await.expect("echo");
                assert_eq!(echoed, i);
            }
        })
        .buffer_unordered(width)
        .count()
        .await;
    assert_eq!(done, n);
    n as f64 / started.elapsed().as_secs_f64()
}

async fn throughput(quick: bool) {
    let server = start_fixture().await;
    let url = format!("{}/hubs/test", server.url());
    let (seq_n, par_n) = if quick { (500, 2_000) } else { (5_000, 20_000) };
    let combos = [
        (TransportKind::WebSockets, Protocol::Json),
        (TransportKind::WebSockets, Protocol::MessagePack),
        (TransportKind::ServerSentEvents, Protocol::Json),
        (TransportKind::LongPolling, Protocol::Json),
        (TransportKind::LongPolling, Protocol::MessagePack),
    ];
    println!("echo invocations per second over one connection");
    println!(
        "{:<18} {:<12} {:>14} {:>16}",
        "transport", "protocol", "sequential", "100 in flight"
    );
    for (transport, protocol) in combos {
        let conn = connect(&url, transport, protocol).await;
        // Warm up.
        sequential(&conn, 50).await;
        let seq = sequential(&conn, seq_n).await;
        let par = in_flight(&conn, par_n, 100).await;
        println!(
            "{:<18} {:<12} {:>14.0} {:>16.0}",
            transport.name(),
            protocol.name(),
            seq,
            par
        );
        conn.stop().await.expect("stops");
    }
}

async fn memory(connections: usize) {
    // The fixture runs in a child process so that its memory is not counted.
    let exe = std::env::current_exe().expect("current exe");
    let mut child = tokio::process::Command::new(exe)
        .arg(SERVE_FLAG)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the fixture process");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let base = lines
        .next_line()
        .await
        .expect("read the fixture URL")
        .expect("the fixture printed its URL");
    let url = format!("{base}/hubs/test");

    // Warm up allocator and runtime with one connection first.
    let warm = connect(&url, TransportKind::WebSockets, Protocol::Json).await;
    let before = rss_kib();
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(connect(&url, TransportKind::WebSockets, Protocol::Json).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!(
        "memory: {connections} idle WebSocket connections: RSS {} KiB -> {} KiB, {:.1} KiB per connection",
        before,
        after,
        (after.saturating_sub(before)) as f64 / connections as f64
    );
    for conn in &conns {
        conn.stop().await.expect("stops");
    }
    warm.stop().await.expect("stops");
    let _ = child.kill().await;
}

fn serve() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let server = start_fixture().await;
        println!("{}", server.url());
        // Serve until the parent kills us (or for at most ten minutes).
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == SERVE_FLAG) {
        serve();
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        throughput(quick).await;
        memory(if quick { 200 } else { 1_000 }).await;
    });
}
