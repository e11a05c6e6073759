//! The runtime's HTTP requests with reqwest: negotiate, long polls, POST sends, DELETE and the
//! Server-Sent Events stream.

use bytes::{Bytes, BytesMut};
use talkback_core::client::BoxStream;
use talkback_core::{HttpEvent, HttpMethod, HttpRequest};

/// The largest non-streaming response body accepted (a long poll may batch many messages).
pub(crate) const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// Idle HTTP connections kept per host for reuse (long polls and sends reuse them).
const IDLE_CONNECTIONS_PER_HOST: usize = 8;

/// The HTTP client every connection of the process shares (one connection pool, one TLS
/// configuration with its root certificates, instead of one per hub connection): rustls, no
/// default timeout (each request carries its own), connection reuse for polls and sends.
pub(crate) fn new_client() -> Result<reqwest::Client, String> {
    static SHARED: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = SHARED.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        // Each idle pooled connection keeps a task and about 25 KB of buffers; many hub
        // connections starting at once would otherwise leave one idle per negotiation.
        .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SHARED.get_or_init(|| client).clone())
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Where a request's stream of events is.
enum Step {
    /// Not sent yet.
    Send(HttpRequest),
    /// A streaming response after its head: chunks to read.
    Stream(reqwest::Response),
    /// The final event was reported.
    Done,
}

/// Performs `request`: its outcome (or its head, chunks and end) as a stream. The stream is
/// polled by the connection's driver task (no task of its own); dropping it aborts the request.
pub(crate) fn perform(request: HttpRequest) -> BoxStream<HttpEvent> {
    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
    Box::pin(futures::stream::unfold(
        Step::Send(request),
        move |step| async move {
            match step {
                Step::Send(request) => Some(send(request, deadline).await),
                Step::Stream(mut response) => Some(match response.chunk().await {
                    Ok(Some(chunk)) => (HttpEvent::Chunk(chunk), Step::Stream(response)),
                    Ok(None) => (HttpEvent::End { error: None }, Step::Done),
                    Err(e) => (
                        HttpEvent::End {
                            error: Some(describe(&e)),
                        },
                        Step::Done,
                    ),
                }),
                Step::Done => None,
            }
        },
    ))
}

/// Sends `request`: the whole response, or the head of a streaming one.
async fn send(request: HttpRequest, deadline: Option<tokio::time::Instant>) -> (HttpEvent, Step) {
    let client = match new_client() {
        Ok(client) => client,
        Err(message) => {
            let failed = HttpEvent::Failed {
                timed_out: false,
                message,
            };
            return (failed, Step::Done);
        }
    };
    let method = match request.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let mut builder = client.request(method, &request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !request.body.is_empty() {
        builder = builder.body(request.body.clone());
    }
    let sent = builder.send();
    let response = match deadline {
        Some(d) => match tokio::time::timeout_at(d, sent).await {
            Ok(r) => r,
            Err(_) => return (timed_out(), Step::Done),
        },
        None => sent.await,
    };
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return (network_failure(&e), Step::Done),
    };
    let status = response.status().as_u16();
    if request.streaming {
        return (HttpEvent::Head { status }, Step::Stream(response));
    }
    let body = read_body(&mut response);
    let outcome = match deadline {
        Some(d) => match tokio::time::timeout_at(d, body).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        },
        None => body.await,
    };
    let event = match outcome {
        Ok(body) => HttpEvent::Response { status, body },
        Err(e) => e,
    };
    (event, Step::Done)
}

/// A failure on the wire. Never reported as `timed_out`, even when the operating system gave
/// up on the connection ("Connection timed out", which `reqwest::Error::is_timeout` also calls
/// a timeout): only the request's own deadline is a timeout to the engine, which re-polls
/// after it; any other failure of a long poll may have lost an answer the server already sent,
/// so the engine must end the transport instead.
fn network_failure(e: &reqwest::Error) -> HttpEvent {
    HttpEvent::Failed {
        timed_out: false,
        message: describe(e),
    }
}

/// The request's own deadline ([`HttpRequest::timeout`]) passed.
fn timed_out() -> HttpEvent {
    HttpEvent::Failed {
        timed_out: true,
        message: "The request timed out.".into(),
    }
}

async fn read_body(response: &mut reqwest::Response) -> Result<Bytes, HttpEvent> {
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BODY {
                    return Err(HttpEvent::Failed {
                        timed_out: false,
                        message: format!(
                            "the response body exceeds the limit of {MAX_RESPONSE_BODY} bytes"
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => return Err(network_failure(&e)),
        }
    }
}
