//! Performing the core's HTTP requests with reqwest: negotiate, long polls, POST sends, DELETE
//! and the Server-Sent Events stream.

use crate::driver::Io;
use bytes::{Bytes, BytesMut};
use talkback_core::{HttpEvent, HttpMethod, HttpRequest};
use tokio::sync::mpsc;

/// The largest non-streaming response body accepted (a long poll may batch many messages).
pub(crate) const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// A reqwest client for one connection: rustls, no default timeout (each request carries its
/// own), connection reuse for polls and sends.
/// The HTTP client every connection of the process shares (one connection pool, one TLS
/// configuration with its root certificates, instead of one per hub connection).
pub(crate) fn new_client() -> Result<reqwest::Client, String> {
    static SHARED: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = SHARED.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(90))
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

/// Performs `request` and reports its outcome (or its stream of chunks) on `io`.
pub(crate) async fn perform(client: reqwest::Client, request: HttpRequest, io: mpsc::Sender<Io>) {
    let id = request.id;
    let event = |e: HttpEvent| Io::Http(id, e);
    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
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
            Err(_) => {
                let _ = io.send(event(timed_out())).await;
                return;
            }
        },
        None => sent.await,
    };
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            let _ = io.send(event(network_failure(&e))).await;
            return;
        }
    };
    let status = response.status().as_u16();
    if request.streaming {
        if io.send(event(HttpEvent::Head { status })).await.is_err() {
            return;
        }
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if io.send(event(HttpEvent::Chunk(chunk))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    let _ = io.send(event(HttpEvent::End { error: None })).await;
                    return;
                }
                Err(e) => {
                    let _ = io
                        .send(event(HttpEvent::End {
                            error: Some(describe(&e)),
                        }))
                        .await;
                    return;
                }
            }
        }
    }
    let body = read_body(&mut response);
    let outcome = match deadline {
        Some(d) => match tokio::time::timeout_at(d, body).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        },
        None => body.await,
    };
    let e = match outcome {
        Ok(body) => HttpEvent::Response { status, body },
        Err(e) => e,
    };
    let _ = io.send(event(e)).await;
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
