//! Service URLs and token audiences as the Azure SignalR SDK builds them (checklist item 95).
//!
//! Sources: Azure/azure-signalr `src/Microsoft.Azure.SignalR/EndpointProvider/DefaultServiceEndpointGenerator.cs`
//! and `src/Microsoft.Azure.SignalR.Common/Endpoints/ServiceEndpoint.cs`:
//!
//! - hub names on the wire are lower-cased, and prefixed `<app>_` when an application name is set;
//! - client URL `{ClientEndpoint}/client/?hub=<hub>`, server URL `{ServerEndpoint}/server/?hub=<hub>`,
//!   each defaulting to `Endpoint` with `Port` applied;
//! - audiences are built from `Endpoint`'s scheme and host **without the port**.

use super::ConnectionString;

/// The `api-version` of the newer data-plane REST API.
pub const API_VERSION_2022_06_01: &str = "2022-06-01";

/// Which data-plane REST API a URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestApiVersion {
    /// `/api/v1/...` (the original API; no `api-version` query).
    V1,
    /// `/api/...?api-version=2022-06-01` (with `:send` and `:closeConnections` actions).
    V2022_06_01,
}

impl RestApiVersion {
    /// The path prefix after the server endpoint: `/api/v1` or `/api`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::V1 => "/api/v1",
            Self::V2022_06_01 => "/api",
        }
    }
}

/// The hub name as the service sees it: lower-cased, with `<app>_` in front when an application
/// name is set (checklist item 95).
pub fn hub_path_name(hub: &str, application: Option<&str>) -> String {
    match application.filter(|a| !a.is_empty()) {
        Some(app) => format!("{app}_{hub}").to_lowercase(),
        None => hub.to_lowercase(),
    }
}

/// Percent-encodes a query value (`application/x-www-form-urlencoded`).
pub fn encode_query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters, so names
/// with `/`, `?`, `#`, `%`, `:` or spaces stay one segment (the 2022-06-01 actions, `/:send`, are
/// appended by the caller as literal segments).
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone would be resolved away by URL normalization.
    match out.as_str() {
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => out,
    }
}

fn with_port(url: &url::Url, port: Option<u16>) -> url::Url {
    let mut u = url.clone();
    if let Some(p) = port {
        // Cannot fail for http(s) URLs with a host, which parsing guarantees.
        let _ = u.set_port(Some(p));
    }
    u
}

fn base(url: &url::Url) -> &str {
    url.as_str().trim_end_matches('/')
}

impl ConnectionString {
    /// Where clients connect: `ClientEndpoint`, else `Endpoint` with `Port` applied.
    pub fn client_endpoint(&self) -> url::Url {
        match &self.client_endpoint {
            Some(c) => c.clone(),
            None => with_port(&self.endpoint, self.port),
        }
    }

    /// Where app servers and REST calls go: `ServerEndpoint`, else `Endpoint` with `Port` applied.
    pub fn server_endpoint(&self) -> url::Url {
        match &self.server_endpoint {
            Some(s) => s.clone(),
            None => with_port(&self.endpoint, self.port),
        }
    }

    /// The audience base: `Endpoint`'s scheme and host, no port, no path: `https://host`.
    pub fn audience_base(&self) -> String {
        let host = self.endpoint.host_str().unwrap_or_default();
        format!("{}://{}", self.endpoint.scheme(), host)
    }

    /// The client URL for `hub` (an app server's negotiate redirects here):
    /// `{client endpoint}/client/?hub=<hub lower-cased>`.
    pub fn client_url(&self, hub: &str) -> String {
        format!(
            "{}/client/?hub={}",
            base(&self.client_endpoint()),
            encode_query_value(&hub.to_lowercase())
        )
    }

    /// The `aud` of client tokens for `hub`: `{scheme}://{host}/client/?hub=<hub>`, without the
    /// port, as the SDK writes it. A validator comparing it with [`Self::client_url`] must ignore
    /// the port (the default of `TokenValidator`).
    pub fn client_audience(&self, hub: &str) -> String {
        format!(
            "{}/client/?hub={}",
            self.audience_base(),
            encode_query_value(&hub.to_lowercase())
        )
    }

    /// The server URL for `hub`: `{server endpoint}/server/?hub=<hub lower-cased>`.
    pub fn server_url(&self, hub: &str) -> String {
        format!(
            "{}/server/?hub={}",
            base(&self.server_endpoint()),
            encode_query_value(&hub.to_lowercase())
        )
    }

    /// The `aud` of server tokens for `hub` (port-less, like [`Self::client_audience`]).
    pub fn server_audience(&self, hub: &str) -> String {
        format!(
            "{}/server/?hub={}",
            self.audience_base(),
            encode_query_value(&hub.to_lowercase())
        )
    }

    /// The REST URL of a hub: `{server}/api/v1/hubs/{hub}` or
    /// `{server}/api/hubs/{hub}?api-version=2022-06-01` (hub lower-cased and percent-encoded).
    pub fn rest_hub_url(&self, hub: &str, api: RestApiVersion) -> String {
        let path = format!("hubs/{}", encode_path_segment(&hub.to_lowercase()));
        self.rest_url(api, &path, None)
    }

    /// A REST URL: `{server}{prefix}/{path}` plus, for 2022-06-01, `?api-version=2022-06-01` and
    /// `&application=<app>` when given. `path` is relative (no leading `/`) and already
    /// percent-encoded (see [`encode_path_segment`]); an empty path gives the prefix itself.
    pub fn rest_url(&self, api: RestApiVersion, path: &str, application: Option<&str>) -> String {
        let mut url = format!("{}{}", base(&self.server_endpoint()), api.prefix());
        if !path.is_empty() {
            url.push('/');
            url.push_str(path.trim_start_matches('/'));
        }
        if api == RestApiVersion::V2022_06_01 {
            url.push_str("?api-version=");
            url.push_str(API_VERSION_2022_06_01);
            if let Some(app) = application.filter(|a| !a.is_empty()) {
                url.push_str("&application=");
                url.push_str(&encode_query_value(app));
            }
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(s: &str) -> ConnectionString {
        ConnectionString::parse(s).unwrap()
    }

    /// Checklist item 95: hub names lower-cased, `<app>_` prefix.
    #[test]
    fn hub_names_are_lower_cased_and_prefixed_with_the_application() {
        assert_eq!(hub_path_name("Chat", None), "chat");
        assert_eq!(hub_path_name("Chat", Some("MyApp")), "myapp_chat");
        assert_eq!(hub_path_name("Chat", Some("")), "chat");
    }

    /// Checklist item 95: client and server URLs, with the port, and port-less audiences.
    #[test]
    fn client_and_server_urls_carry_the_port_but_audiences_do_not() {
        let c = cs("Endpoint=http://localhost;Port=8888;AccessKey=k;Version=1.0;");
        assert_eq!(c.client_endpoint().as_str(), "http://localhost:8888/");
        assert_eq!(
            c.client_url("Chat"),
            "http://localhost:8888/client/?hub=chat"
        );
        assert_eq!(
            c.client_audience("Chat"),
            "http://localhost/client/?hub=chat"
        );
        assert_eq!(
            c.server_url("Chat"),
            "http://localhost:8888/server/?hub=chat"
        );
        assert_eq!(
            c.server_audience("Chat"),
            "http://localhost/server/?hub=chat"
        );
        assert!(super::super::audience_matches(
            &c.client_audience("Chat"),
            &c.client_url("Chat"),
            false
        ));
    }

    /// Checklist item 95: `ClientEndpoint` and `ServerEndpoint` keep their own ports; `Port`
    /// applies to `Endpoint` only.
    #[test]
    fn client_and_server_endpoints_override_the_endpoint() {
        let c = cs("Endpoint=https://svc.example;Port=444;ClientEndpoint=https://front.example/signalr/;ServerEndpoint=http://10.0.0.1:81;AccessKey=k");
        assert_eq!(
            c.client_url("h"),
            "https://front.example/signalr/client/?hub=h"
        );
        assert_eq!(c.server_url("h"), "http://10.0.0.1:81/server/?hub=h");
        assert_eq!(c.client_audience("h"), "https://svc.example/client/?hub=h");
        assert_eq!(
            c.rest_hub_url("h", RestApiVersion::V1),
            "http://10.0.0.1:81/api/v1/hubs/h"
        );
    }

    #[test]
    fn rest_urls_for_both_api_versions() {
        let c = cs("Endpoint=https://x.service.signalr.net;AccessKey=k");
        assert_eq!(
            c.rest_hub_url("Chat", RestApiVersion::V1),
            "https://x.service.signalr.net/api/v1/hubs/chat"
        );
        assert_eq!(
            c.rest_hub_url("Chat", RestApiVersion::V2022_06_01),
            "https://x.service.signalr.net/api/hubs/chat?api-version=2022-06-01"
        );
        assert_eq!(
            c.rest_url(RestApiVersion::V1, "health", None),
            "https://x.service.signalr.net/api/v1/health"
        );
        assert_eq!(
            c.rest_url(RestApiVersion::V2022_06_01, "hubs/chat/:send", Some("my app")),
            "https://x.service.signalr.net/api/hubs/chat/:send?api-version=2022-06-01&application=my+app"
        );
    }

    #[test]
    fn hostile_names_stay_one_segment_or_one_query_value() {
        assert_eq!(encode_path_segment("a/b?c#d%e f"), "a%2Fb%3Fc%23d%25e%20f");
        assert_eq!(encode_path_segment(".."), "%2E%2E");
        assert_eq!(encode_path_segment("用户"), "%E7%94%A8%E6%88%B7");
        let c = cs("Endpoint=http://h;AccessKey=k");
        assert_eq!(c.client_url("a&hub=b"), "http://h/client/?hub=a%26hub%3Db");
        let u = url::Url::parse(&c.client_url("a&hub=b")).unwrap();
        assert_eq!(u.query_pairs().count(), 1);
    }
}
