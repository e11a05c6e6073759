//! Azure SignalR Service mode: the fixture as a local Azure SignalR Service.
//!
//! Turned on by [`crate::Config::azure`] (`talkback-fixture --azure`). It adds, next to the
//! fixture's own `/hubs/{name}` routes:
//!
//! - the client endpoint `/client/negotiate?hub=H` and `/client/?hub=H` (every transport),
//!   which demand an access token signed with one of the access keys, its `aud` naming this
//!   client URL (401 otherwise), and take the connection's user id from it ([`client`]);
//! - an app-server-style negotiate, `POST|GET /api/negotiate?hub=H[&userId=U]`, answering
//!   `{url, accessToken}` as `AddAzureSignalR` and the Functions `SignalRConnectionInfo`
//!   binding do, so a client pointed at `http://host:port/api?hub=H` follows the redirect;
//! - the data-plane REST API, v1 (`/api/v1/...`) and 2022-06-01 (`/api/...?api-version=...`),
//!   with its OpenAPI document at `/api/openapi.json` ([`rest`]);
//! - in serverless mode, upstream webhooks for client invocations and connection events
//!   ([`upstream`]).
//!
//! **Hubs.** The hub name on the wire is lower-cased and, when an application name is set,
//! `<app>_<hub>` (docs/protocol/azure.md, "Endpoints and audiences"). In *default* mode the
//! fixture's own hubs play the app server: `?hub=test` (or `?hub=<app>_test`) reaches the `test`
//! hub; any other hub name is refused, as the service refuses clients of a hub with no app
//! server. In *serverless* mode every valid hub name is served by a hub made on first use,
//! named `azure:<wire name>` inside the fixture ([`crate::ConnectionInfo::hub`] shows it), whose
//! invocations and connection events go upstream.
//!
//! **Limits** (docs/protocol/azure.md, "Limits"): a client-connection cap (1,000 per unit; 20
//! on the free tier), answered `429 Connection count reaches limit.` at negotiate, and an
//! optional daily message quota (20,000 on the free tier) counted in 2 KB pieces over what the
//! REST API delivers and what goes upstream; once it is spent, REST sends and negotiates get
//! `429 Message count reaches limit.` and live service-mode clients are closed with that error
//! (as the service does, per Azure/azure-signalr issue #635). The quota resets at 00:00 UTC.

mod client;
mod names;
mod rest;
mod upstream;

use crate::registry::Shared;
use axum::Router;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use talkback_core::azure::{AccessKey, TokenValidator};

pub(crate) use client::client_routes;
pub(crate) use rest::rest_routes;

type App = Arc<Shared>;

/// Which Azure SignalR service mode the fixture plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceMode {
    /// An app server hosts the hubs: here, the fixture's own hubs (default).
    #[default]
    Default,
    /// No app server: client invocations and connection events go to upstream webhooks.
    Serverless,
}

/// What happens to a client invocation in serverless mode when no upstream rule matches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoUpstream {
    /// The invocation is dropped: a blocking call never gets a Completion (default; the
    /// service FAQ: "messages from client will be ignored").
    #[default]
    Ignore,
    /// The client is closed with an error (the older "LISTEN mode" wording).
    Disconnect,
}

/// One upstream rule: where matching events are POSTed.
///
/// Patterns are `*` or a comma-separated list of names, compared without regard to ASCII case.
/// The first rule that matches an event wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRule {
    /// The URL, with `{hub}`, `{category}` and `{event}` replaced (URL-encoded) per request.
    pub url_template: String,
    /// Hubs (wire names) this rule is for.
    pub hub_pattern: String,
    /// Categories: `connections` and/or `messages`.
    pub category_pattern: String,
    /// Events: `connected`, `disconnected`, or invocation targets.
    pub event_pattern: String,
}

impl UpstreamRule {
    /// A rule for every hub, category and event.
    pub fn all(url_template: impl Into<String>) -> Self {
        UpstreamRule {
            url_template: url_template.into(),
            hub_pattern: "*".into(),
            category_pattern: "*".into(),
            event_pattern: "*".into(),
        }
    }

    /// Parses `URL[;hub=P][;category=P][;event=P]` (the `--upstream` flag).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(';');
        let url = parts.next().unwrap_or("").trim();
        let parsed = url::Url::parse(url).map_err(|e| format!("upstream URL '{url}': {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("upstream URL '{url}' is not http(s)"));
        }
        let mut rule = UpstreamRule::all(url);
        for part in parts.filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("upstream rule part '{part}' is not key=value"))?;
            let value = value.trim().to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "hub" => rule.hub_pattern = value,
                "category" => rule.category_pattern = value,
                "event" => rule.event_pattern = value,
                other => {
                    return Err(format!(
                        "unknown upstream rule key '{other}' (hub, category or event)"
                    ))
                }
            }
        }
        Ok(rule)
    }

    fn matches(&self, hub: &str, category: &str, event: &str) -> bool {
        fn one(pattern: &str, value: &str) -> bool {
            pattern
                .split(',')
                .map(str::trim)
                .any(|p| p == "*" || p.eq_ignore_ascii_case(value))
        }
        one(&self.hub_pattern, hub)
            && one(&self.category_pattern, category)
            && one(&self.event_pattern, event)
    }
}

/// The Azure SignalR Service mode settings ([`crate::Config::azure`]).
#[derive(Clone)]
pub struct AzureConfig {
    /// The access keys; the first signs the tokens the fixture hands out, and every one is
    /// accepted (two at once during a key rotation). Must not be empty.
    pub access_keys: Vec<AccessKey>,
    /// Default or serverless (default: default).
    pub mode: ServiceMode,
    /// The application name: hub names on the wire become `<app>_<hub>` (default none).
    pub application_name: Option<String>,
    /// Upstream rules for serverless mode, first match wins (default none).
    pub upstreams: Vec<UpstreamRule>,
    /// What happens to a client invocation no upstream rule matches (serverless mode).
    pub no_upstream: NoUpstream,
    /// How long an upstream request may take (default 30 s); a timeout fails the invocation.
    pub upstream_timeout: Duration,
    /// Live client connections allowed (default 1,000: one Standard unit; 20 on the free tier).
    pub max_client_connections: usize,
    /// Messages per UTC day, counted in 2 KB pieces (default none: unlimited; 20,000 on the
    /// free tier).
    pub messages_per_day: Option<u64>,
    /// Whether a REST close-connection lets the client reconnect (`allowReconnect`, default
    /// true, as the emulator sends).
    pub close_allow_reconnect: bool,
    /// Clock skew allowed on token `exp` and `nbf` (default 5 minutes).
    pub token_leeway: Duration,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("access_keys", &self.access_keys.len())
            .field("mode", &self.mode)
            .field("application_name", &self.application_name)
            .field("upstreams", &self.upstreams)
            .field("no_upstream", &self.no_upstream)
            .field("max_client_connections", &self.max_client_connections)
            .field("messages_per_day", &self.messages_per_day)
            .finish_non_exhaustive()
    }
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            access_keys: vec![AccessKey::new(generate_access_key())],
            mode: ServiceMode::Default,
            application_name: None,
            upstreams: Vec::new(),
            no_upstream: NoUpstream::Ignore,
            upstream_timeout: Duration::from_secs(30),
            max_client_connections: 1000,
            messages_per_day: None,
            close_allow_reconnect: true,
            token_leeway: talkback_core::azure::DEFAULT_LEEWAY,
        }
    }
}

impl AzureConfig {
    /// Settings with `key` as the only access key.
    pub fn with_key(key: impl Into<String>) -> Self {
        AzureConfig {
            access_keys: vec![AccessKey::new(key)],
            ..AzureConfig::default()
        }
    }

    /// The free tier's limits: 20 connections, 20,000 messages a day.
    pub fn free_tier(mut self) -> Self {
        self.max_client_connections = 20;
        self.messages_per_day = Some(20_000);
        self
    }
}

/// A fresh random access key: 44 characters of Base64, like the service's keys.
pub fn generate_access_key() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The text a client and a REST caller see once the connection cap is reached.
pub(crate) const CONNECTION_LIMIT: &str = "Connection count reaches limit.";
/// The text a client and a REST caller see once the daily message quota is spent.
pub(crate) const MESSAGE_LIMIT: &str = "Message count reaches limit.";
/// The most hubs serverless mode makes at run time.
const MAX_DYNAMIC_HUBS: usize = 4096;
/// The piece size messages are counted in.
const MESSAGE_PIECE: usize = 2048;

/// The Azure mode's state, shared by its routes and its hubs.
pub(crate) struct AzureState {
    pub config: AzureConfig,
    pub validator: TokenValidator,
    /// Upstream requests.
    pub http: reqwest::Client,
    /// (UTC day number, messages counted that day, the quota refused a send that day).
    messages: Mutex<(u64, u64, bool)>,
}

impl AzureState {
    pub(crate) fn new(config: &AzureConfig) -> Arc<Self> {
        let validator =
            TokenValidator::new(config.access_keys.clone()).with_leeway(config.token_leeway);
        let http = reqwest::Client::builder()
            .timeout(config.upstream_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Arc::new(AzureState {
            config: config.clone(),
            validator,
            http,
            messages: Mutex::new((0, 0, false)),
        })
    }

    /// The key that signs the tokens the fixture hands out.
    pub(crate) fn primary_key(&self) -> Option<&AccessKey> {
        self.config.access_keys.first()
    }

    /// The hub name on the wire for `hub` (and an optional application name, else the
    /// configured one): lower-cased, `<app>_` in front.
    pub(crate) fn wire_name(&self, hub: &str, application: Option<&str>) -> String {
        let app = application.or(self.config.application_name.as_deref());
        talkback_core::azure::hub_path_name(hub, app)
    }

    /// The fixture's own hub a wire name stands for in default mode (the `<app>_` prefix, if
    /// configured, taken off).
    fn static_hub(&self, shared: &Shared, wire: &str) -> Option<Arc<crate::Hub>> {
        let name = match &self.config.application_name {
            Some(app) => wire.strip_prefix(&format!("{}_", app.to_ascii_lowercase()))?,
            None => wire,
        };
        shared.static_hub(name)
    }

    /// The hub serving clients of `wire` (made on first use in serverless mode); `None` in
    /// default mode for a hub the fixture does not have.
    pub(crate) fn client_hub(
        self: &Arc<Self>,
        shared: &Shared,
        wire: &str,
    ) -> Result<Arc<crate::Hub>, &'static str> {
        match self.config.mode {
            ServiceMode::Default => self
                .static_hub(shared, wire)
                .ok_or("No app server is currently connected to the Azure service."),
            ServiceMode::Serverless => {
                let name = format!("azure:{wire}");
                let mut hubs = shared.dynamic_hubs.lock();
                if let Some(hub) = hubs.get(&name) {
                    return Ok(hub.clone());
                }
                if hubs.len() >= MAX_DYNAMIC_HUBS {
                    return Err("Too many hubs.");
                }
                let hub = Arc::new(upstream::serverless_hub(self.clone(), wire.to_owned()));
                hubs.insert(name, hub.clone());
                Ok(hub)
            }
        }
    }

    /// The fixture-internal hub name (what connections and groups are keyed by) of a wire name.
    pub(crate) fn internal_name(&self, shared: &Shared, wire: &str) -> String {
        match self.config.mode {
            ServiceMode::Default => match self.static_hub(shared, wire) {
                Some(hub) => hub.name().to_owned(),
                None => format!("azure:{wire}"),
            },
            ServiceMode::Serverless => format!("azure:{wire}"),
        }
    }

    /// Counts `pieces` outbound messages against the daily quota; false (and nothing counted)
    /// if they do not fit. The first refusal closes every live service-mode client.
    pub(crate) fn count_messages(&self, shared: &Shared, pieces: u64) -> bool {
        let Some(quota) = self.config.messages_per_day else {
            return true;
        };
        let day = utc_day(SystemTime::now());
        let first_refusal = {
            let mut counter = self.messages.lock();
            if counter.0 != day {
                *counter = (day, 0, false);
            }
            if counter.1.saturating_add(pieces) <= quota {
                counter.1 += pieces;
                return true;
            }
            // Marks the quota spent, so later calls see it without closing again.
            let first = !counter.2;
            counter.1 = quota;
            counter.2 = true;
            first
        };
        if first_refusal {
            tracing::warn!(
                quota,
                "daily message quota spent: closing service-mode clients"
            );
            for conn in shared.all(None) {
                if self.is_service_hub(shared, &conn.hub) {
                    conn.push(crate::registry::Command::Close {
                        error: Some(MESSAGE_LIMIT.into()),
                        allow_reconnect: false,
                    });
                }
            }
        }
        false
    }

    /// Whether the quota for today is spent.
    pub(crate) fn quota_spent(&self) -> bool {
        let Some(quota) = self.config.messages_per_day else {
            return false;
        };
        let counter = self.messages.lock();
        counter.0 == utc_day(SystemTime::now()) && (counter.2 || counter.1 >= quota)
    }

    /// Whether a connection's hub is served by the Azure mode.
    fn is_service_hub(&self, shared: &Shared, hub: &str) -> bool {
        match self.config.mode {
            ServiceMode::Serverless => hub.starts_with("azure:"),
            ServiceMode::Default => shared.static_hub(hub).is_some(),
        }
    }
}

/// Messages a payload of `bytes` counts as (2 KB pieces, at least one).
pub(crate) fn pieces(bytes: usize) -> u64 {
    bytes.div_ceil(MESSAGE_PIECE).max(1) as u64
}

fn utc_day(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0)
}

impl crate::Server {
    /// The connection string of this fixture in Azure mode, in the emulator's form:
    /// `Endpoint=http://127.0.0.1;Port=<port>;AccessKey=<primary key>;Version=1.0;` (`None`
    /// without [`crate::Config::azure`]).
    pub fn azure_connection_string(&self) -> Option<String> {
        let azure = self.shared.azure.as_ref()?;
        let key = azure.primary_key()?;
        let base = url::Url::parse(&self.url()).ok()?;
        Some(talkback_core::azure::ConnectionString::local(&base, key.clone()).to_secret_string())
    }

    /// The app-server-style negotiate URL of `hub` (a client pointed at it is redirected to
    /// the service with a token): `http://127.0.0.1:PORT/api?hub=<hub>` (`None` without Azure
    /// mode). Append `&userId=<id>` to choose the user.
    pub fn azure_app_url(&self, hub: &str) -> Option<String> {
        self.shared.azure.as_ref()?;
        Some(format!(
            "{}/api?hub={}",
            self.url(),
            talkback_core::azure::encode_query_value(hub)
        ))
    }
}

/// An empty router, for when Azure mode is off.
fn none() -> Router<App> {
    Router::new()
}
