//! Azure SignalR Service connection strings (checklist item 94).
//!
//! The rules follow the Azure SignalR SDK's parser (`Azure/azure-signalr`,
//! `src/Microsoft.Azure.SignalR.Common/Utilities/ConnectionStringParser.cs`):
//!
//! 1. split on `;`, dropping empty pieces; fewer than two pieces is an error;
//! 2. split each piece at its **first** `=` (a piece without `=` is skipped); trim key and value;
//! 3. keys are case-insensitive; the same key twice is an error;
//! 4. `Endpoint` is required, loses trailing `/`, and must be an absolute `http`/`https` URL;
//! 5. `Version`, if present, must match `^1\.\d+(?:[\w-.]+)?$`;
//! 6. `Port`, if present, is an integer 1–65535 and replaces the endpoint's port (only the
//!    endpoint's: `ClientEndpoint` and `ServerEndpoint` keep their own);
//! 7. `ClientEndpoint` / `ServerEndpoint`, if present, are absolute `http`/`https` URLs
//!    (stricter than the SDK: none of the three URLs may carry credentials, a query or a
//!    fragment, since service URLs are built by appending to them);
//! 8. `AccessKey` is required unless `AuthType` names a Microsoft Entra ID type (`aad`, `azure`,
//!    `azure.app`, `azure.msi`); an unknown `AuthType` falls back to the access key, as in the SDK.
//!
//! Errors name the offending key and never contain the access key's value.

use std::fmt;
use std::str::FromStr;

/// Longest connection string accepted, in bytes. Real ones are a few hundred bytes; the bound
/// keeps parsing work small for hostile input.
pub const MAX_CONNECTION_STRING_LEN: usize = 16 * 1024;

/// Longest value echoed back in an error message (values are cut, never the key's).
const MAX_ECHO: usize = 64;

/// An Azure SignalR access key: the HMAC secret of every token.
///
/// Its `Debug` and `Display` never show the value. Tokens are signed with the key's UTF-8
/// bytes ([`AccessKey::as_bytes`]), not with its Base64 decoding, as the Azure SDK does.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey(String);

impl AccessKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The bytes that sign and verify tokens: the UTF-8 encoding of the key string.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The key string itself, for code that must hand it on (an upstream signature, say).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether the key is the empty string (such a key cannot sign tokens).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

impl fmt::Display for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

/// A parsed Azure SignalR Service connection string.
///
/// `Debug` redacts the access key; `Display` writes the string back in canonical form with the
/// key redacted (use [`ConnectionString::to_secret_string`] for the full text).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// `Endpoint`, trailing `/` removed, exactly as parsed (the `Port` override is **not**
    /// applied here; see [`ConnectionString::client_endpoint`]).
    pub endpoint: url::Url,
    /// `ClientEndpoint`: where clients connect, when it differs from `Endpoint`.
    pub client_endpoint: Option<url::Url>,
    /// `ServerEndpoint`: where app servers and REST calls go, when it differs from `Endpoint`.
    pub server_endpoint: Option<url::Url>,
    /// `Port`: replaces the endpoint's port.
    pub port: Option<u16>,
    /// `Version`: `1.0` when absent; always `1.x`.
    pub version: String,
    /// `AccessKey`: present unless an Entra ID `AuthType` was given.
    pub access_key: Option<AccessKey>,
    /// `AuthType` as written (`aad`, `azure`, `azure.app`, `azure.msi`, or anything else).
    pub auth_type: Option<String>,
    /// `ClientId` (Entra ID), kept for completeness.
    pub client_id: Option<String>,
    /// `TenantId` (Entra ID), kept for completeness.
    pub tenant_id: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint.as_str())
            .field(
                "client_endpoint",
                &self.client_endpoint.as_ref().map(url::Url::as_str),
            )
            .field(
                "server_endpoint",
                &self.server_endpoint.as_ref().map(url::Url::as_str),
            )
            .field("port", &self.port)
            .field("version", &self.version)
            .field("access_key", &self.access_key)
            .field("auth_type", &self.auth_type)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

/// The Entra ID authentication types; any other `AuthType` still needs an `AccessKey`.
const ENTRA_TYPES: [&str; 4] = ["aad", "azure", "azure.app", "azure.msi"];

/// What is wrong with a connection string. Every variant names the part at fault; none carries
/// the access key's value. All are the caller's fault (bad configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// Longer than [`MAX_CONNECTION_STRING_LEN`].
    #[error("connection string is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Fewer than two `;`-separated properties (the SDK's "missing required properties endpoint").
    #[error("connection string missing required properties endpoint (it needs at least Endpoint and AccessKey, separated by ';')")]
    TooFewProperties,
    /// A key appears twice (keys are case-insensitive).
    #[error("duplicate properties found in connection string: {key}")]
    DuplicateKey {
        /// The key as written the second time.
        key: String,
    },
    /// A required key is absent.
    #[error("connection string missing required property {key}")]
    Missing {
        /// The missing key (`Endpoint`, `AccessKey`, `ClientId`, `TenantId`, ...).
        key: &'static str,
    },
    /// `Endpoint`, `ClientEndpoint` or `ServerEndpoint` is not an absolute http(s) URL.
    #[error("invalid value for {key} property, it must be an absolute http or https URL ({reason}): {value:?}")]
    InvalidUrl {
        /// Which key.
        key: &'static str,
        /// What the URL parser or scheme check said.
        reason: String,
        /// The value, cut to a few dozen characters.
        value: String,
    },
    /// `Version` is not `1.x`.
    #[error("version {value:?} is not supported (only 1.x)")]
    UnsupportedVersion {
        /// The value, cut to a few dozen characters.
        value: String,
    },
    /// `Port` is not an integer from 1 to 65535.
    #[error("invalid value for port property, it must be an integer from 1 to 65535: {value:?}")]
    InvalidPort {
        /// The value, cut to a few dozen characters.
        value: String,
    },
    /// `AccessKey=` with nothing after it.
    #[error("accesskey is empty")]
    EmptyAccessKey,
}

fn echo(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// The canonical spelling of a known key, for errors and `Display`.
fn canonical(key_lower: &str) -> Option<&'static str> {
    Some(match key_lower {
        "endpoint" => "Endpoint",
        "accesskey" => "AccessKey",
        "version" => "Version",
        "port" => "Port",
        "clientendpoint" => "ClientEndpoint",
        "serverendpoint" => "ServerEndpoint",
        "authtype" => "AuthType",
        "clientid" => "ClientId",
        "clientsecret" => "ClientSecret",
        "clientcert" => "ClientCert",
        "tenantid" => "TenantId",
        _ => return None,
    })
}

/// Parses an absolute http(s) URL, as `Uri.TryCreate(.., UriKind.Absolute)` plus the scheme check.
fn parse_http_url(key: &'static str, value: &str) -> Result<url::Url, ConnectionStringError> {
    let bad = |reason: String| ConnectionStringError::InvalidUrl {
        key,
        reason,
        value: echo(value),
    };
    let url = url::Url::parse(value).map_err(|e| bad(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(format!("scheme {:?}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL".to_owned()));
    }
    // Service URLs are built by appending paths; a query or fragment would end up in the middle.
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment".to_owned()));
    }
    // Every URL built from it is parsed again, so the normalized form must parse to itself (the
    // URL parser is not idempotent for some internationalized hosts ending in a number).
    if url::Url::parse(url.as_str()).ok().as_ref() != Some(&url) {
        return Err(bad("a host that does not survive normalization".to_owned()));
    }
    // IDNA mapping can turn a character into `;` (U+037E becomes `;`), which would split the
    // connection string when it is printed.
    if url.as_str().contains(';') {
        return Err(bad("a ';' after normalization".to_owned()));
    }
    Ok(url)
}

/// The `Version` rule: `^1\.\d+(?:[\w-.]+)?$`, with .NET's Unicode-aware `\d` and `\w` approximated
/// by Rust's `char::is_numeric` / `is_alphanumeric` (and `_`).
fn version_is_supported(v: &str) -> bool {
    let Some(rest) = v.strip_prefix("1.") else {
        return false;
    };
    let digits = rest.chars().take_while(|c| c.is_numeric()).count();
    if digits == 0 {
        return false;
    }
    rest.chars()
        .skip(digits)
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
}

impl ConnectionString {
    /// Parses a connection string with the SDK's rules (see the module docs).
    pub fn parse(s: &str) -> Result<Self, ConnectionStringError> {
        if s.len() > MAX_CONNECTION_STRING_LEN {
            return Err(ConnectionStringError::TooLong {
                len: s.len(),
                max: MAX_CONNECTION_STRING_LEN,
            });
        }
        let pieces: Vec<&str> = s.split(';').filter(|p| !p.is_empty()).collect();
        if pieces.len() < 2 {
            return Err(ConnectionStringError::TooFewProperties);
        }
        // (lower-cased key, value)
        let mut props: Vec<(String, &str)> = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let Some((key, value)) = piece.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let lower = key.to_lowercase();
            if props.iter().any(|(k, _)| *k == lower) {
                return Err(ConnectionStringError::DuplicateKey { key: echo(key) });
            }
            props.push((lower, value.trim()));
        }
        let get = |k: &str| props.iter().find(|(key, _)| key == k).map(|(_, v)| *v);

        let endpoint = get("endpoint").ok_or(ConnectionStringError::Missing { key: "Endpoint" })?;
        let mut endpoint = parse_http_url("Endpoint", endpoint.trim_end_matches('/'))?;
        // URL normalization can bring a trailing `/` back (`/x/.` is `/x/`); drop it again.
        if endpoint.path().len() > 1 && endpoint.path().ends_with('/') {
            let path = endpoint.path().trim_end_matches('/').to_owned();
            endpoint.set_path(&path);
        }

        let version = match get("version") {
            Some(v) if version_is_supported(v) => v.to_owned(),
            Some(v) => return Err(ConnectionStringError::UnsupportedVersion { value: echo(v) }),
            None => "1.0".to_owned(),
        };

        let port = match get("port") {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(ConnectionStringError::InvalidPort { value: echo(p) }),
            },
        };

        let client_endpoint = get("clientendpoint")
            .map(|v| parse_http_url("ClientEndpoint", v))
            .transpose()?;
        let server_endpoint = get("serverendpoint")
            .map(|v| parse_http_url("ServerEndpoint", v))
            .transpose()?;

        let auth_type = get("authtype").map(str::to_owned);
        let client_id = get("clientid").map(str::to_owned);
        let tenant_id = get("tenantid").map(str::to_owned);
        let entra = auth_type
            .as_deref()
            .map(str::to_lowercase)
            .filter(|t| ENTRA_TYPES.contains(&t.as_str()));
        let access_key = match entra.as_deref() {
            None => {
                let key =
                    get("accesskey").ok_or(ConnectionStringError::Missing { key: "AccessKey" })?;
                if key.is_empty() {
                    return Err(ConnectionStringError::EmptyAccessKey);
                }
                Some(AccessKey::new(key))
            }
            Some(kind) => {
                let has_secret = get("clientsecret").is_some() || get("clientcert").is_some();
                match kind {
                    "azure.app" => {
                        if client_id.is_none() {
                            return Err(ConnectionStringError::Missing { key: "ClientId" });
                        }
                        if tenant_id.is_none() {
                            return Err(ConnectionStringError::Missing { key: "TenantId" });
                        }
                        if !has_secret {
                            return Err(ConnectionStringError::Missing {
                                key: "ClientSecret or ClientCert",
                            });
                        }
                    }
                    "aad" if client_id.is_some() && tenant_id.is_some() && !has_secret => {
                        return Err(ConnectionStringError::Missing {
                            key: "ClientSecret or ClientCert",
                        });
                    }
                    _ => {}
                }
                get("accesskey")
                    .filter(|k| !k.is_empty())
                    .map(AccessKey::new)
            }
        };

        Ok(Self {
            endpoint,
            client_endpoint,
            server_endpoint,
            port,
            version,
            access_key,
            auth_type,
            client_id,
            tenant_id,
        })
    }

    /// A connection string for a local service on `base` (for example the fixture's
    /// `http://127.0.0.1:8888`), in the emulator's form.
    pub fn local(base: &url::Url, key: AccessKey) -> Self {
        let mut endpoint = base.clone();
        let port = endpoint.port();
        let _ = endpoint.set_port(None);
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        Self {
            endpoint,
            client_endpoint: None,
            server_endpoint: None,
            port,
            version: "1.0".to_owned(),
            access_key: Some(key),
            auth_type: None,
            client_id: None,
            tenant_id: None,
        }
    }

    /// The full text, access key included: `Endpoint=..;Port=..;AccessKey=..;Version=..;`.
    /// Handle it like the key itself.
    pub fn to_secret_string(&self) -> String {
        struct Secret<'a>(&'a ConnectionString);
        impl fmt::Display for Secret<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, true)
            }
        }
        Secret(self).to_string()
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, reveal: bool) -> fmt::Result {
        write!(
            f,
            "Endpoint={};",
            self.endpoint.as_str().trim_end_matches('/')
        )?;
        if let Some(port) = self.port {
            write!(f, "Port={port};")?;
        }
        if let Some(c) = &self.client_endpoint {
            write!(f, "ClientEndpoint={c};")?;
        }
        if let Some(s) = &self.server_endpoint {
            write!(f, "ServerEndpoint={s};")?;
        }
        if let Some(t) = &self.auth_type {
            write!(f, "AuthType={t};")?;
        }
        if let Some(c) = &self.client_id {
            write!(f, "ClientId={c};")?;
        }
        if let Some(t) = &self.tenant_id {
            write!(f, "TenantId={t};")?;
        }
        if let Some(key) = &self.access_key {
            if reveal {
                write!(f, "AccessKey={};", key.expose_secret())?;
            } else {
                f.write_str("AccessKey=<redacted>;")?;
            }
        }
        write!(f, "Version={};", self.version)
    }

    /// The canonical name of a connection-string key (`"accesskey"` → `"AccessKey"`), if known.
    pub fn canonical_key(key: &str) -> Option<&'static str> {
        canonical(&key.to_lowercase())
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";

    fn parse(s: &str) -> Result<ConnectionString, ConnectionStringError> {
        ConnectionString::parse(s)
    }

    fn assert_no_key(err: &ConnectionStringError) {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(KEY), "error leaks the key: {text}");
        assert!(!text.contains("s3cr3t"), "error leaks the key: {text}");
    }

    /// Checklist item 94: the emulator's own connection string parses.
    #[test]
    fn the_emulator_connection_string_parses_with_its_port_and_key() {
        let cs = parse(&format!(
            "Endpoint=http://localhost;Port=8888;AccessKey={KEY};Version=1.0;"
        ))
        .unwrap();
        assert_eq!(cs.endpoint.as_str(), "http://localhost/");
        assert_eq!(cs.port, Some(8888));
        assert_eq!(cs.version, "1.0");
        assert_eq!(cs.access_key.as_ref().unwrap().as_bytes(), KEY.as_bytes());
        assert_eq!(cs.auth_type, None);
    }

    /// Checklist item 94: keys are case-insensitive and keys and values are trimmed.
    #[test]
    fn keys_are_case_insensitive_and_keys_and_values_are_trimmed() {
        let cs = parse(
            "  eNdPoInT =  https://x.service.signalr.net/  ; ACCESSKEY = s3cr3t ;version= 1.2 ",
        )
        .unwrap();
        assert_eq!(cs.endpoint.as_str(), "https://x.service.signalr.net/");
        assert_eq!(cs.access_key.unwrap().expose_secret(), "s3cr3t");
        assert_eq!(cs.version, "1.2");
    }

    /// Checklist item 94: values split at the first `=` only (Base64 keys end in `=`).
    #[test]
    fn a_value_keeps_every_equals_sign_after_the_first() {
        let cs = parse("Endpoint=https://a.b;AccessKey=abc==;").unwrap();
        assert_eq!(cs.access_key.unwrap().expose_secret(), "abc==");
    }

    /// Checklist item 94: pieces without `=` are skipped; empty pieces are dropped.
    #[test]
    fn pieces_without_an_equals_sign_and_empty_pieces_are_skipped() {
        let cs = parse(";;Endpoint=https://a.b;;junk;AccessKey=k;;").unwrap();
        assert_eq!(cs.endpoint.host_str(), Some("a.b"));
    }

    /// Checklist item 94: fewer than two properties is the SDK's "missing endpoint" error.
    #[test]
    fn fewer_than_two_properties_is_an_error() {
        for s in [
            "",
            ";",
            ";;;",
            "Endpoint=https://a.b",
            "Endpoint=https://a.b;;",
        ] {
            assert_eq!(
                parse(s).unwrap_err(),
                ConnectionStringError::TooFewProperties,
                "{s:?}"
            );
        }
    }

    /// Checklist item 94: a duplicate key, in any case, is refused and named.
    #[test]
    fn a_duplicate_key_in_another_case_is_refused_and_named() {
        let err = parse("Endpoint=https://a.b;AccessKey=s3cr3t;accesskey=s3cr3t").unwrap_err();
        assert_eq!(
            err,
            ConnectionStringError::DuplicateKey {
                key: "accesskey".into()
            }
        );
        assert!(err.to_string().contains("accesskey"));
        assert_no_key(&err);
    }

    /// Checklist item 94: `Endpoint` is required.
    #[test]
    fn a_missing_endpoint_is_named() {
        let err = parse("AccessKey=s3cr3t;Version=1.0").unwrap_err();
        assert_eq!(err, ConnectionStringError::Missing { key: "Endpoint" });
        assert!(err.to_string().contains("Endpoint"));
        assert_no_key(&err);
    }

    /// Checklist item 94: `Endpoint` must be an absolute http(s) URL.
    #[test]
    fn an_endpoint_that_is_not_absolute_http_is_refused() {
        for bad in [
            "localhost",
            "/relative",
            "ftp://a.b",
            "ws://a.b",
            "file:///etc/passwd",
            "https://",
            "http://user:pw@a.b",
            "http://a.b/?x=1",
            "http://a.b/#top",
            "javascript:alert(1)",
            "",
            "   ",
        ] {
            let err = parse(&format!("Endpoint={bad};AccessKey=s3cr3t")).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConnectionStringError::InvalidUrl {
                        key: "Endpoint",
                        ..
                    }
                ),
                "{bad:?}: {err:?}"
            );
            assert_no_key(&err);
        }
    }

    /// Checklist item 94: trailing slashes of `Endpoint` go.
    #[test]
    fn trailing_slashes_of_the_endpoint_are_removed() {
        let cs = parse("Endpoint=https://a.b/path///;AccessKey=k").unwrap();
        assert_eq!(cs.endpoint.as_str(), "https://a.b/path");
        let cs = parse("Endpoint=https://a.b/path/.;AccessKey=k").unwrap();
        assert_eq!(cs.endpoint.as_str(), "https://a.b/path");
    }

    /// Checklist item 94: `Version` must be 1.x.
    #[test]
    fn only_version_one_point_something_is_accepted() {
        for good in ["1.0", "1.1", "1.10", "1.0-preview", "1.0.beta_2", "1.2.3.4"] {
            assert_eq!(
                parse(&format!("Endpoint=https://a.b;AccessKey=k;Version={good}"))
                    .unwrap()
                    .version,
                good
            );
        }
        for bad in [
            "2.0", "1", "1.", "1.x", "v1.0", "1.0 beta", "1.0;", "1.0/x", "", "01.0",
        ] {
            let s = format!("Endpoint=https://a.b;AccessKey=s3cr3t;Version={bad}");
            match parse(&s) {
                Err(ConnectionStringError::UnsupportedVersion { value }) => {
                    assert_eq!(value, bad.trim())
                }
                // "1.0;" splits into Version=1.0 and an empty piece.
                Ok(cs) if bad == "1.0;" => assert_eq!(cs.version, "1.0"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    /// Checklist item 94: `Port` is 1–65535 and only overrides the endpoint's port.
    #[test]
    fn port_must_be_between_one_and_65535() {
        assert_eq!(
            parse("Endpoint=https://a.b;AccessKey=k;Port=1")
                .unwrap()
                .port,
            Some(1)
        );
        assert_eq!(
            parse("Endpoint=https://a.b;AccessKey=k;Port=65535")
                .unwrap()
                .port,
            Some(65535)
        );
        for bad in [
            "0",
            "65536",
            "-1",
            "80a",
            "",
            "８０",
            "99999999999999999999",
            "+80 80",
        ] {
            let err =
                parse(&format!("Endpoint=https://a.b;AccessKey=s3cr3t;Port={bad}")).unwrap_err();
            assert!(
                matches!(err, ConnectionStringError::InvalidPort { .. }),
                "{bad:?}: {err:?}"
            );
            assert_no_key(&err);
        }
    }

    /// Checklist item 94: `ClientEndpoint` and `ServerEndpoint` are absolute http(s) URLs.
    #[test]
    fn client_and_server_endpoints_must_be_absolute_http_urls() {
        let cs = parse("Endpoint=https://a.b;AccessKey=k;ClientEndpoint=https://c.d:8443;ServerEndpoint=http://s.e").unwrap();
        assert_eq!(cs.client_endpoint.unwrap().as_str(), "https://c.d:8443/");
        assert_eq!(cs.server_endpoint.unwrap().as_str(), "http://s.e/");
        let err = parse("Endpoint=https://a.b;AccessKey=k;ClientEndpoint=c.d").unwrap_err();
        assert!(matches!(
            err,
            ConnectionStringError::InvalidUrl {
                key: "ClientEndpoint",
                ..
            }
        ));
        let err = parse("Endpoint=https://a.b;AccessKey=k;ServerEndpoint=tcp://s.e").unwrap_err();
        assert!(matches!(
            err,
            ConnectionStringError::InvalidUrl {
                key: "ServerEndpoint",
                ..
            }
        ));
    }

    /// Checklist item 94: `AccessKey` is required without `AuthType`, and an unknown `AuthType`
    /// does not lift the requirement.
    #[test]
    fn access_key_is_required_unless_an_entra_auth_type_is_given() {
        let err = parse("Endpoint=https://a.b;Version=1.0").unwrap_err();
        assert_eq!(err, ConnectionStringError::Missing { key: "AccessKey" });
        let err = parse("Endpoint=https://a.b;AuthType=magic").unwrap_err();
        assert_eq!(err, ConnectionStringError::Missing { key: "AccessKey" });
        for t in ["aad", "AAD", "azure", "azure.msi"] {
            let cs = parse(&format!("Endpoint=https://a.b;AuthType={t}")).unwrap();
            assert!(cs.access_key.is_none());
            assert_eq!(cs.auth_type.as_deref(), Some(t));
        }
        let err = parse("Endpoint=https://a.b;AuthType=azure.app;ClientId=c").unwrap_err();
        assert_eq!(err, ConnectionStringError::Missing { key: "TenantId" });
        let err = parse("Endpoint=https://a.b;AuthType=aad;ClientId=c;TenantId=t").unwrap_err();
        assert_eq!(
            err,
            ConnectionStringError::Missing {
                key: "ClientSecret or ClientCert"
            }
        );
        assert!(parse(
            "Endpoint=https://a.b;AuthType=azure.app;ClientId=c;TenantId=t;ClientSecret=x"
        )
        .is_ok());
    }

    #[test]
    fn an_empty_access_key_is_refused() {
        assert_eq!(
            parse("Endpoint=https://a.b;AccessKey=  ").unwrap_err(),
            ConnectionStringError::EmptyAccessKey
        );
    }

    #[test]
    fn debug_and_display_never_show_the_key() {
        let cs = parse(&format!("Endpoint=https://a.b;AccessKey={KEY}")).unwrap();
        let shown = format!(
            "{cs} {cs:?} {:?} {}",
            cs.access_key,
            cs.access_key.as_ref().unwrap()
        );
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("<redacted>"));
        // The secret form round-trips.
        let again = parse(&cs.to_secret_string()).unwrap();
        assert_eq!(again, cs);
    }

    /// Cases the fuzz target found: a `ClientEndpoint` whose path ends in `/`, and `ClientId`
    /// or `TenantId` next to an access key, survive printing and parsing again.
    #[test]
    fn the_canonical_text_round_trips() {
        for text in [
            "Endpoint=https://a.b/x/.;ClientEndpoint=https://c:1//p/;AccessKey=k",
            "Endpoint=http://localhost;AccessKey=k;ClientId=c;TenantId=t",
            "Endpoint=http://h;ServerEndpoint=http://s/a/;AuthType=magic;AccessKey=k==",
        ] {
            let cs = parse(text).unwrap();
            assert_eq!(parse(&cs.to_secret_string()).unwrap(), cs, "{text}");
        }
    }

    #[test]
    fn a_local_connection_string_moves_the_port_into_port() {
        let base = url::Url::parse("http://127.0.0.1:40123").unwrap();
        let cs = ConnectionString::local(&base, AccessKey::new(KEY));
        let text = cs.to_secret_string();
        assert_eq!(
            text,
            format!("Endpoint=http://127.0.0.1;Port=40123;AccessKey={KEY};Version=1.0;")
        );
        assert_eq!(parse(&text).unwrap(), cs);
    }

    #[test]
    fn hostile_input_gets_an_error_never_a_panic() {
        let long = "a".repeat(MAX_CONNECTION_STRING_LEN + 1);
        assert!(matches!(
            parse(&long),
            Err(ConnectionStringError::TooLong { .. })
        ));
        for s in [
            "=;=",
            "=x;y=",
            "Endpoint=https://a.b;=s3cr3t",
            "Endpoint=http://[::1;AccessKey=k",
            "Endpoint=https://é.example;AccessKey=ключ",
            "Endpoint=https://a.b\u{0};AccessKey=k",
            "Endpoint=https://a.b;AccessKey=k;Port=\u{FF10}",
            "\u{FEFF}Endpoint=https://a.b;AccessKey=k",
        ] {
            if let Err(e) = parse(s) {
                assert_no_key(&e);
                assert!(!e.to_string().is_empty());
            }
        }
        // Found by fuzzing: U+037E (Greek question mark) in a host normalizes to `;`.
        let err = parse("Endpoint=http://a\u{37e}b.example;AccessKey=k").unwrap_err();
        assert!(
            matches!(
                err,
                ConnectionStringError::InvalidUrl {
                    key: "Endpoint",
                    ..
                }
            ),
            "{err:?}"
        );
        // Unicode keys and hosts are fine.
        let cs = parse("Endpoint=https://é.example;AccessKey=ключ").unwrap();
        assert_eq!(cs.access_key.unwrap().as_bytes(), "ключ".as_bytes());
        // Long values are cut in errors.
        let err = parse(&format!(
            "Endpoint=https://a.b;AccessKey=k;Version={}",
            "9".repeat(500)
        ))
        .unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
