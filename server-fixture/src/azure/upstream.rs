//! Serverless mode: the hub made for each hub name, whose client invocations and connection
//! events are POSTed to the first matching upstream rule (docs/protocol/azure.md, "Serverless
//! mode and upstream"; checklist items 107–110).
//!
//! Requests carry `X-ASRS-Connection-Id`, `X-ASRS-Hub`, `X-ASRS-Category`, `X-ASRS-Event`,
//! `X-ASRS-User-Id` (when the connection has a user), `X-ASRS-User-Claims`,
//! `X-ASRS-Client-Query` (the connect query, `access_token` left out) and
//! `X-ASRS-Signature: sha256=<hex>[,sha256=<hex>]`, one HMAC-SHA256 of the connection id per
//! access key (lower-case hex).
//!
//! Bodies: `connected` is `{"type":10}`, `disconnected` is `{"Type":11,"Error":null}` (the
//! emulator's spelling), an invocation is the hub message itself without its framing, in the
//! client's protocol (`application/json` or `application/x-msgpack`).
//!
//! The answer to a blocking invocation: `200` with a body is read as the framed Completion the
//! service would pass on as-is, and its result becomes the Completion the client gets (the
//! fixture re-encodes it with the client's invocation id); `200` empty or `204` gives an empty
//! Completion; any other status gives `Invocation failed, status code <n>`; no answer at all
//! (connection refused, timeout) gives `Invocation failed, <reason>`.

use super::{pieces, AzureState, NoUpstream, UpstreamRule};
use crate::context::HubContext;
use crate::hub::{Hub, HubError, Method};
use hmac::{Hmac, Mac};
use std::fmt::Write;
use std::sync::Arc;
use talkback_core::protocol::{CompletionResult, Decoded, HubMessage, Invocation, Protocol};

/// The largest upstream answer read (the emulator's 16 MB).
const MAX_UPSTREAM_BODY: usize = 16 * 1024 * 1024;

/// The hub serving the wire name `wire` in serverless mode.
pub(super) fn serverless_hub(azure: Arc<AzureState>, wire: String) -> Hub {
    let on_connect = (azure.clone(), wire.clone());
    let on_disconnect = (azure.clone(), wire.clone());
    let mut hub = Hub::builder(format!("azure:{wire}"))
        .on_connected(move |ctx| {
            let (azure, wire) = on_connect.clone();
            async move { connected(azure, wire, ctx).await }
        })
        .on_disconnected(move |ctx| {
            let (azure, wire) = on_disconnect.clone();
            async move { disconnected(azure, wire, ctx).await }
        })
        .build();
    hub.fallback = Some(Arc::new(move |target: &str, id: Option<&str>| {
        let azure = azure.clone();
        let wire = wire.clone();
        let target = target.to_owned();
        let id = id.map(str::to_owned);
        let invoke: crate::hub::InvokeFn = Arc::new(move |ctx, arguments| {
            let azure = azure.clone();
            let wire = wire.clone();
            let target = target.clone();
            let id = id.clone();
            Box::pin(async move { invoke(azure, wire, ctx, target, id, arguments).await })
        });
        Some(Method::Invoke(invoke))
    }));
    hub
}

/// The first rule for an event, if any.
fn rule<'a>(
    azure: &'a AzureState,
    hub: &str,
    category: &str,
    event: &str,
) -> Option<&'a UpstreamRule> {
    azure
        .config
        .upstreams
        .iter()
        .find(|r| r.matches(hub, category, event))
}

/// A rule's URL for one event.
fn url(rule: &UpstreamRule, hub: &str, category: &str, event: &str) -> String {
    let enc = talkback_core::azure::encode_path_segment;
    rule.url_template
        .replace("{hub}", &enc(hub))
        .replace("{category}", &enc(category))
        .replace("{event}", &enc(event))
}

/// `sha256=<hex>` per key, comma-separated: HMAC-SHA256 of the connection id.
pub(crate) fn signature(azure: &AzureState, connection_id: &str) -> String {
    let mut out = String::new();
    for key in &azure.config.access_keys {
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
            continue;
        };
        mac.update(connection_id.as_bytes());
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str("sha256=");
        for byte in mac.finalize().into_bytes() {
            let _ = write!(out, "{byte:02x}");
        }
    }
    out
}

/// The claims of the connection's token, as `type: value` pairs joined by `, `.
fn claims(ctx: &HubContext) -> String {
    let request = ctx.request();
    let token = request
        .headers
        .get("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned)
        .or_else(|| request.query.get("access_token").cloned());
    let Some(payload) = token.as_deref().and_then(|t| t.split('.').nth(1)) else {
        return String::new();
    };
    use base64::Engine;
    let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return String::new();
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&json) else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The connect query, `access_token` left out, sorted by name.
fn client_query(ctx: &HubContext) -> String {
    let mut pairs: Vec<(String, String)> = ctx
        .request()
        .query
        .into_iter()
        .filter(|(k, _)| k != "access_token")
        .collect();
    pairs.sort();
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(&k, &v);
    }
    out.finish()
}

/// The outcome of one upstream request.
enum Answer {
    /// Any 2xx, with its body.
    Ok(Vec<u8>),
    /// Another status.
    Status(u16),
    /// No answer.
    Failed(String),
}

/// One event for the upstream.
struct Event<'a> {
    /// The hub's wire name.
    hub: &'a str,
    category: &'a str,
    event: &'a str,
    content_type: &'a str,
}

/// POSTs one event upstream, to the URL of `rule`.
async fn post(
    azure: &AzureState,
    ctx: &HubContext,
    rule: &UpstreamRule,
    what: Event<'_>,
    body: Vec<u8>,
) -> Answer {
    let Event {
        hub: wire,
        category,
        event,
        content_type,
    } = what;
    let target_url = url(rule, wire, category, event);
    let mut request = azure
        .http
        .post(target_url)
        .header("content-type", content_type)
        .header("x-asrs-connection-id", ctx.connection_id())
        .header("x-asrs-hub", wire)
        .header("x-asrs-category", category)
        .header("x-asrs-event", event)
        .header("x-asrs-signature", signature(azure, ctx.connection_id()))
        .header("x-asrs-user-claims", sanitize(&claims(ctx)))
        .header("x-asrs-client-query", client_query(ctx));
    if let Some(user) = ctx.user_id() {
        request = request.header("x-asrs-user-id", sanitize(user));
    }
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "upstream request failed");
            return Answer::Failed(if e.is_timeout() {
                "the upstream timed out".into()
            } else {
                "the upstream could not be reached".into()
            });
        }
    };
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Answer::Status(status);
    }
    match read_limited(response).await {
        Some(body) => Answer::Ok(body),
        None => Answer::Failed("the upstream answer was too large or broken".into()),
    }
}

/// A header value: control characters (not allowed in headers) replaced by spaces.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

async fn read_limited(mut response: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

async fn connected(azure: Arc<AzureState>, wire: String, ctx: HubContext) {
    let Some(rule) = rule(&azure, &wire, "connections", "connected") else {
        return;
    };
    let event = Event {
        hub: &wire,
        category: "connections",
        event: "connected",
        content_type: "application/json",
    };
    let answer = post(&azure, &ctx, rule, event, br#"{"type":10}"#.to_vec()).await;
    let failure = match answer {
        Answer::Ok(..) => return,
        Answer::Status(status) => format!("Upstream connected event failed, status code {status}"),
        Answer::Failed(reason) => format!("Upstream connected event failed, {reason}"),
    };
    tracing::debug!(connection = %ctx.connection_id(), %failure, "closing the client");
    ctx.close_caller(Some(failure), false);
}

async fn disconnected(azure: Arc<AzureState>, wire: String, ctx: HubContext) {
    let Some(rule) = rule(&azure, &wire, "connections", "disconnected") else {
        return;
    };
    let event = Event {
        hub: &wire,
        category: "connections",
        event: "disconnected",
        content_type: "application/json",
    };
    let body = br#"{"Type":11,"Error":null}"#.to_vec();
    let _ = post(&azure, &ctx, rule, event, body).await;
}

/// Forwards one client invocation upstream; its answer becomes the Completion.
async fn invoke(
    azure: Arc<AzureState>,
    wire: String,
    ctx: HubContext,
    target: String,
    invocation_id: Option<String>,
    arguments: Vec<talkback_core::protocol::RawValue>,
) -> Result<CompletionResult, HubError> {
    let Some(rule) = rule(&azure, &wire, "messages", &target) else {
        return match azure.config.no_upstream {
            // A non-blocking invocation gets no answer anyway (and must not hold up the
            // connection's later calls).
            NoUpstream::Ignore if invocation_id.is_none() => Ok(CompletionResult::Void),
            NoUpstream::Ignore => {
                // Never answered: wait for the connection to end (then nothing is sent).
                let ended = ctx.conn.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if !ctx.conn.is_closed() {
                    ended.await;
                }
                Err(HubError::hub("The connection ended."))
            }
            NoUpstream::Disconnect => {
                ctx.close_caller(
                    Some(format!("No upstream is configured for '{target}'.")),
                    false,
                );
                Err(HubError::hub("No upstream is configured."))
            }
        };
    };
    let protocol = ctx.protocol();
    let message = HubMessage::Invocation(Invocation {
        invocation_id: invocation_id.clone(),
        target: target.clone(),
        arguments,
        stream_ids: None,
        headers: Default::default(),
    });
    let body = unframed(protocol, &message);
    if !azure.count_messages(&ctx.shared, pieces(body.len())) {
        return Err(HubError::hub(super::MESSAGE_LIMIT));
    }
    let content_type = match protocol {
        Protocol::Json => "application/json",
        Protocol::MessagePack => "application/x-msgpack",
    };
    let event = Event {
        hub: &wire,
        category: "messages",
        event: &target,
        content_type,
    };
    let answer = post(&azure, &ctx, rule, event, body).await;
    match answer {
        Answer::Ok(body) if body.is_empty() => Ok(CompletionResult::Void),
        Answer::Ok(body) => completion_of(protocol, &body),
        Answer::Status(status) => Err(HubError::hub(format!(
            "Invocation failed, status code {status}"
        ))),
        Answer::Failed(reason) => Err(HubError::hub(format!("Invocation failed, {reason}"))),
    }
}

/// One hub message in `protocol` without its framing.
fn unframed(protocol: Protocol, message: &HubMessage) -> Vec<u8> {
    let mut framed = Vec::new();
    protocol.encode(message, &mut framed);
    let mut framer = protocol.framer(usize::MAX);
    framer.push(&framed);
    match framer.next_record() {
        Ok(Some(record)) => record.to_vec(),
        _ => framed,
    }
}

/// The result of the Completion in an upstream's framed answer.
fn completion_of(protocol: Protocol, body: &[u8]) -> Result<CompletionResult, HubError> {
    let mut framer = protocol.framer(MAX_UPSTREAM_BODY);
    framer.push(body);
    while let Ok(Some(record)) = framer.next_record() {
        if let Ok(Decoded::Message(HubMessage::Completion(completion))) = protocol.decode(&record) {
            return Ok(completion.result);
        }
    }
    Err(HubError::hub(
        "Invocation failed, the upstream answer is not a framed Completion message",
    ))
}
