//! The HTTP layer: the accept loop, with the limits that `axum::serve` does not offer.
//!
//! `axum::serve` runs hyper with no timer, so hyper's header-read timeout never fires, and it
//! accepts sockets until the file descriptors run out. The fixture drives hyper's own HTTP/1
//! connection builder itself (hyper-util's `TokioIo`, `TokioTimer` and `TowerToHyperService`
//! are the adapters axum uses underneath; all three crates are maintained by hyper's authors),
//! with:
//!
//! - **A header-read timeout** ([`FixtureConfig::header_read_timeout`]): hyper's
//!   `http1::Builder::header_read_timeout`, driven by `TokioTimer`. hyper arms it whenever the
//!   connection waits for a request head: right after accept, and after each response on a
//!   keep-alive connection. It is therefore also the **idle keep-alive timeout**, and a slowloris
//!   peer (one header byte a second) is cut when it runs out however many bytes trickle in.
//!   A request in progress (a long poll, an SSE stream) is not affected, nor is an upgraded
//!   WebSocket, which hyper no longer drives.
//! - **A cap on concurrent connections** ([`FixtureConfig::max_connections`]): every accepted
//!   socket holds a semaphore permit inside its IO object, so the permit lives exactly as long
//!   as the socket, through a WebSocket upgrade too (hyper hands the IO object over). A socket
//!   accepted over the cap is answered `503 Service Unavailable` with `Connection: close` on its
//!   first request (a negotiate, or a WebSocket upgrade request before any upgrade), from a small
//!   pool of [`REFUSAL_SLOTS`]; beyond those it is closed at once. Refusals are logged at most
//!   once a second, with their count. The default cap stays below the process's file limit.
//!
//! The request-body timeout lives where bodies are read (`routes::send`).

use crate::config::FixtureConfig;
use axum::body::Body;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// Sockets over the cap that may be answered `503` at the same time; more are closed at once.
pub(crate) const REFUSAL_SLOTS: usize = 64;
/// How long a refused socket may take to send its request and read the `503`.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// File descriptors kept free below the soft limit by the default cap (the listener, the
/// runtime, logs, the refusal slots).
const FD_RESERVE: usize = 128 + REFUSAL_SLOTS;

/// The default connection cap: the soft open-files limit less [`FD_RESERVE`] (Linux reads
/// `/proc/self/limits`; elsewhere, and if the limit is unlimited or unreadable, 10,000).
pub(crate) fn default_max_connections() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    match limit {
        Some(limit) => limit.saturating_sub(FD_RESERVE).max(16),
        None => 10_000,
    }
}

/// A socket that holds its connection permit for as long as it lives.
struct Counted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Logs refused sockets, at most once a second.
#[derive(Default)]
struct RefusalLog {
    refused: AtomicU64,
    logged_at: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl RefusalLog {
    fn refused(&self, answered: bool, max: usize) {
        let count = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut at = self.logged_at.lock();
        if at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *at = Some(std::time::Instant::now());
            tracing::warn!(
                max_connections = max,
                refused_total = count,
                answered_503 = answered,
                "connection refused: the fixture is at its connection cap"
            );
        }
    }
}

/// Accepts connections on `listener` and serves `app` until `stop` fires; then asks every
/// HTTP connection to finish and waits for them (the caller bounds the wait).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: &FixtureConfig,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let log = Arc::new(RefusalLog::default());
    let header_read_timeout = config.header_read_timeout;
    let max = config.max_connections;
    // Dropped to ask connections to finish; `closed()` tells when every one has.
    let (signal_tx, signal_rx) = watch::channel(());
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let (stream, _peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (or another accept error): back off instead of
                    // spinning, as axum::serve does.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream, &refusals, &log, max);
            continue;
        };
        let io = TokioIo::new(Counted {
            io: stream,
            _permit: permit,
        });
        let service = TowerToHyperService::new(app.clone());
        let mut signal = signal_rx.clone();
        let close = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let conn = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "HTTP connection ended");
                        }
                        break;
                    }
                    _ = signal.changed(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close);
        });
    }
    drop(listener);
    drop(signal_tx);
    drop(close_rx);
    close_tx.closed().await;
}

/// A socket over the cap: `503` to its first request if a refusal slot is free, else closed.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>, log: &Arc<RefusalLog>, max: usize) {
    let Ok(slot) = refusals.clone().try_acquire_owned() else {
        log.refused(false, max);
        drop(stream);
        return;
    };
    log.refused(true, max);
    tokio::spawn(async move {
        let service = hyper::service::service_fn(|_request| async {
            let response = axum::http::Response::builder()
                .status(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                .header(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )
                .header(axum::http::header::CONNECTION, "close")
                .header(axum::http::header::RETRY_AFTER, "1")
                .body(Body::from(
                    "Too many connections: the fixture is at its connection cap.",
                ))
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(response)
        });
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(false)
            .timer(TokioTimer::new())
            .header_read_timeout(REFUSAL_TIMEOUT);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, conn).await;
        drop(slot);
    });
}
