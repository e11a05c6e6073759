//! The Rust side of `scripts/bench.sh`: the tokio client against a running fixture.
//!
//! `cargo run --release -p talkback-examples --example bench -- http://127.0.0.1:PORT`
//!
//! Prints human-readable lines, then `RESULT <key> <value> <unit>` lines that the script puts
//! next to the official JavaScript client's (`tests/interop/bench.mjs`, same keys with `js.`):
//! echo invocations per second (one at a time and 100 in flight, WebSockets, JSON and
//! MessagePack), connection rate and client memory per idle connection, and the fixture's
//! `Broadcast` fan-out latency to every idle connection (p50/p99).
//! Environment: `BENCH_SECONDS` per throughput figure (default 5), `BENCH_CONNECTIONS` (1000),
//! `BENCH_MEMORY_SAMPLES` (fresh processes measuring idle memory, default 3), `BENCH_ONLY`
//! (`echo_json`: only the JSON echo figures of the single-threaded runtime, `echo_json_100`:
//! only its figure with 100 in flight, `echo_json_1`: only its sequential figure, for profiling;
//! `raw_json_1`: only the bare socket's sequential figure, the floor to profile against;
//! `memory`: only the idle-memory samples), `BENCH_MEMORY_LEAK` (a memory sample exits holding
//! its connections, so that `heaptrack` lists what they keep as leaks).
//!
//! Memory per idle connection is measured the same way as the JavaScript side's
//! (`tests/interop/bench.mjs`), so the two compare: each sample is a fresh process (this
//! program, run again with `BENCH_MEMORY_CHILD=1`: nothing is left over from the throughput
//! runs, whose freed memory a later allocation would reuse) on a single-threaded runtime that
//! opens [`WARM_CONNECTIONS`] connections first (one-time costs: the shared HTTP client, the
//! read buffer), takes the baseline RSS, opens `BENCH_CONNECTIONS` more in batches of 50, waits
//! a second and takes the RSS again; the figure is the difference over `BENCH_CONNECTIONS`,
//! the median of `BENCH_MEMORY_SAMPLES` processes. (Node forces a full GC before each reading;
//! Rust frees at once. There is no heap figure here: counting allocations needs an allocator
//! hook, which `unsafe_code = "forbid"` rules out.)

use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use talkback::{HubConnection, HubConnectionBuilder, Protocol, TransportKind, TransportSet};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Connections opened before the baseline of a memory sample (the same count on the JS side).
const WARM_CONNECTIONS: usize = 10;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// User + system CPU time of this process (every thread) so far, in microseconds, from
/// `/proc/self/stat` (clock ticks of 10 ms: the measured spans last seconds).
fn cpu_micros() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses: utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after the name.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) * 1_000_000.0 / 100.0
}

/// Prints a figure and keeps its `RESULT` line; microseconds with two decimals (CPU per call
/// with 100 in flight is about 2 us), everything else with one.
fn report(results: &mut Vec<String>, key: &str, value: f64, unit: &str) {
    let decimals = if unit == "us" { 2 } else { 1 };
    println!("{key:<40} {value:>14.decimals$} {unit}");
    results.push(format!("RESULT {key} {value:.decimals$} {unit}"));
}

async fn connect(url: &str, protocol: Protocol) -> HubConnection {
    let conn = HubConnectionBuilder::new(url)
        .with_transports(TransportSet::only(TransportKind::WebSockets))
        .with_protocol(protocol)
        .build()
        .expect("builds");
    conn.start().await.expect("starts");
    conn
}

/// Echo invocations per second with `width` in flight, for `seconds` after a warm-up, and the
/// client's CPU time per call (user + system, microseconds) over the measured calls.
async fn echo_rate(conn: &HubConnection, width: usize, seconds: u64) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        let _: String = conn.invoke("Echo", ("hello",)).await.expect("echo");
    }
    let done = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = cpu_micros();
    futures::stream::iter(0..width)
        .for_each_concurrent(width, |_| {
            let conn = conn.clone();
            let done = done.clone();
            async move {
                while Instant::now() < end {
                    let echoed: String = conn.invoke("Echo", ("hello",)).await.expect("echo");
                    assert_eq!(echoed, "hello");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    let cpu = cpu_micros() - cpu_before;
    let done = done.load(Ordering::Relaxed) as f64;
    (done / started.elapsed().as_secs_f64(), cpu / done.max(1.0))
}

/// Echo calls per second over a bare tokio-tungstenite socket with pre-encoded `Echo`
/// invocations (skipNegotiation, JSON), `width` in flight, no SignalR client logic at all: the
/// ceiling; and the process's CPU time per call over them: the floor of what a client spends
/// (the system calls and wake-ups alone).
async fn raw_echo_rate(url: &str, width: usize, seconds: u64) -> (f64, f64) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let ws_url = url.replacen("http", "ws", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("raw socket");
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}"))
        .await
        .expect("handshake");
    let frame =
        "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"hello\"]}\u{1e}";
    let mut in_flight = 0usize;
    let mut done = 0usize;
    let mut started = None;
    let warm_up_end = Instant::now() + Duration::from_millis(500);
    let end = warm_up_end + Duration::from_secs(seconds);
    loop {
        while in_flight < width && Instant::now() < end {
            ws.send(Message::text(frame)).await.expect("send");
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        let Some(Ok(message)) = ws.next().await else {
            break;
        };
        let text = message.into_text().unwrap_or_default();
        let completions = text.matches("\"type\":3").count();
        in_flight -= completions;
        if Instant::now() >= warm_up_end {
            started.get_or_insert_with(|| (Instant::now(), cpu_micros()));
            done += completions;
        }
    }
    let Some((started, cpu_before)) = started else {
        return (0.0, 0.0);
    };
    let calls = done.max(1) as f64;
    let cpu = (cpu_micros() - cpu_before) / calls;
    (done as f64 / started.elapsed().as_secs_f64(), cpu)
}

fn millis_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Opens `count` connections (JSON, WebSockets) in batches of 50.
async fn open_idle(url: &str, count: usize) -> Vec<HubConnection> {
    let mut idle = Vec::with_capacity(count);
    let mut left = count;
    while left > 0 {
        let batch = left.min(50);
        idle.extend(
            futures::future::join_all((0..batch).map(|_| connect(url, Protocol::Json))).await,
        );
        left -= batch;
    }
    idle
}

/// One idle-memory sample: bytes of RSS per connection, and connections opened per second.
#[derive(Debug)]
struct MemorySample {
    rss: f64,
    rate: f64,
}

/// Takes one memory sample in this (fresh) process and prints it as a `MEMORY` line for the
/// parent (see the module docs).
async fn memory_child(url: &str, connections: usize) {
    let warm = open_idle(url, WARM_CONNECTIONS).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes();
    let started = Instant::now();
    let idle = open_idle(url, connections).await;
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes();
    println!(
        "MEMORY {} {}",
        after.saturating_sub(before) as f64 / connections as f64,
        connections as f64 / connect_seconds
    );
    if std::env::var("BENCH_MEMORY_LEAK").is_ok() {
        std::process::exit(0);
    }
    futures::future::join_all(warm.iter().chain(&idle).map(|c| c.stop())).await;
}

/// Runs `BENCH_MEMORY_SAMPLES` memory samples, each in a fresh process, one after another.
fn memory_samples(base: &str) -> Vec<MemorySample> {
    let count = env_number("BENCH_MEMORY_SAMPLES", 3).max(1);
    let exe = std::env::current_exe().expect("this program's path");
    (0..count)
        .map(|_| {
            let output = std::process::Command::new(&exe)
                .arg(base)
                .env("BENCH_MEMORY_CHILD", "1")
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("a memory sample runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout
                .lines()
                .find_map(|l| l.strip_prefix("MEMORY "))
                .unwrap_or_else(|| panic!("a memory sample printed no MEMORY line:\n{stdout}"));
            let mut fields = line.split(' ').map(|f| f.parse::<f64>().expect("a number"));
            MemorySample {
                rss: fields.next().expect("the RSS figure"),
                rate: fields.next().expect("the connection rate"),
            }
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn main() {
    // The figures under `rust.` come from a single-threaded runtime (like Node's event loop);
    // the echo figures are repeated on a two-worker runtime under `rust_mt.`.
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var("BENCH_MEMORY_CHILD").as_deref() == Ok("1") {
        let url = format!("{}/hubs/test", base_url().trim_end_matches('/'));
        let connections = env_number("BENCH_CONNECTIONS", 1000) as usize;
        single.block_on(memory_child(&url, connections));
        return;
    }
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let results = single.block_on(run("rust", true));
    drop(single);
    if !only.is_empty() {
        println!();
        for line in results {
            println!("{line}");
        }
        return;
    }
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The measuring future runs in a spawned task (a worker thread), as application code
    // usually does; `block_on`'s own thread is not a worker and each wake-up crosses threads.
    let more = multi
        .block_on(multi.spawn(run("rust_mt", false)))
        .expect("the multi-threaded run");
    println!();
    for line in results.into_iter().chain(more) {
        println!("{line}");
    }
}

/// The fixture's URL: the first argument, else `BENCH_URL`.
fn base_url() -> String {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_URL").ok())
        .expect("usage: bench http://127.0.0.1:PORT (a running talkback-fixture)")
}

async fn run(side: &str, everything: bool) -> Vec<String> {
    let base = base_url();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let url = format!("{}/hubs/test", base.trim_end_matches('/'));
    let seconds = env_number("BENCH_SECONDS", 5);
    let connections = env_number("BENCH_CONNECTIONS", 1000) as usize;
    let mut results = Vec::new();
    println!(
        "[{side}] server: {url}; {seconds} s per throughput figure; {connections} idle connections"
    );

    if only == "raw_json_1" {
        let (rate, cpu) = raw_echo_rate(&url, 1, seconds).await;
        report(&mut results, "raw_rs.echo_sequential", rate, "ops/s");
        report(&mut results, "raw_rs.cpu_us_per_call_sequential", cpu, "us");
        return results;
    }
    if only == "memory" {
        let samples = memory_samples(&base);
        let rss: Vec<f64> = samples.iter().map(|s| s.rss).collect();
        println!("[{side}] idle-memory samples (bytes per connection): {rss:.0?}");
        report(
            &mut results,
            "rust.memory_per_idle_connection",
            median(&rss),
            "bytes",
        );
        return results;
    }
    let protocols: &[(Protocol, &str)] = if only.starts_with("echo_json") {
        &[(Protocol::Json, "")]
    } else {
        &[(Protocol::Json, ""), (Protocol::MessagePack, "_msgpack")]
    };
    for &(protocol, suffix) in protocols {
        let conn = connect(&url, protocol).await;
        if only == "echo_json_100" {
            let (parallel, parallel_cpu) = echo_rate(&conn, 100, seconds).await;
            report(&mut results, "rust.echo_100_in_flight", parallel, "ops/s");
            report(
                &mut results,
                "rust.cpu_us_per_call_100_in_flight",
                parallel_cpu,
                "us",
            );
            return results;
        }
        let (sequential, sequential_cpu) = echo_rate(&conn, 1, seconds).await;
        report(
            &mut results,
            &format!("{side}.echo_sequential{suffix}"),
            sequential,
            "ops/s",
        );
        report(
            &mut results,
            &format!("{side}.cpu_us_per_call_sequential{suffix}"),
            sequential_cpu,
            "us",
        );
        if only == "echo_json_1" {
            return results;
        }
        let (parallel, parallel_cpu) = echo_rate(&conn, 100, seconds).await;
        report(
            &mut results,
            &format!("{side}.echo_100_in_flight{suffix}"),
            parallel,
            "ops/s",
        );
        report(
            &mut results,
            &format!("{side}.cpu_us_per_call_100_in_flight{suffix}"),
            parallel_cpu,
            "us",
        );
        conn.stop().await.expect("stops");
    }
    if !everything || !only.is_empty() {
        return results;
    }
    for (width, name) in [(1, "sequential"), (100, "100_in_flight")] {
        let (rate, cpu) = raw_echo_rate(&url, width, seconds).await;
        report(&mut results, &format!("raw_rs.echo_{name}"), rate, "ops/s");
        let key = format!("raw_rs.cpu_us_per_call_{name}");
        report(&mut results, &key, cpu, "us");
    }

    // Idle connections: connection rate and client memory, the median of fresh processes.
    let samples = memory_samples(&base);
    let rates: Vec<f64> = samples.iter().map(|s| s.rate).collect();
    let rss: Vec<f64> = samples.iter().map(|s| s.rss).collect();
    println!("[{side}] idle-memory samples (bytes per connection): {rss:.0?}; connections/s: {rates:.0?}");
    report(&mut results, "rust.connect_rate", median(&rates), "conn/s");
    report(
        &mut results,
        "rust.memory_per_idle_connection",
        median(&rss),
        "bytes",
    );

    // The fan-out runs over idle connections of this process.
    let idle = open_idle(&url, connections).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Fan-out: one Broadcast reaches every idle connection; latency from send to each delivery.
    let latencies = Arc::new(Mutex::new(Vec::<f64>::with_capacity(connections * 10)));
    for conn in &idle {
        let latencies = latencies.clone();
        conn.on("Broadcast", move |(sent,): (f64,)| {
            latencies.lock().unwrap().push(millis_now() - sent);
        });
    }
    let sender = connect(&url, Protocol::Json).await;
    let rounds = 10;
    for _ in 0..rounds {
        sender
            .send("Broadcast", (millis_now(),))
            .await
            .expect("broadcast");
        let expected = latencies.lock().unwrap().len() + connections;
        let deadline = Instant::now() + Duration::from_secs(30);
        while latencies.lock().unwrap().len() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut all = latencies.lock().unwrap().clone();
    all.sort_by(|a, b| a.total_cmp(b));
    let delivered = all.len() as f64 / (rounds * connections) as f64;
    report(
        &mut results,
        "fixture.broadcast_delivered",
        delivered * 100.0,
        "%",
    );
    report(
        &mut results,
        "fixture.broadcast_p50",
        percentile(&all, 0.50),
        "ms",
    );
    report(
        &mut results,
        "fixture.broadcast_p99",
        percentile(&all, 0.99),
        "ms",
    );

    sender.stop().await.ok();
    futures::future::join_all(idle.iter().map(|c| c.stop())).await;
    results
}
