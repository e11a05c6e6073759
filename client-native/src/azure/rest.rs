//! The data-plane REST client.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use talkback_core::azure::{
    encode_path_segment, encode_query_value, generate_token, AccessKey, ConnectionString,
    RestApiVersion, TokenRequest,
};

use super::{AzureError, ClientInfo, BODY_EXCERPT};

/// The largest request body the service accepts: 1 MB.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// Lifetime of the bearer token of each REST request.
const REST_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// How many body bytes of an error answer are read at most.
const MAX_ERROR_READ: usize = 16 * 1024;

/// A hub method invocation to deliver: `{"target": .., "arguments": [..]}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// The client-side method name; must not be empty.
    pub target: String,
    /// Its arguments.
    pub arguments: Vec<serde_json::Value>,
}

impl Message {
    /// A message for `target` with `arguments`.
    pub fn new(target: impl Into<String>, arguments: Vec<serde_json::Value>) -> Self {
        Self {
            target: target.into(),
            arguments,
        }
    }
}

/// When and how often a REST call is retried: on 429 and 5xx answers and on failures to
/// connect, waiting for `Retry-After` (or `retry-after-ms` / `x-ms-retry-after-ms`) when the
/// service sends one, else an exponential back-off; every wait is capped at `max_delay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none). Default 3.
    pub max_retries: u32,
    /// The first back-off when the service gives no `Retry-After`. Default 500 ms; doubles.
    pub base_delay: Duration,
    /// The longest wait, whatever `Retry-After` says. Default 30 s.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// The wait an answer asks for: `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds), else
/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn invalid(what: &'static str, name: &str, reason: &'static str) -> AzureError {
    AzureError::InvalidName {
        what,
        name: cut(name, 64),
        reason,
    }
}

/// Hub and application names: `^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$` (the service's rule).
fn check_hub(what: &'static str, name: &str) -> Result<(), AzureError> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid(what, name, "it is empty")),
        Some(c) if !c.is_ascii_alphabetic() => {
            return Err(invalid(what, name, "it must start with an ASCII letter"))
        }
        _ => {}
    }
    if name.len() > 128 {
        return Err(invalid(what, name, "it is longer than 128 characters"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || "_`,.[]".contains(c)) {
        return Err(invalid(
            what,
            name,
            "only ASCII letters, digits and _ ` , . [ ] are allowed",
        ));
    }
    Ok(())
}

/// Groups: 1–1024 characters, not whitespace only.
fn check_group(name: &str) -> Result<(), AzureError> {
    if name.is_empty() {
        return Err(invalid("group", name, "it is empty"));
    }
    if name.chars().count() > 1024 {
        return Err(invalid("group", name, "it is longer than 1024 characters"));
    }
    if name.chars().all(char::is_whitespace) {
        return Err(invalid("group", name, "it is whitespace only"));
    }
    Ok(())
}

/// Users and connection ids: at least one character, and (our bound) at most 1024.
fn check_id(what: &'static str, name: &str) -> Result<(), AzureError> {
    if name.is_empty() {
        return Err(invalid(what, name, "it is empty"));
    }
    if name.chars().count() > 1024 {
        return Err(invalid(what, name, "it is longer than 1024 characters"));
    }
    Ok(())
}

/// A client for one Azure SignalR Service (or the fixture standing in for it), built from a
/// connection string with an `AccessKey`.
///
/// Every REST call takes the hub name (as the app uses it; lower-cased on the wire) and the
/// names it targets; names the service would refuse fail early with
/// [`AzureError::InvalidName`]. Defaults: the 2022-06-01 API, [`RetryPolicy::default`], a 30 s
/// request timeout.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    connection_string: ConnectionString,
    key: AccessKey,
    http: reqwest::Client,
    api: RestApiVersion,
    application: Option<String>,
    retry: RetryPolicy,
    token_lifetime: Duration,
}

/// One REST request, before it is sent.
struct Call {
    name: &'static str,
    method: Method,
    /// Percent-encoded path after the API prefix.
    path: String,
    /// Query pairs after `api-version`/`application`, not encoded yet.
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl Call {
    /// A call with no query pairs of its own and no body.
    fn new(name: &'static str, method: Method, path: String) -> Self {
        Call {
            name,
            method,
            path,
            query: Vec::new(),
            body: None,
        }
    }

    /// Adds the call's own query pairs.
    fn with_query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    /// Adds the call's body.
    fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }
}

/// How an answer's status maps to a result.
#[derive(Clone, Copy)]
enum Expect {
    /// Any 2xx is success.
    Success,
    /// 200 → true, 404 → false.
    Exists,
}

impl ServiceClient {
    /// A client for `connection_string`, which must have an `AccessKey`.
    pub fn new(connection_string: ConnectionString) -> Result<Self, AzureError> {
        let key = connection_string.access_key.clone().ok_or_else(|| {
            AzureError::NoAccessKey(connection_string.auth_type.clone().unwrap_or_default())
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(crate::user_agent())
            .build()
            .map_err(|e| AzureError::Http {
                method: "building".into(),
                url: "the HTTP client".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            connection_string,
            key,
            http,
            api: RestApiVersion::V2022_06_01,
            application: None,
            retry: RetryPolicy::default(),
            token_lifetime: talkback_core::azure::DEFAULT_LIFETIME,
        })
    }

    /// Parses `text` and builds a client.
    pub fn from_connection_string(text: &str) -> Result<Self, AzureError> {
        Self::new(ConnectionString::parse(text)?)
    }

    /// Uses the given REST API version (default 2022-06-01).
    pub fn with_api_version(mut self, api: RestApiVersion) -> Self {
        self.api = api;
        self
    }

    /// Sets the application name: hubs become `<app>_<hub>` (v1 and client URLs) or get
    /// `application=<app>` (2022-06-01).
    pub fn with_application(mut self, application: impl Into<String>) -> Result<Self, AzureError> {
        let application = application.into();
        check_hub("application", &application)?;
        self.application = Some(application);
        Ok(self)
    }

    /// Sets the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Uses this HTTP client (timeouts, proxies, TLS settings).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Sets the lifetime of client tokens (default 1 hour).
    pub fn with_client_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// The parsed connection string.
    pub fn connection_string(&self) -> &ConnectionString {
        &self.connection_string
    }

    /// The API version in use.
    pub fn api_version(&self) -> RestApiVersion {
        self.api
    }

    fn wire_hub(&self, hub: &str) -> Result<String, AzureError> {
        check_hub("hub", hub)?;
        Ok(talkback_core::azure::hub_path_name(
            hub,
            self.application.as_deref(),
        ))
    }

    // ---- client URLs and tokens ----

    /// A client access token for `hub`: `aud` is the client audience, `asrs.s.uid` the user.
    pub fn client_token(&self, hub: &str, user_id: Option<&str>) -> Result<String, AzureError> {
        self.client_token_with(hub, user_id, Vec::new())
    }

    /// [`Self::client_token`] with extra claims.
    pub fn client_token_with(
        &self,
        hub: &str,
        user_id: Option<&str>,
        claims: Vec<(String, serde_json::Value)>,
    ) -> Result<String, AzureError> {
        let hub = self.wire_hub(hub)?;
        let mut req = TokenRequest::new(self.connection_string.client_audience(&hub))
            .lifetime(self.token_lifetime);
        req.user_id = user_id.map(str::to_owned);
        req.claims = claims;
        Ok(generate_token(&self.key, &req, SystemTime::now())?)
    }

    /// What an app server's negotiate answers: the client URL and a token for it.
    pub fn client_info(&self, hub: &str, user_id: Option<&str>) -> Result<ClientInfo, AzureError> {
        let access_token = self.client_token(hub, user_id)?;
        let url = self.connection_string.client_url(&self.wire_hub(hub)?);
        Ok(ClientInfo { url, access_token })
    }

    // ---- REST calls ----

    /// `HEAD /api/v1/health` or `HEAD /api/health?api-version=2022-06-01`: Ok when the service
    /// answers 200.
    pub async fn health(&self) -> Result<(), AzureError> {
        let call = Call::new("health", Method::HEAD, "health".into());
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// `hubs/<hub>`: with an application, v1 puts it in the hub name (`<app>_<hub>`) and
    /// 2022-06-01 in the `application` query.
    fn hub_path(&self, hub: &str) -> Result<String, AzureError> {
        let name = match self.api {
            RestApiVersion::V1 => self.wire_hub(hub)?,
            RestApiVersion::V2022_06_01 => {
                check_hub("hub", hub)?;
                hub.to_lowercase()
            }
        };
        Ok(format!("hubs/{}", encode_path_segment(&name)))
    }

    fn body(message: &Message) -> Result<Vec<u8>, AzureError> {
        if message.target.is_empty() {
            return Err(invalid("target", "", "it is empty"));
        }
        // A `Message` is strings and JSON values: serializing it cannot fail.
        let body = serde_json::to_vec(message).unwrap_or_default();
        if body.len() > MAX_BODY_LEN {
            return Err(AzureError::BodyTooLarge {
                len: body.len(),
                max: MAX_BODY_LEN,
            });
        }
        Ok(body)
    }

    fn action(&self, base: String, action: &str) -> String {
        match self.api {
            RestApiVersion::V1 => base,
            RestApiVersion::V2022_06_01 => format!("{base}/{action}"),
        }
    }

    fn excluded(excluded: &[&str]) -> Result<Vec<(&'static str, String)>, AzureError> {
        excluded
            .iter()
            .map(|c| {
                check_id("connection id", c)?;
                Ok(("excluded", (*c).to_owned()))
            })
            .collect()
    }

    /// Sends `message` to every connection of `hub` except the `excluded` connection ids.
    pub async fn send_to_all(
        &self,
        hub: &str,
        message: &Message,
        excluded: &[&str],
    ) -> Result<(), AzureError> {
        let call = Call::new(
            "send to all",
            Method::POST,
            self.action(self.hub_path(hub)?, ":send"),
        )
        .with_query(Self::excluded(excluded)?)
        .with_body(Self::body(message)?);
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Sends `message` to every connection of `user`.
    pub async fn send_to_user(
        &self,
        hub: &str,
        user: &str,
        message: &Message,
    ) -> Result<(), AzureError> {
        check_id("user", user)?;
        let base = format!(
            "{}/users/{}",
            self.hub_path(hub)?,
            encode_path_segment(user)
        );
        let call = Call::new("send to user", Method::POST, self.action(base, ":send"))
            .with_body(Self::body(message)?);
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Sends `message` to every connection in `group` except the `excluded` connection ids.
    pub async fn send_to_group(
        &self,
        hub: &str,
        group: &str,
        message: &Message,
        excluded: &[&str],
    ) -> Result<(), AzureError> {
        check_group(group)?;
        let base = format!(
            "{}/groups/{}",
            self.hub_path(hub)?,
            encode_path_segment(group)
        );
        let call = Call::new("send to group", Method::POST, self.action(base, ":send"))
            .with_query(Self::excluded(excluded)?)
            .with_body(Self::body(message)?);
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Sends `message` to one connection.
    pub async fn send_to_connection(
        &self,
        hub: &str,
        connection_id: &str,
        message: &Message,
    ) -> Result<(), AzureError> {
        let call = Call::new(
            "send to connection",
            Method::POST,
            self.action(self.connection_path(hub, connection_id)?, ":send"),
        )
        .with_body(Self::body(message)?);
        self.execute(call, Expect::Success).await.map(drop)
    }

    fn connection_path(&self, hub: &str, connection_id: &str) -> Result<String, AzureError> {
        check_id("connection id", connection_id)?;
        Ok(format!(
            "{}/connections/{}",
            self.hub_path(hub)?,
            encode_path_segment(connection_id)
        ))
    }

    fn group_path(&self, hub: &str, group: &str) -> Result<String, AzureError> {
        check_group(group)?;
        Ok(format!(
            "{}/groups/{}",
            self.hub_path(hub)?,
            encode_path_segment(group)
        ))
    }

    fn user_path(&self, hub: &str, user: &str) -> Result<String, AzureError> {
        check_id("user", user)?;
        Ok(format!(
            "{}/users/{}",
            self.hub_path(hub)?,
            encode_path_segment(user)
        ))
    }

    /// Whether the connection is connected (200 → true, 404 → false).
    pub async fn connection_exists(
        &self,
        hub: &str,
        connection_id: &str,
    ) -> Result<bool, AzureError> {
        let call = Call::new(
            "connection exists",
            Method::HEAD,
            self.connection_path(hub, connection_id)?,
        );
        self.execute(call, Expect::Exists).await
    }

    /// Whether any connection is in the group.
    pub async fn group_exists(&self, hub: &str, group: &str) -> Result<bool, AzureError> {
        let call = Call::new("group exists", Method::HEAD, self.group_path(hub, group)?);
        self.execute(call, Expect::Exists).await
    }

    /// Whether the user has any connection.
    pub async fn user_exists(&self, hub: &str, user: &str) -> Result<bool, AzureError> {
        let call = Call::new("user exists", Method::HEAD, self.user_path(hub, user)?);
        self.execute(call, Expect::Exists).await
    }

    /// Whether the user is in the group.
    pub async fn user_in_group(
        &self,
        hub: &str,
        group: &str,
        user: &str,
    ) -> Result<bool, AzureError> {
        check_id("user", user)?;
        check_group(group)?;
        let path = match self.api {
            RestApiVersion::V1 => format!(
                "{}/users/{}",
                self.group_path(hub, group)?,
                encode_path_segment(user)
            ),
            RestApiVersion::V2022_06_01 => format!(
                "{}/groups/{}",
                self.user_path(hub, user)?,
                encode_path_segment(group)
            ),
        };
        let call = Call::new("user in group", Method::HEAD, path);
        self.execute(call, Expect::Exists).await
    }

    fn membership(
        &self,
        name: &'static str,
        method: Method,
        hub: &str,
        group: &str,
        user: &str,
        query: Vec<(&'static str, String)>,
    ) -> Result<Call, AzureError> {
        check_id("user", user)?;
        check_group(group)?;
        let path = match self.api {
            RestApiVersion::V1 => format!(
                "{}/users/{}",
                self.group_path(hub, group)?,
                encode_path_segment(user)
            ),
            RestApiVersion::V2022_06_01 => format!(
                "{}/groups/{}",
                self.user_path(hub, user)?,
                encode_path_segment(group)
            ),
        };
        Ok(Call::new(name, method, path).with_query(query))
    }

    /// Adds the connection to the group. The service answers 404 (an [`AzureError::Status`])
    /// when the connection does not exist.
    pub async fn add_connection_to_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<(), AzureError> {
        check_id("connection id", connection_id)?;
        let call = Call::new(
            "add connection to group",
            Method::PUT,
            format!(
                "{}/connections/{}",
                self.group_path(hub, group)?,
                encode_path_segment(connection_id)
            ),
        );
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Removes the connection from the group.
    pub async fn remove_connection_from_group(
        &self,
        hub: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<(), AzureError> {
        check_id("connection id", connection_id)?;
        let call = Call::new(
            "remove connection from group",
            Method::DELETE,
            format!(
                "{}/connections/{}",
                self.group_path(hub, group)?,
                encode_path_segment(connection_id)
            ),
        );
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Removes the connection from every group (2022-06-01 only).
    pub async fn remove_connection_from_all_groups(
        &self,
        hub: &str,
        connection_id: &str,
    ) -> Result<(), AzureError> {
        self.require_2022("remove connection from all groups")?;
        let call = Call::new(
            "remove connection from all groups",
            Method::DELETE,
            format!("{}/groups", self.connection_path(hub, connection_id)?),
        );
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Adds the user to the group, for `ttl` (whole seconds) or for good.
    pub async fn add_user_to_group(
        &self,
        hub: &str,
        group: &str,
        user: &str,
        ttl: Option<Duration>,
    ) -> Result<(), AzureError> {
        let query = ttl
            .map(|t| vec![("ttl", t.as_secs().to_string())])
            .unwrap_or_default();
        let call = self.membership("add user to group", Method::PUT, hub, group, user, query)?;
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Removes the user from the group.
    pub async fn remove_user_from_group(
        &self,
        hub: &str,
        group: &str,
        user: &str,
    ) -> Result<(), AzureError> {
        let call = self.membership(
            "remove user from group",
            Method::DELETE,
            hub,
            group,
            user,
            Vec::new(),
        )?;
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Removes the user from every group.
    pub async fn remove_user_from_all_groups(
        &self,
        hub: &str,
        user: &str,
    ) -> Result<(), AzureError> {
        let call = Call::new(
            "remove user from all groups",
            Method::DELETE,
            format!("{}/groups", self.user_path(hub, user)?),
        );
        self.execute(call, Expect::Success).await.map(drop)
    }

    /// Closes one connection; the client gets a `Close` with `reason`.
    pub async fn close_connection(
        &self,
        hub: &str,
        connection_id: &str,
        reason: Option<&str>,
    ) -> Result<(), AzureError> {
        let call = Call::new(
            "close connection",
            Method::DELETE,
            self.connection_path(hub, connection_id)?,
        )
        .with_query(
            reason
                .map(|r| vec![("reason", r.to_owned())])
                .unwrap_or_default(),
        );
        self.execute(call, Expect::Success).await.map(drop)
    }

    fn require_2022(&self, call: &'static str) -> Result<(), AzureError> {
        match self.api {
            RestApiVersion::V2022_06_01 => Ok(()),
            api => Err(AzureError::Unsupported { call, api }),
        }
    }

    /// `POST {scope}/:closeConnections` (2022-06-01 only): the version is checked before the
    /// names in `scope`.
    async fn close_connections(
        &self,
        name: &'static str,
        scope: impl FnOnce() -> Result<String, AzureError>,
        excluded: &[&str],
        reason: Option<&str>,
    ) -> Result<(), AzureError> {
        self.require_2022(name)?;
        let call = Call::new(
            name,
            Method::POST,
            format!("{}/:closeConnections", scope()?),
        )
        .with_query(Self::close_query(excluded, reason)?);
        self.execute(call, Expect::Success).await.map(drop)
    }

    fn close_query(
        excluded: &[&str],
        reason: Option<&str>,
    ) -> Result<Vec<(&'static str, String)>, AzureError> {
        let mut query = Self::excluded(excluded)?;
        if let Some(r) = reason {
            query.push(("reason", r.to_owned()));
        }
        Ok(query)
    }

    /// Closes every connection of the hub but the `excluded` (2022-06-01 only).
    pub async fn close_all_connections(
        &self,
        hub: &str,
        excluded: &[&str],
        reason: Option<&str>,
    ) -> Result<(), AzureError> {
        self.close_connections(
            "close all connections",
            || self.hub_path(hub),
            excluded,
            reason,
        )
        .await
    }

    /// Closes every connection in the group but the `excluded` (2022-06-01 only).
    pub async fn close_group_connections(
        &self,
        hub: &str,
        group: &str,
        excluded: &[&str],
        reason: Option<&str>,
    ) -> Result<(), AzureError> {
        self.close_connections(
            "close group connections",
            || self.group_path(hub, group),
            excluded,
            reason,
        )
        .await
    }

    /// Closes every connection of the user but the `excluded` (2022-06-01 only).
    pub async fn close_user_connections(
        &self,
        hub: &str,
        user: &str,
        excluded: &[&str],
        reason: Option<&str>,
    ) -> Result<(), AzureError> {
        self.close_connections(
            "close user connections",
            || self.user_path(hub, user),
            excluded,
            reason,
        )
        .await
    }

    // ---- the request loop ----

    /// The full URL of `call`, and its audience (the same URL without the query, as the
    /// data-plane REST docs specify).
    fn url_of(&self, call: &Call) -> (String, String) {
        let application = match self.api {
            // v1 has no `application` query: the prefix is in the hub name already.
            RestApiVersion::V1 => None,
            RestApiVersion::V2022_06_01 => self.application.as_deref(),
        };
        let mut url = self
            .connection_string
            .rest_url(self.api, &call.path, application);
        let audience = url.split('?').next().unwrap_or_default().to_owned();
        for (i, (k, v)) in call.query.iter().enumerate() {
            let sep = if i == 0 && !url.contains('?') {
                '?'
            } else {
                '&'
            };
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&encode_query_value(v));
        }
        (url, audience)
    }

    async fn execute(&self, call: Call, expect: Expect) -> Result<bool, AzureError> {
        let (url, audience) = self.url_of(&call);
        let method = call.method.clone();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let token = generate_token(
                &self.key,
                &TokenRequest::new(audience.clone()).lifetime(REST_TOKEN_LIFETIME),
                SystemTime::now(),
            )?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(AUTHORIZATION, format!("Bearer {token}"));
            if let Some(body) = &call.body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let can_retry = attempts <= self.retry.max_retries;
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    if can_retry && e.is_connect() {
                        tokio::time::sleep(self.retry.backoff(attempts - 1)).await;
                        continue;
                    }
                    return Err(AzureError::Http {
                        method: method.to_string(),
                        url,
                        message: format!(
                            "{} (after {attempts} attempt{})",
                            error_chain(&e),
                            if attempts == 1 { "" } else { "s" }
                        ),
                    });
                }
            };
            let status = response.status();
            tracing::debug!(call = call.name, %url, status = status.as_u16(), attempts, "azure rest");
            match (expect, status) {
                (Expect::Exists, StatusCode::OK) => return Ok(true),
                (Expect::Exists, StatusCode::NOT_FOUND) => return Ok(false),
                (Expect::Success, s) if s.is_success() => return Ok(true),
                _ => {}
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && can_retry {
                let wait = retry_after(response.headers(), SystemTime::now())
                    .unwrap_or_else(|| self.retry.backoff(attempts - 1))
                    .min(self.retry.max_delay);
                drop(response);
                tokio::time::sleep(wait).await;
                continue;
            }
            let error_code = response
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .map(|v| cut(v, 128));
            let body = read_excerpt(response).await;
            return Err(AzureError::Status {
                method: method.to_string(),
                url,
                status: status.as_u16(),
                error_code,
                body,
                attempts,
            });
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads at most [`MAX_ERROR_READ`] bytes of the body and keeps [`BODY_EXCERPT`] characters.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_ERROR_READ);
    cut(String::from_utf8_lossy(&bytes).trim(), BODY_EXCERPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(now + Duration::from_secs(3))
                .parse()
                .unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(now - Duration::from_secs(3))
                .parse()
                .unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(500));
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn names_the_service_would_refuse_fail_early() {
        assert!(check_hub("hub", "chat").is_ok());
        assert!(check_hub("hub", "A_b`c,d.e[f]").is_ok());
        for bad in [
            "",
            "1chat",
            "_x",
            "chat room",
            "chat/x",
            "ch\u{e4}t",
            &"a".repeat(129),
        ] {
            assert!(check_hub("hub", bad).is_err(), "{bad:?}");
        }
        assert!(check_group("g").is_ok());
        assert!(check_group("ünï cödé / ?#").is_ok());
        for bad in ["", " ", "\t\n ", &"g".repeat(1025)] {
            assert!(check_group(bad).is_err(), "{bad:?}");
        }
        assert!(check_id("user", "").is_err());
        assert!(check_id("user", " ").is_ok());
    }
}
