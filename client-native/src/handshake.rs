//! The WebSocket opening handshake (RFC 6455, section 4), done here rather than by
//! tokio-tungstenite: its client handshake leaves every socket with the 4 KiB buffer it read the
//! server's answer into, whatever the configured read buffer size. Here the answer is read into
//! a buffer that lives only while the handshake runs, the bytes after it (frames the server sent
//! at once, such as a close) go to the socket, and the socket starts with the configured
//! buffers.
//!
//! The request is tungstenite's (`generate_request`: the key, the required headers, then the
//! caller's), so what reaches the server is what it received before. TLS (`wss://`) uses one
//! rustls configuration shared by every socket of the process (tokio-tungstenite built one, with
//! its own copy of the root certificates, per socket).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use talkback_core::WebSocketEvent;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_request;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// The largest answer to the upgrade accepted (status line and headers).
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The most header lines accepted in the answer.
const MAX_RESPONSE_HEADERS: usize = 64;

/// Bytes read at a time while waiting for the end of the answer.
const HEAD_READ: usize = 1024;

/// Bytes read from the network at a time, into a buffer each thread shares between its sockets.
const READ_AHEAD: usize = 32 * 1024;

thread_local! {
    /// The buffer sockets on this thread read into ([`READ_AHEAD`] bytes, allocated at the first
    /// read).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A socket's byte stream: plain TCP, or TLS over it.
///
/// tungstenite reads into a small buffer of its own, which an idle socket keeps; to read a burst
/// in few system calls anyway, a read reaches the network through the thread's shared
/// [`SCRATCH`] buffer and what did not fit waits in `spill`, which exists only until it is
/// handed out.
pub(crate) struct Transport {
    io: Io,
    spill: Vec<u8>,
    /// How much of `spill` was handed out.
    spilled: usize,
}

/// The TLS state is boxed, so a plain socket does not carry its room.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Io {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl Transport {
    fn new(io: Io) -> Self {
        Transport {
            io,
            spill: Vec::new(),
            spilled: 0,
        }
    }

    /// Reads from the network through the thread's scratch buffer into `buf`, keeping what does
    /// not fit in `spill`.
    fn poll_read_ahead(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        SCRATCH.with(|scratch| {
            // Only a socket read from inside another socket's read could find it borrowed;
            // it then reads directly.
            let Ok(mut scratch) = scratch.try_borrow_mut() else {
                return self.io.poll_read(cx, buf);
            };
            if scratch.len() < READ_AHEAD {
                scratch.resize(READ_AHEAD, 0);
            }
            let mut ahead = ReadBuf::new(&mut scratch[..]);
            match self.io.poll_read(cx, &mut ahead) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // Nothing read is the end of the stream: `buf` stays as it is, which says so.
                Poll::Ready(Ok(())) => {}
            }
            let read = ahead.filled();
            let n = read.len().min(buf.remaining());
            buf.put_slice(&read[..n]);
            if n < read.len() {
                self.spill = read[n..].to_vec();
                self.spilled = 0;
            }
            Poll::Ready(Ok(()))
        })
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.spilled < this.spill.len() {
            let n = (this.spill.len() - this.spilled).min(buf.remaining());
            buf.put_slice(&this.spill[this.spilled..this.spilled + n]);
            this.spilled += n;
            if this.spilled == this.spill.len() {
                this.spill = Vec::new();
                this.spilled = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_AHEAD || buf.remaining() == 0 {
            return this.io.poll_read(cx, buf);
        }
        this.poll_read_ahead(cx, buf)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

fn failed(status: Option<u16>, message: String) -> WebSocketEvent {
    WebSocketEvent::Failed { status, message }
}

fn io_failed(e: &io::Error) -> WebSocketEvent {
    failed(None, format!("WebSocket failed to connect: {e}"))
}

fn invalid_answer(why: &str) -> WebSocketEvent {
    failed(
        None,
        format!("WebSocket failed to connect: invalid answer to the upgrade: {why}"),
    )
}

/// The TLS configuration every `wss://` socket shares: the webpki root certificates (as
/// tokio-tungstenite's default), ring.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static SHARED: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = SHARED.get() {
        return Ok(config.clone());
    }
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(SHARED.get_or_init(|| Arc::new(config)).clone())
}

/// Opens the TCP connection (and TLS for `wss://`), performs the upgrade and returns the socket
/// with `config`'s buffers; or the `Failed` event to report (with the HTTP status when the
/// server refused the upgrade).
pub(crate) async fn connect(
    request: http::Request<()>,
    config: WebSocketConfig,
) -> Result<WebSocketStream<Transport>, WebSocketEvent> {
    let uri = request.uri().clone();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(failed(None, format!("not a WebSocket URL: {uri}"))),
    };
    let Some(host) = uri.host() else {
        return Err(failed(None, format!("no host in the WebSocket URL: {uri}")));
    };
    // An IPv6 address comes in brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let (head, key) = generate_request(request)
        .map_err(|e| failed(None, format!("invalid WebSocket request: {e}")))?;

    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| io_failed(&e))?;
    // Frames are written in batches already; each batch goes out at once.
    tcp.set_nodelay(true).map_err(|e| io_failed(&e))?;
    let mut stream = if tls {
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|e| failed(None, format!("invalid TLS server name: {e}")))?;
        let config = tls_config().map_err(|e| failed(None, format!("TLS: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| io_failed(&e))?;
        Transport::new(Io::Tls(Box::new(tls)))
    } else {
        Transport::new(Io::Plain(tcp))
    };

    stream.write_all(&head).await.map_err(|e| io_failed(&e))?;
    stream.flush().await.map_err(|e| io_failed(&e))?;
    drop(head);
    let rest = read_answer(&mut stream, &derive_accept_key(key.as_bytes())).await?;
    Ok(WebSocketStream::from_partially_read(stream, rest, Role::Client, Some(config)).await)
}

/// Reads the server's answer to the upgrade (at most [`MAX_RESPONSE_HEAD`] bytes) and checks
/// it (RFC 6455, section 4.1); returns the bytes that followed it.
async fn read_answer(stream: &mut Transport, accept: &str) -> Result<Vec<u8>, WebSocketEvent> {
    let mut received = Vec::new();
    let mut chunk = [0u8; HEAD_READ];
    loop {
        let room = (MAX_RESPONSE_HEAD - received.len()).min(HEAD_READ);
        if room == 0 {
            return Err(invalid_answer(&format!(
                "its head is larger than {MAX_RESPONSE_HEAD} bytes"
            )));
        }
        let n = stream
            .read(&mut chunk[..room])
            .await
            .map_err(|e| io_failed(&e))?;
        if n == 0 {
            return Err(failed(
                None,
                "WebSocket failed to connect: the server closed the connection before answering the upgrade"
                    .into(),
            ));
        }
        received.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut answer = httparse::Response::new(&mut headers);
        match answer.parse(&received) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(len)) => {
                check_answer(&answer, accept)?;
                return Ok(received[len..].to_vec());
            }
            Err(e) => return Err(invalid_answer(&e.to_string())),
        }
    }
}

/// The value of the first header called `name`, if it is text.
fn header<'a>(answer: &'a httparse::Response<'_, '_>, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim)
}

fn check_answer(answer: &httparse::Response<'_, '_>, accept: &str) -> Result<(), WebSocketEvent> {
    let status = answer.code.unwrap_or(0);
    if status != 101 {
        let shown = http::StatusCode::from_u16(status)
            .map(|s| s.to_string())
            .unwrap_or_else(|_| status.to_string());
        return Err(failed(
            Some(status),
            format!("WebSocket failed to connect: the server answered the upgrade with {shown}"),
        ));
    }
    if !header(answer, "Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(invalid_answer("no 'Upgrade: websocket'"));
    }
    let upgrade_token = |v: &str| {
        v.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
    };
    if !header(answer, "Connection").is_some_and(upgrade_token) {
        return Err(invalid_answer("no 'Connection: Upgrade'"));
    }
    if header(answer, "Sec-WebSocket-Accept") != Some(accept) {
        return Err(invalid_answer("a missing or wrong Sec-WebSocket-Accept"));
    }
    // Neither a subprotocol nor an extension was asked for: the server may not pick one.
    if header(answer, "Sec-WebSocket-Protocol").is_some_and(|v| !v.is_empty()) {
        return Err(invalid_answer("a subprotocol that was not asked for"));
    }
    if header(answer, "Sec-WebSocket-Extensions").is_some_and(|v| !v.is_empty()) {
        return Err(invalid_answer("an extension that was not asked for"));
    }
    Ok(())
}
