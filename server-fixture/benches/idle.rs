//! Load benchmark: the fixture's memory per idle connection.
//!
//! Starts the release fixture binary in its own process, opens N idle SignalR connections to its
//! `test` hub (negotiate, transport, JSON handshake done; the client answers nothing but sends a
//! Ping every 15 s as the official client does), and prints the fixture's RSS growth
//! (`/proc/PID/status`, `VmRSS`) per connection. Raw HTTP/1.1 and WebSocket frames over tokio
//! sockets keep the client side small; the client is a separate process, so its own memory is
//! not counted.
//!
//! ```text
//! scripts/load.sh                                   # 10,000 WebSockets, then SSE and long polling
//! cargo bench -p talkback-fixture --bench idle -- --transport ws --connections 10000
//! ```
//!
//! Options: `--transport ws|sse|lp|negotiate|nohandshake`, `--connections N`, `--hold SECONDS`
//! (keep them open that long after measuring), `--fixture PATH` (default: this package's
//! binary, or `$TALKBACK_FIXTURE_BIN`), `--fixture-arg ARG` (repeatable, passed to the fixture).
//! Lines starting with `RESULT` are the figures.
//!
//! - `negotiate`: N negotiates that never open a transport (their cost; then, after the
//!   handshake timeout, how many the fixture still lists and its RSS).
//! - `nohandshake`: N WebSockets upgraded that never send the handshake (their cost; then how
//!   many the fixture closed by the handshake timeout).
//! - `--broadcast ROUNDS` (WebSockets): after opening them, one more connection sends
//!   `Broadcast(t)` ROUNDS times; every idle connection notes when it arrives: delivered share,
//!   p50/p99 from send to arrival, and the fixture's CPU per delivered message.
//! - `--churn SECONDS` (WebSockets): instead of idle connections, N workers connect, call
//!   `Add(1, 2)`, and disconnect, over and over for SECONDS; the fixture's RSS at the start, at
//!   the end and once ended connections were forgotten.
#![allow(missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PING_EVERY: Duration = Duration::from_secs(15);
const HANDSHAKE: &[u8] = b"{\"protocol\":\"json\",\"version\":1}\x1e";
const PING: &[u8] = b"{\"type\":6}\x1e";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ws,
    Sse,
    Lp,
    Negotiate,
    NoHandshake,
}

struct Options {
    kind: Kind,
    connections: usize,
    hold: Duration,
    fixture: String,
    fixture_args: Vec<String>,
    broadcast: usize,
    churn: Duration,
}

fn options() -> Options {
    let mut o = Options {
        kind: Kind::Ws,
        connections: 1000,
        hold: Duration::ZERO,
        fixture: std::env::var("TALKBACK_FIXTURE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_talkback-fixture").to_owned()),
        fixture_args: Vec::new(),
        broadcast: 0,
        churn: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the option");
        match arg.as_str() {
            "--transport" => {
                o.kind = match value().as_str() {
                    "ws" => Kind::Ws,
                    "sse" => Kind::Sse,
                    "lp" => Kind::Lp,
                    "negotiate" => Kind::Negotiate,
                    "nohandshake" => Kind::NoHandshake,
                    other => panic!("unknown transport {other}"),
                }
            }
            "--connections" => o.connections = value().parse().expect("a number"),
            "--hold" => o.hold = Duration::from_secs(value().parse().expect("seconds")),
            "--fixture" => o.fixture = value(),
            "--fixture-arg" => o.fixture_args.push(value()),
            "--broadcast" => o.broadcast = value().parse().expect("a number"),
            "--churn" => o.churn = Duration::from_secs(value().parse().expect("seconds")),
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    o
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The fixture's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

struct Fixture {
    child: Child,
    addr: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fixture(o: &Options) -> Fixture {
    let mut child = Command::new(&o.fixture)
        .args(["--port", "0"])
        .args(&o.fixture_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", o.fixture));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the fixture prints its address")
            .expect("a line");
        if let Some(url) = line.strip_prefix("listening on http://") {
            break url.trim().to_owned();
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Fixture { child, addr }
}

/// One HTTP/1.1 response: status and body (`Content-Length` bodies only).
async fn response(stream: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok((status, body))
}

async fn request(
    stream: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    stream.write_all(&all).await
}

/// `POST /hubs/test/negotiate?negotiateVersion=1` on `stream`: the connection token.
async fn negotiate(stream: &mut TcpStream, addr: &str) -> std::io::Result<String> {
    request(
        stream,
        addr,
        "POST",
        "/hubs/test/negotiate?negotiateVersion=1",
        "",
        b"",
    )
    .await?;
    let (status, body) = response(stream).await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("negotiate: {status}")));
    }
    let text = String::from_utf8_lossy(&body);
    let token = text
        .split("\"connectionToken\":\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .ok_or_else(|| std::io::Error::other("no connectionToken"))?;
    Ok(token.to_owned())
}

/// A masked client text frame.
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81u8];
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Opens one idle WebSocket connection; returns it once the handshake answer arrived.
async fn open_ws(addr: &str) -> std::io::Result<TcpStream> {
    let mut stream = upgrade_ws(addr).await?;
    stream.write_all(&ws_frame(HANDSHAKE)).await?;
    // The handshake answer `{}\x1e` in one small text frame.
    let mut answer = [0u8; 5];
    stream.read_exact(&mut answer).await?;
    if &answer[2..] != b"{}\x1e" {
        return Err(std::io::Error::other("bad handshake answer"));
    }
    Ok(stream)
}

/// Negotiates and upgrades to a WebSocket, without the SignalR handshake.
async fn upgrade_ws(addr: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    let token = negotiate(&mut stream, addr).await?;
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    request(
        &mut stream,
        addr,
        "GET",
        &format!("/hubs/test?id={token}"),
        upgrade,
        b"",
    )
    .await?;
    let (status, _) = response(&mut stream).await?;
    if status != 101 {
        return Err(std::io::Error::other(format!("upgrade: {status}")));
    }
    Ok(stream)
}

/// Where idle WebSockets note the `Broadcast` messages they receive.
struct Deliveries {
    /// The clock the `Broadcast` argument counts from (microseconds).
    epoch: Instant,
    latencies_us: parking_lot::Mutex<Vec<u64>>,
    notify: tokio::sync::Notify,
}

const BROADCAST_MARK: &[u8] = b"\"target\":\"Broadcast\",\"arguments\":[";

impl Deliveries {
    /// Scans what arrived (kept in `carry` across reads) for `Broadcast(t)` messages.
    fn scan(&self, carry: &mut Vec<u8>, bytes: &[u8]) {
        carry.extend_from_slice(bytes);
        while let Some(end) = carry.iter().position(|b| *b == 0x1e) {
            let record: Vec<u8> = carry.drain(..=end).collect();
            let Some(at) = record
                .windows(BROADCAST_MARK.len())
                .position(|w| w == BROADCAST_MARK)
            else {
                continue;
            };
            let digits: String = record[at + BROADCAST_MARK.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|b| *b as char)
                .collect();
            if let Ok(sent) = digits.parse::<u64>() {
                let now = self.epoch.elapsed().as_micros() as u64;
                self.latencies_us.lock().push(now.saturating_sub(sent));
                self.notify.notify_one();
            }
        }
        if carry.len() > 4096 {
            carry.clear();
        }
    }
}

/// Keeps a WebSocket idle: discards what arrives (noting broadcasts), sends a Ping every 15 s.
async fn idle_ws(mut stream: TcpStream, deliveries: Option<Arc<Deliveries>>) {
    let mut buffer = [0u8; 256];
    let mut carry = Vec::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(d) = &deliveries {
                        d.scan(&mut carry, &buffer[..n]);
                    }
                }
            },
            _ = ping.tick() => {
                if stream.write_all(&ws_frame(PING)).await.is_err() { return; }
            }
        }
    }
}

/// An idle SSE connection: the event stream on one socket, sends (handshake, Pings) on another.
async fn open_sse(addr: &str) -> std::io::Result<(TcpStream, TcpStream, String)> {
    let mut events = TcpStream::connect(addr).await?;
    let token = negotiate(&mut events, addr).await?;
    request(
        &mut events,
        addr,
        "GET",
        &format!("/hubs/test?id={token}"),
        "Accept: text/event-stream\r\n",
        b"",
    )
    .await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if events.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let mut sends = TcpStream::connect(addr).await?;
    request(
        &mut sends,
        addr,
        "POST",
        &format!("/hubs/test?id={token}"),
        "",
        HANDSHAKE,
    )
    .await?;
    let (status, _) = response(&mut sends).await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("send: {status}")));
    }
    Ok((events, sends, token))
}

async fn idle_sse(mut events: TcpStream, mut sends: TcpStream, token: String, addr: String) {
    let mut buffer = [0u8; 256];
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let path = format!("/hubs/test?id={token}");
    loop {
        tokio::select! {
            read = events.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = ping.tick() => {
                if request(&mut sends, &addr, "POST", &path, "", PING).await.is_err()
                    || response(&mut sends).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// An idle long-polling connection: polls on one socket (the handshake answer drained), the
/// handshake POST on another, which is then closed.
async fn open_lp(addr: &str) -> std::io::Result<(TcpStream, String)> {
    let mut polls = TcpStream::connect(addr).await?;
    let token = negotiate(&mut polls, addr).await?;
    let path = format!("/hubs/test?id={token}");
    request(&mut polls, addr, "GET", &path, "", b"").await?;
    let (status, _) = response(&mut polls).await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("first poll: {status}")));
    }
    let mut sends = TcpStream::connect(addr).await?;
    request(&mut sends, addr, "POST", &path, "", HANDSHAKE).await?;
    let (status, _) = response(&mut sends).await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("send: {status}")));
    }
    drop(sends);
    loop {
        request(&mut polls, addr, "GET", &path, "", b"").await?;
        let (status, body) = response(&mut polls).await?;
        if status != 200 {
            return Err(std::io::Error::other(format!("poll: {status}")));
        }
        if body.starts_with(b"{}\x1e") {
            return Ok((polls, token));
        }
    }
}

/// Keeps a long poll waiting, polling again whenever one is answered.
async fn idle_lp(mut polls: TcpStream, token: String, addr: String) {
    let path = format!("/hubs/test?id={token}");
    loop {
        if request(&mut polls, &addr, "GET", &path, "", b"")
            .await
            .is_err()
        {
            return;
        }
        match response(&mut polls).await {
            Ok((200, _)) => {}
            _ => return,
        }
    }
}

/// What the `nohandshake` connections saw: how many the fixture closed.
#[derive(Default)]
struct Closures {
    closed: std::sync::atomic::AtomicUsize,
}

/// Opens `n` idle connections (100 at a time), each left running in its own task.
async fn open_many(
    addr: &str,
    kind: Kind,
    n: usize,
    deliveries: Option<Arc<Deliveries>>,
    closures: Arc<Closures>,
) -> (usize, usize) {
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        let addr = addr.to_owned();
        let deliveries = deliveries.clone();
        let closures = closures.clone();
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open gate");
            let opened = tokio::time::timeout(Duration::from_secs(30), async {
                match kind {
                    Kind::Ws => open_ws(&addr).await.map(|s| {
                        tokio::spawn(idle_ws(s, deliveries));
                    }),
                    Kind::NoHandshake => upgrade_ws(&addr).await.map(|mut s| {
                        tokio::spawn(async move {
                            let mut buffer = [0u8; 256];
                            while let Ok(n) = s.read(&mut buffer).await {
                                if n == 0 {
                                    break;
                                }
                            }
                            closures
                                .closed
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        });
                    }),
                    Kind::Negotiate => {
                        let mut s = TcpStream::connect(&addr).await?;
                        negotiate(&mut s, &addr).await.map(drop)
                    }
                    Kind::Sse => open_sse(&addr).await.map(|(e, s, t)| {
                        tokio::spawn(idle_sse(e, s, t, addr.clone()));
                    }),
                    Kind::Lp => open_lp(&addr).await.map(|(p, t)| {
                        tokio::spawn(idle_lp(p, t, addr.clone()));
                    }),
                }
            })
            .await;
            if let Ok(Err(e)) = &opened {
                eprintln!("open failed: {e}");
            }
            matches!(opened, Ok(Ok(())))
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(result) = opening.join_next().await {
        if matches!(result, Ok(true)) {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    (ok, failed)
}

/// `GET /admin/connections`: how many connections the fixture lists.
async fn listed(addr: &str) -> std::io::Result<usize> {
    let mut s = TcpStream::connect(addr).await?;
    request(
        &mut s,
        addr,
        "GET",
        "/admin/connections",
        "X-Talkback-Admin: 1\r\n",
        b"",
    )
    .await?;
    let (status, body) = response(&mut s).await?;
    if status != 200 {
        return Err(std::io::Error::other(format!("admin: {status}")));
    }
    Ok(body.iter().filter(|b| **b == b'"').count() / 2)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// One connect, call, disconnect cycle.
async fn churn_once(addr: &str) -> std::io::Result<()> {
    let mut s = open_ws(addr).await?;
    s.write_all(&ws_frame(
        b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Add\",\"arguments\":[1,2]}\x1e",
    ))
    .await?;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 512];
    while !seen
        .windows(b"\"result\":3".len())
        .any(|w| w == b"\"result\":3")
    {
        let n = s.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&buffer[..n]);
    }
    // A WebSocket Close frame (masked, no payload), then the TCP close.
    s.write_all(&[0x88, 0x80, 1, 2, 3, 4]).await?;
    Ok(())
}

async fn churn(addr: &str, pid: u32, workers: usize, length: Duration) {
    let start = rss_kb(pid);
    let cpu = cpu_seconds(pid);
    println!("fixture RSS at the start of the churn: {start} kB");
    let until = Instant::now() + length;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (addr, done, failed) = (addr.to_owned(), done.clone(), failed.clone());
        tasks.spawn(async move {
            while Instant::now() < until {
                match tokio::time::timeout(Duration::from_secs(10), churn_once(&addr)).await {
                    Ok(Ok(())) => done.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    _ => failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
            }
        });
    }
    let mut samples = Vec::new();
    let sampler = async {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            samples.push(rss_kb(pid));
        }
    };
    tokio::select! {
        _ = async { while tasks.join_next().await.is_some() {} } => {}
        _ = sampler => {}
    }
    let end = rss_kb(pid);
    let cycles = done.load(std::sync::atomic::Ordering::Relaxed);
    let cpu = cpu_seconds(pid) - cpu;
    println!("RSS every 10 s during the churn (kB): {samples:?}");
    // Ended connections stay findable by token for 10 s (late long polls): wait them out.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let settled = rss_kb(pid);
    let left = listed(addr).await.unwrap_or(usize::MAX);
    println!(
        "RESULT fixture.churn_cycles {cycles} cycles ({} failed) in {} s with {workers} workers",
        failed.load(std::sync::atomic::Ordering::Relaxed),
        length.as_secs()
    );
    println!(
        "RESULT fixture.churn_rss_start {:.1} MB",
        start as f64 / 1024.0
    );
    println!("RESULT fixture.churn_rss_end {:.1} MB", end as f64 / 1024.0);
    println!(
        "RESULT fixture.churn_rss_settled {:.1} MB ({left} connections listed)",
        settled as f64 / 1024.0
    );
    println!(
        "RESULT fixture.churn_cpu_per_cycle {:.0} us",
        cpu * 1e6 / cycles.max(1) as f64
    );
}

async fn broadcast(addr: &str, pid: u32, rounds: usize, receivers: usize, d: &Arc<Deliveries>) {
    let mut sender = open_ws(addr).await.expect("the broadcasting connection");
    // Its own copies are read and dropped.
    let (mut reader, mut writer) = sender.split();
    let drain = async {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    };
    let rounds_run = async {
        let mut all = Vec::new();
        let mut per_round = Vec::new();
        let cpu = cpu_seconds(pid);
        for _ in 0..rounds {
            d.latencies_us.lock().clear();
            let sent = d.epoch.elapsed().as_micros() as u64;
            let call =
                format!("{{\"type\":1,\"target\":\"Broadcast\",\"arguments\":[{sent}]}}\x1e");
            writer
                .write_all(&ws_frame(call.as_bytes()))
                .await
                .expect("send");
            let wait = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let notified = d.notify.notified();
                    if d.latencies_us.lock().len() >= receivers {
                        break;
                    }
                    notified.await;
                }
            })
            .await;
            let mut got = std::mem::take(&mut *d.latencies_us.lock());
            if wait.is_err() {
                println!("round timed out: {} of {receivers} delivered", got.len());
            }
            got.sort_unstable();
            per_round.push((got.len(), percentile(&got, 0.5), percentile(&got, 0.99)));
            all.extend(got);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // The pauses between rounds cost (almost) no CPU: idle connections.
        let cpu = cpu_seconds(pid) - cpu;
        (all, per_round, cpu)
    };
    let (mut all, per_round, cpu) = tokio::select! {
        r = rounds_run => r,
        _ = drain => panic!("the broadcasting connection closed"),
    };
    all.sort_unstable();
    let expected = rounds * receivers;
    for (i, (n, p50, p99)) in per_round.iter().enumerate() {
        println!(
            "round {}: {n} delivered, p50 {p50:.1} ms, p99 {p99:.1} ms",
            i + 1
        );
    }
    println!(
        "RESULT fixture.broadcast_delivered {:.2} % ({} of {expected})",
        all.len() as f64 * 100.0 / expected.max(1) as f64,
        all.len()
    );
    println!(
        "RESULT fixture.broadcast_{receivers}_p50 {:.1} ms",
        percentile(&all, 0.5)
    );
    println!(
        "RESULT fixture.broadcast_{receivers}_p99 {:.1} ms",
        percentile(&all, 0.99)
    );
    println!(
        "RESULT fixture.broadcast_cpu_per_delivery {:.2} us",
        cpu * 1e6 / all.len().max(1) as f64
    );
}

#[tokio::main]
async fn main() {
    let o = options();
    let fixture = start_fixture(&o);
    let pid = fixture.child.id();
    let addr = fixture.addr.clone();
    let closures = Arc::new(Closures::default());
    let deliveries = (o.broadcast > 0).then(|| {
        Arc::new(Deliveries {
            epoch: Instant::now(),
            latencies_us: parking_lot::Mutex::new(Vec::new()),
            notify: tokio::sync::Notify::new(),
        })
    });
    if !o.churn.is_zero() {
        println!(
            "fixture pid {pid} at {addr}; churn with {} workers for {:?}",
            o.connections, o.churn
        );
        open_many(&addr, Kind::Ws, 20, None, closures.clone()).await;
        tokio::time::sleep(Duration::from_secs(12)).await;
        churn(&addr, pid, o.connections, o.churn).await;
        return;
    }
    println!(
        "fixture pid {pid} at {addr}; opening {} idle {:?} connections",
        o.connections, o.kind
    );
    // Warm up with a few connections of the kind, so one-time allocations are not counted.
    open_many(&addr, o.kind, 20, None, closures.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kb(pid);
    println!("fixture RSS before: {before} kB");
    let started = Instant::now();
    let (ok, failed) = open_many(
        &addr,
        o.kind,
        o.connections,
        deliveries.clone(),
        closures.clone(),
    )
    .await;
    println!(
        "opened {ok} ({failed} failed) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let the fixture settle (tasks parked, buffers released).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kb(pid);
    let per = (after.saturating_sub(before) as f64 * 1024.0) / ok.max(1) as f64;
    let name = match o.kind {
        Kind::Ws => "ws",
        Kind::Sse => "sse",
        Kind::Lp => "lp",
        Kind::Negotiate => "negotiated",
        Kind::NoHandshake => "nohandshake",
    };
    println!("fixture RSS after: {after} kB");
    println!("RESULT fixture.idle_{name}_connections {ok} connections");
    println!(
        "RESULT fixture.idle_{name}_rss_total {:.1} MB",
        after as f64 / 1024.0
    );
    println!("RESULT fixture.idle_{name}_rss_per_connection {per:.0} bytes");
    if let Some(d) = &deliveries {
        broadcast(&addr, pid, o.broadcast, ok, d).await;
    }
    if matches!(o.kind, Kind::Negotiate | Kind::NoHandshake) {
        // Past the handshake timeout (15 s by default; the warm-up ones expire first).
        tokio::time::sleep(Duration::from_secs(17)).await;
        let left = listed(&addr).await.unwrap_or(usize::MAX);
        println!("RESULT fixture.idle_{name}_listed_after_handshake_timeout {left} connections");
        if o.kind == Kind::NoHandshake {
            println!(
                "RESULT fixture.idle_{name}_closed_by_fixture {} of {}",
                closures.closed.load(std::sync::atomic::Ordering::Relaxed),
                ok + 20
            );
        }
        println!(
            "RESULT fixture.idle_{name}_rss_after_handshake_timeout {:.1} MB",
            rss_kb(pid) as f64 / 1024.0
        );
    }
    if !o.hold.is_zero() {
        tokio::time::sleep(o.hold).await;
        println!("fixture RSS after holding {:?}: {} kB", o.hold, rss_kb(pid));
    }
    drop(fixture);
    if failed > 0 {
        std::process::exit(1);
    }
}
