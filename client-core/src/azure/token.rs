//! Azure SignalR access tokens: generation and validation (checklist items 96–99).
//!
//! Tokens are HS256 JWTs signed with the UTF-8 bytes of the access key (Azure/azure-signalr
//! `src/Microsoft.Azure.SignalR.Common/Utilities/AuthUtility.cs`): claims `aud`, `exp`, `iat`,
//! `nbf`, the user id as `asrs.s.uid`, and any custom claims; 1 hour by default; a token longer
//! than 4,096 characters is refused on both sides.
//!
//! Validation pins the algorithm to HS256 (`none`, HS384/HS512 and every asymmetric algorithm are
//! refused before any signature work), tries each configured key (rotation), checks `exp` and
//! `nbf` against the caller's clock with a leeway, and compares `aud` with the URL the request
//! reached, tolerating the differences the Azure SDKs produce (see [`audience_matches`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::AccessKey;

/// Longest token generated or accepted, in characters (the Azure SDK's `MaxTokenLength`).
pub const MAX_TOKEN_LEN: usize = 4096;

/// Default token lifetime (the SDK's `AccessTokenLifetime`).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Default clock skew allowed on `exp` and `nbf`: 5 minutes, ASP.NET Core's
/// `TokenValidationParameters.DefaultClockSkew`, which the service's JWT bearer validation uses.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// The claim that carries the user id in tokens the SDK writes.
pub const USER_ID_CLAIM: &str = "asrs.s.uid";

/// The .NET name-identifier claim (`ClaimTypes.NameIdentifier` as serialized in a JWT): the
/// user id of tokens from the legacy management path, read when `asrs.s.uid` is absent.
pub const NAME_ID_CLAIM: &str = "nameid";

/// Claim names a custom claim may not take; such a claim gets [`USER_CLAIM_PREFIX`] in front of
/// its name (Azure/azure-signalr `ClaimsUtility.cs`).
pub const RESERVED_CLAIMS: [&str; 11] = [
    "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash", "jti", "nonce",
];

/// The prefix for custom claims whose name is reserved.
pub const USER_CLAIM_PREFIX: &str = "asrs.u.";

/// What an access token is for.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    /// The `aud` claim: the client URL for client tokens, the request URL for REST calls.
    pub audience: String,
    /// The user id (`asrs.s.uid`), if any.
    pub user_id: Option<String>,
    /// How long the token is valid; [`DEFAULT_LIFETIME`] by default.
    pub lifetime: Duration,
    /// Extra claims, in order. A name used twice becomes a JSON array (as .NET writes it); a
    /// reserved name gets the `asrs.u.` prefix.
    pub claims: Vec<(String, Value)>,
}

impl TokenRequest {
    /// A request for `audience` with no user, the default lifetime and no extra claims.
    pub fn new(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            user_id: None,
            lifetime: DEFAULT_LIFETIME,
            claims: Vec::new(),
        }
    }

    /// Sets the user id.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }

    /// Sets the lifetime.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds a claim.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.push((name.into(), value.into()));
        self
    }
}

/// Why a token could not be made or was refused.
///
/// Grouped by who is at fault: the first group are the caller's mistakes when generating; the
/// rest are rejections of a presented token (the presenter's fault), which a service answers
/// with 401. No variant carries a key or the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    // --- the caller's (generation) ---
    /// The access key is the empty string.
    #[error("the access key is empty and cannot sign a token")]
    EmptyKey,
    /// The clock is before 1970 or the lifetime overflows.
    #[error("the token's times are out of range: {0}")]
    TimeOutOfRange(&'static str),
    /// The token would be, or is, longer than [`MAX_TOKEN_LEN`] characters (when generating,
    /// the caller's claims are too big; when validating, a rejection).
    #[error("the access token is {len} characters long; the limit is {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The JWT library failed to sign (should not happen for HS256).
    #[error("signing the token failed: {0}")]
    Signing(String),
    /// The validator has no keys.
    #[error("no access key is configured to validate tokens")]
    NoKeys,

    // --- the presenter's (validation) ---
    /// Not a JWT: wrong number of segments, bad Base64 or JSON, a claim of the wrong type.
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("the access token's algorithm {0:?} is not accepted; only HS256 is")]
    UnsupportedAlgorithm(String),
    /// No configured key produced this signature.
    #[error("the access token's signature does not match any access key")]
    BadSignature,
    /// A required claim (`exp`, `aud`) is absent.
    #[error("the access token has no {0:?} claim")]
    MissingClaim(&'static str),
    /// `exp` (plus leeway) is in the past.
    #[error("the access token expired at {expired_at} (Unix seconds)")]
    Expired {
        /// Its `exp`.
        expired_at: u64,
    },
    /// `nbf` (minus leeway) is in the future.
    #[error("the access token is not valid before {not_before} (Unix seconds)")]
    NotYetValid {
        /// Its `nbf`.
        not_before: u64,
    },
    /// `aud` is not the URL the token was presented to.
    #[error("the access token's audience {found:?} does not match {expected:?}")]
    WrongAudience {
        /// What the service expected (cut to a bounded length).
        expected: String,
        /// The token's `aud` (cut to a bounded length).
        found: String,
    },
}

impl TokenError {
    /// Whether this is a rejection of a presented token (401 material) rather than a caller's
    /// mistake while generating or configuring.
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            Self::EmptyKey | Self::TimeOutOfRange(_) | Self::Signing(_) | Self::NoKeys
        )
    }
}

const MAX_ECHO: usize = 200;

fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

fn unix_secs(t: SystemTime) -> Result<u64, TokenError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| TokenError::TimeOutOfRange("the clock is before 1970"))
}

/// Generates an HS256 access token signed with `key`'s UTF-8 bytes.
///
/// Claims: the custom claims (reserved names prefixed with `asrs.u.`, repeated names as arrays),
/// `asrs.s.uid` when a user id is set, then `aud`, `exp` (= `now` + lifetime), `iat` and `nbf`
/// (= `now`). Fails with [`TokenError::TooLong`] past 4,096 characters (checklist item 96).
pub fn generate_token(
    key: &AccessKey,
    req: &TokenRequest,
    now: SystemTime,
) -> Result<String, TokenError> {
    if key.is_empty() {
        return Err(TokenError::EmptyKey);
    }
    let iat = unix_secs(now)?;
    let exp = iat
        .checked_add(req.lifetime.as_secs())
        .filter(|e| *e <= i64::MAX as u64)
        .ok_or(TokenError::TimeOutOfRange("the lifetime overflows"))?;

    // BTreeMap only for grouping; the JSON object keeps first-seen order via `order`.
    let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (name, value) in &req.claims {
        let name = if RESERVED_CLAIMS.contains(&name.as_str()) {
            format!("{USER_CLAIM_PREFIX}{name}")
        } else {
            name.clone()
        };
        if req.user_id.is_some() && name == USER_ID_CLAIM {
            continue;
        }
        let entry = grouped.entry(name.clone()).or_default();
        if entry.is_empty() {
            order.push(name);
        }
        entry.push(value.clone());
    }
    let mut claims = Map::new();
    for name in order {
        let mut values = grouped.remove(&name).unwrap_or_default();
        let v = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        claims.insert(name, v);
    }
    if let Some(user) = &req.user_id {
        claims.insert(USER_ID_CLAIM.to_owned(), Value::String(user.clone()));
    }
    claims.insert("aud".to_owned(), Value::String(req.audience.clone()));
    claims.insert("exp".to_owned(), Value::from(exp));
    claims.insert("iat".to_owned(), Value::from(iat));
    claims.insert("nbf".to_owned(), Value::from(iat));

    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".to_owned());
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.as_bytes()))
        .map_err(|e| TokenError::Signing(e.to_string()))?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    Ok(token)
}

/// A token that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedToken {
    /// `asrs.s.uid`, else `nameid` (checklist item 98). Only string values count.
    pub user_id: Option<String>,
    /// The `aud` claim that matched.
    pub audience: String,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// Every claim of the payload, standard ones included.
    pub claims: Map<String, Value>,
}

/// Validates access tokens against one or more access keys (checklist items 97–99).
#[derive(Clone)]
pub struct TokenValidator {
    keys: Vec<AccessKey>,
    leeway: Duration,
    check_port: bool,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("keys", &self.keys.len())
            .field("leeway", &self.leeway)
            .field("check_port", &self.check_port)
            .finish()
    }
}

impl TokenValidator {
    /// A validator accepting tokens signed by any of `keys` (two at once during a rotation),
    /// with [`DEFAULT_LEEWAY`] and port differences in `aud` ignored. Empty keys are dropped.
    pub fn new(keys: Vec<AccessKey>) -> Self {
        Self {
            keys: keys.into_iter().filter(|k| !k.is_empty()).collect(),
            leeway: DEFAULT_LEEWAY,
            check_port: false,
        }
    }

    /// Sets the clock skew allowed on `exp` and `nbf` (whole seconds count).
    pub fn with_leeway(mut self, d: Duration) -> Self {
        self.leeway = d;
        self
    }

    /// Makes `aud` match only when its port equals the expected URL's (default ports
    /// normalized). Off by default: the Azure SDK writes port-less audiences even for endpoints
    /// with a `Port`.
    pub fn with_port_check(mut self, on: bool) -> Self {
        self.check_port = on;
        self
    }

    /// The number of keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Validates `token` presented at `expected_audience` (the URL the request reached) at time
    /// `now`.
    ///
    /// Order: length, shape, algorithm (HS256 only), signature against each key, claims' types,
    /// `exp` (required), `nbf` (optional), `aud` (required, see [`audience_matches`]).
    pub fn validate(
        &self,
        token: &str,
        expected_audience: &str,
        now: SystemTime,
    ) -> Result<ValidatedToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        if self.keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "a JWT has three '.'-separated segments".to_owned(),
            ));
        };
        // Read `alg` ourselves first, so that `none` and unknown names get a precise error
        // and no other algorithm ever reaches the signature check.
        let header_json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header.trim_end_matches('='))
            .map_err(|_| TokenError::Malformed("the header is not Base64url".to_owned()))?;
        let header_value: Value = serde_json::from_slice(&header_json)
            .map_err(|_| TokenError::Malformed("the header is not JSON".to_owned()))?;
        let alg = header_value
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::Malformed("the header has no \"alg\" string".to_owned()))?;
        if alg != "HS256" {
            return Err(TokenError::UnsupportedAlgorithm(echo(alg)));
        }

        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;

        let mut claims: Option<Map<String, Value>> = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<Map<String, Value>>(
                token,
                &DecodingKey::from_secret(key.as_bytes()),
                &validation,
            ) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => continue,
                    jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                    | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => {
                        return Err(TokenError::UnsupportedAlgorithm(echo(alg)))
                    }
                    _ => return Err(TokenError::Malformed(malformed_reason(&e))),
                },
            }
        }
        let claims = claims.ok_or(TokenError::BadSignature)?;

        let now = unix_secs(now)?;
        let leeway = self.leeway.as_secs();
        let exp = numeric_claim(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired { expired_at: exp });
        }
        if let Some(nbf) = numeric_claim(&claims, "nbf")? {
            if now.saturating_add(leeway) < nbf {
                return Err(TokenError::NotYetValid { not_before: nbf });
            }
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            None => return Err(TokenError::MissingClaim("aud")),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return Err(TokenError::Malformed(
                    "\"aud\" is neither a string nor an array of strings".to_owned(),
                ))
            }
        };
        let Some(audience) = audiences
            .iter()
            .find(|a| audience_matches(a, expected_audience, self.check_port))
        else {
            return Err(TokenError::WrongAudience {
                expected: echo(expected_audience),
                found: echo(&audiences.join(" ")),
            });
        };
        let audience = (*audience).to_owned();
        let user_id = [USER_ID_CLAIM, NAME_ID_CLAIM]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .map(str::to_owned);
        Ok(ValidatedToken {
            user_id,
            audience,
            expires_at: exp,
            claims,
        })
    }
}

fn malformed_reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidToken => "not a JWT".to_owned(),
        K::Base64(_) => "a segment is not Base64url".to_owned(),
        K::Json(_) => "the header or payload is not a JSON object".to_owned(),
        K::Utf8(_) => "the payload is not UTF-8".to_owned(),
        _ => "unreadable".to_owned(),
    }
}

/// A NumericDate claim: a non-negative JSON number (fractions truncated, as .NET reads them).
fn numeric_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0) {
                Ok(Some(f as u64))
            } else {
                Err(TokenError::Malformed(format!(
                    "{name:?} is not a non-negative number"
                )))
            }
        }
        Some(_) => Err(TokenError::Malformed(format!("{name:?} is not a number"))),
    }
}

/// Whether a token's `aud` matches the URL a request reached, as a tolerant Azure SignalR
/// service does (checklist items 97 and 99):
///
/// - scheme and host equal (case-insensitive);
/// - the port ignored unless `check_port` (the SDK writes port-less audiences; with the check
///   on, a missing port means the scheme's default);
/// - paths equal ignoring trailing `/` and ASCII case (ASP.NET routing is case-insensitive);
/// - every query pair of `aud` present in the expected URL's query (so an `aud` without a query,
///   as the REST docs write it, and one with `api-version`, as the .NET SDK writes it, both
///   match a request URL that also carries `excluded=...`);
/// - when the expected URL has a `hub` query parameter (client URLs), `aud` must name the same
///   hub (case-insensitive), so a client token for one hub does not open another.
///
/// Neither side may carry a fragment or credentials.
pub fn audience_matches(aud: &str, expected: &str, check_port: bool) -> bool {
    let (Ok(a), Ok(e)) = (url::Url::parse(aud), url::Url::parse(expected)) else {
        return false;
    };
    if a.fragment().is_some() || !a.username().is_empty() || a.password().is_some() {
        return false;
    }
    if a.scheme() != e.scheme() || a.host() != e.host() {
        return false;
    }
    if check_port && a.port_or_known_default() != e.port_or_known_default() {
        return false;
    }
    let trim = |p: &str| p.trim_end_matches('/').to_ascii_lowercase();
    if trim(a.path()) != trim(e.path()) {
        return false;
    }
    let e_pairs: Vec<(String, String)> =
        e.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
    for (k, v) in a.query_pairs() {
        let found = e_pairs.iter().any(|(ek, ev)| {
            ek.eq_ignore_ascii_case(&k)
                && if k.eq_ignore_ascii_case("hub") {
                    ev.to_lowercase() == v.to_lowercase()
                } else {
                    *ev == v
                }
        });
        if !found {
            return false;
        }
    }
    if let Some((_, hub)) = e_pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case("hub")) {
        let named = a
            .query_pairs()
            .any(|(k, v)| k.eq_ignore_ascii_case("hub") && v.to_lowercase() == hub.to_lowercase());
        if !named {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
    const AUD: &str = "http://localhost/client/?hub=chat";

    fn key() -> AccessKey {
        AccessKey::new(KEY)
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn validator() -> TokenValidator {
        TokenValidator::new(vec![key()]).with_leeway(Duration::ZERO)
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn payload(token: &str) -> Value {
        let p = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    }

    fn header(token: &str) -> Value {
        let p = token.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .unwrap(),
        )
        .unwrap()
    }

    fn hmac_sign(alg: Algorithm, header: &Value, claims: &Value, secret: &[u8]) -> String {
        let mut h = Header::new(alg);
        h.typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    /// Checklist item 96: HS256 over the key's UTF-8 bytes, with aud/exp/iat/nbf and 1 h default.
    #[test]
    fn a_generated_token_is_hs256_with_aud_exp_iat_nbf_and_a_one_hour_lifetime() {
        let token = generate_token(&key(), &TokenRequest::new(AUD), t0()).unwrap();
        assert_eq!(header(&token), json!({"alg": "HS256", "typ": "JWT"}));
        let p = payload(&token);
        let now = 1_800_000_000u64;
        assert_eq!(
            p,
            json!({"aud": AUD, "exp": now + 3600, "iat": now, "nbf": now})
        );
        // Signed with the UTF-8 bytes of the key string, not its Base64 decoding: an
        // independent decode with exactly those bytes accepts it.
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.set_audience(&[AUD]);
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(KEY.as_bytes()), &v)
            .unwrap();
        let b64_decoded = base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .unwrap();
        assert!(
            jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(&b64_decoded), &v)
                .is_err()
        );
    }

    /// Checklist items 96 and 98: user id as `asrs.s.uid`, custom claims kept, reserved names
    /// prefixed, repeated names as arrays.
    #[test]
    fn user_id_and_custom_claims_are_written_and_reserved_names_are_prefixed() {
        let req = TokenRequest::new(AUD)
            .user_id("alice")
            .lifetime(Duration::from_secs(60))
            .claim("role", "admin")
            .claim("role", "ops")
            .claim("exp", 1)
            .claim("asrs.s.uid", "mallory");
        let token = generate_token(&key(), &req, t0()).unwrap();
        let p = payload(&token);
        assert_eq!(p["asrs.s.uid"], "alice");
        assert_eq!(p["role"], json!(["admin", "ops"]));
        assert_eq!(p["asrs.u.exp"], 1);
        assert_eq!(p["exp"], 1_800_000_060u64);
        let v = validator().validate(&token, AUD, t0()).unwrap();
        assert_eq!(v.user_id.as_deref(), Some("alice"));
        assert_eq!(v.expires_at, 1_800_000_060);
        assert_eq!(v.audience, AUD);
        assert_eq!(v.claims["role"], json!(["admin", "ops"]));
    }

    /// Checklist item 98: `nameid` is the fallback user id.
    #[test]
    fn the_user_id_falls_back_to_nameid() {
        let req = TokenRequest::new(AUD).claim("nameid", "bob");
        let token = generate_token(&key(), &req, t0()).unwrap();
        assert_eq!(
            validator()
                .validate(&token, AUD, t0())
                .unwrap()
                .user_id
                .as_deref(),
            Some("bob")
        );
        let both = TokenRequest::new(AUD)
            .claim("nameid", "bob")
            .user_id("alice");
        let token = generate_token(&key(), &both, t0()).unwrap();
        assert_eq!(
            validator()
                .validate(&token, AUD, t0())
                .unwrap()
                .user_id
                .as_deref(),
            Some("alice")
        );
        let none = generate_token(&key(), &TokenRequest::new(AUD), t0()).unwrap();
        assert_eq!(
            validator().validate(&none, AUD, t0()).unwrap().user_id,
            None
        );
    }

    /// Checklist item 96: the 4,096-character limit on both sides.
    #[test]
    fn tokens_over_4096_characters_are_refused_on_both_sides() {
        let req = TokenRequest::new(AUD).claim("blob", "x".repeat(4000));
        assert!(matches!(
            generate_token(&key(), &req, t0()),
            Err(TokenError::TooLong { .. })
        ));
        let five_k = "a".repeat(5000);
        assert_eq!(
            validator().validate(&five_k, AUD, t0()),
            Err(TokenError::TooLong {
                len: 5000,
                max: 4096
            })
        );
        // A correctly signed 5,000-character token is refused too, before any work.
        let claims = json!({"aud": AUD, "exp": 1_900_000_000u64, "blob": "y".repeat(3700)});
        let big = hmac_sign(Algorithm::HS256, &json!({}), &claims, KEY.as_bytes());
        assert!(big.len() > 4096 && big.len() < 5100, "{}", big.len());
        assert!(matches!(
            validator().validate(&big, AUD, t0()),
            Err(TokenError::TooLong { .. })
        ));
    }

    /// Checklist item 97: a forged signature is refused.
    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let forged = generate_token(
            &AccessKey::new("not-the-key"),
            &TokenRequest::new(AUD),
            t0(),
        )
        .unwrap();
        assert_eq!(
            validator().validate(&forged, AUD, t0()),
            Err(TokenError::BadSignature)
        );
        // A valid token whose payload was swapped keeps a signature that no longer matches.
        let good = generate_token(&key(), &TokenRequest::new(AUD), t0()).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = b64(&json!({"aud": AUD, "exp": 1_900_000_000u64, "asrs.s.uid": "admin"}));
        parts[1] = &evil;
        assert_eq!(
            validator().validate(&parts.join("."), AUD, t0()),
            Err(TokenError::BadSignature)
        );
        // An empty or truncated signature as well.
        let bare = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(
            validator().validate(&bare, AUD, t0()),
            Err(TokenError::BadSignature)
        );
    }

    /// Checklist item 97: `alg: none` is refused, with or without a signature.
    #[test]
    fn alg_none_is_refused() {
        let claims = b64(&json!({"aud": AUD, "exp": 1_900_000_000u64}));
        for alg in ["none", "None", "NONE", ""] {
            let h = b64(&json!({"alg": alg, "typ": "JWT"}));
            for tail in ["", "AAAA"] {
                let t = format!("{h}.{claims}.{tail}");
                assert_eq!(
                    validator().validate(&t, AUD, t0()),
                    Err(TokenError::UnsupportedAlgorithm(alg.to_owned()))
                );
            }
        }
    }

    /// Checklist item 97: HS512 and RS256 headers are refused even when the HMAC is right.
    #[test]
    fn hs512_and_rs256_headers_are_refused() {
        let claims = json!({"aud": AUD, "exp": 1_900_000_000u64});
        for alg in [Algorithm::HS512, Algorithm::HS384] {
            let t = hmac_sign(alg, &json!({}), &claims, KEY.as_bytes());
            assert!(matches!(
                validator().validate(&t, AUD, t0()),
                Err(TokenError::UnsupportedAlgorithm(_))
            ));
        }
        // RS256 confusion: an RS256 header over an HMAC made with the key as if it were a
        // public key. It must not reach any verifier.
        let h = b64(&json!({"alg": "RS256", "typ": "JWT"}));
        let p = b64(&claims);
        let hs = hmac_sign(Algorithm::HS256, &json!({}), &claims, KEY.as_bytes());
        let sig = hs.rsplit('.').next().unwrap();
        let t = format!("{h}.{p}.{sig}");
        assert_eq!(
            validator().validate(&t, AUD, t0()),
            Err(TokenError::UnsupportedAlgorithm("RS256".into()))
        );
        for alg in ["ES256", "PS256", "EdDSA", "HS256 ", "hs256", "HS256\u{0}"] {
            let t = format!("{}.{p}.{sig}", b64(&json!({"alg": alg})));
            assert!(
                matches!(
                    validator().validate(&t, AUD, t0()),
                    Err(TokenError::UnsupportedAlgorithm(_))
                ),
                "{alg}"
            );
        }
    }

    /// Checklist item 97: `exp` is required and checked, with the leeway.
    #[test]
    fn an_expired_token_is_refused_and_the_leeway_is_honoured() {
        let req = TokenRequest::new(AUD).lifetime(Duration::from_secs(60));
        let token = generate_token(&key(), &req, t0()).unwrap();
        let later = t0() + Duration::from_secs(61);
        assert_eq!(
            validator().validate(&token, AUD, later),
            Err(TokenError::Expired {
                expired_at: 1_800_000_060
            })
        );
        assert!(validator()
            .validate(&token, AUD, t0() + Duration::from_secs(60))
            .is_ok());
        let lenient = validator().with_leeway(Duration::from_secs(10));
        assert!(lenient.validate(&token, AUD, later).is_ok());
        assert!(lenient
            .validate(&token, AUD, t0() + Duration::from_secs(71))
            .is_err());
        // The default leeway is 5 minutes.
        let default = TokenValidator::new(vec![key()]);
        assert!(default
            .validate(&token, AUD, t0() + Duration::from_secs(360))
            .is_ok());
        assert!(default
            .validate(&token, AUD, t0() + Duration::from_secs(361))
            .is_err());
        // No exp at all.
        let t = hmac_sign(
            Algorithm::HS256,
            &json!({}),
            &json!({"aud": AUD}),
            KEY.as_bytes(),
        );
        assert_eq!(
            validator().validate(&t, AUD, t0()),
            Err(TokenError::MissingClaim("exp"))
        );
        for bad in [json!("1900000000"), json!(-5), json!(null), json!([1])] {
            let t = hmac_sign(
                Algorithm::HS256,
                &json!({}),
                &json!({"aud": AUD, "exp": bad}),
                KEY.as_bytes(),
            );
            assert!(
                matches!(
                    validator().validate(&t, AUD, t0()),
                    Err(TokenError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    /// Checklist item 97: a token used before `nbf` is refused.
    #[test]
    fn a_not_yet_valid_token_is_refused() {
        let token = generate_token(
            &key(),
            &TokenRequest::new(AUD),
            t0() + Duration::from_secs(100),
        )
        .unwrap();
        assert_eq!(
            validator().validate(&token, AUD, t0()),
            Err(TokenError::NotYetValid {
                not_before: 1_800_000_100
            })
        );
        assert!(validator()
            .with_leeway(Duration::from_secs(100))
            .validate(&token, AUD, t0())
            .is_ok());
    }

    /// Checklists items 97 and 99: wrong audiences are refused; port and query differences the
    /// SDKs produce are tolerated.
    #[test]
    fn audiences_match_with_or_without_port_and_query_but_not_another_url() {
        let ok = |aud: &str, expected: &str| audience_matches(aud, expected, false);
        // Client URLs: the port-less audience the SDK writes vs a URL with a port.
        assert!(ok(
            "http://localhost/client/?hub=chat",
            "http://localhost:8888/client/?hub=chat"
        ));
        assert!(ok(
            "http://localhost/client?hub=Chat",
            "http://LOCALHOST:8888/client/?hub=chat&asrs.op=%2Fchat"
        ));
        assert!(!ok(
            "http://localhost/client/?hub=other",
            "http://localhost/client/?hub=chat"
        ));
        assert!(!ok(
            "http://localhost/client/",
            "http://localhost/client/?hub=chat"
        ));
        assert!(!ok(
            "http://localhost/server/?hub=chat",
            "http://localhost/client/?hub=chat"
        ));
        assert!(!ok(
            "https://localhost/client/?hub=chat",
            "http://localhost/client/?hub=chat"
        ));
        assert!(!ok(
            "http://evil.example/client/?hub=chat",
            "http://localhost/client/?hub=chat"
        ));
        assert!(!ok(
            "http://localhost.evil/client/?hub=chat",
            "http://localhost/client/?hub=chat"
        ));
        // REST: the Learn form (no query) and the .NET SDK form (api-version, no excluded).
        let req = "https://x.service.signalr.net/api/hubs/chat/:send?api-version=2022-06-01&excluded=a&excluded=b";
        assert!(ok("https://x.service.signalr.net/api/hubs/chat/:send", req));
        assert!(ok(
            "https://x.service.signalr.net/api/hubs/chat/:send?api-version=2022-06-01",
            req
        ));
        assert!(ok(
            "https://x.service.signalr.net:443/api/hubs/chat/:send/",
            req
        ));
        assert!(!ok(
            "https://x.service.signalr.net/api/hubs/chat/:send?api-version=2021-01-01",
            req
        ));
        assert!(!ok("https://x.service.signalr.net/api/hubs/chat", req));
        assert!(!ok(
            "https://x.service.signalr.net/api/hubs/chat/:send?excluded=c",
            req
        ));
        // Port check on request.
        assert!(audience_matches("http://h:80/a", "http://h/a", true));
        assert!(!audience_matches("http://h/a", "http://h:8888/a", true));
        // Garbage never matches.
        for junk in [
            "",
            " ",
            "not a url",
            "http://",
            "/client/?hub=chat",
            "http://u:p@localhost/client/?hub=chat",
            "http://localhost/client/?hub=chat#x",
        ] {
            assert!(!ok(junk, AUD), "{junk:?}");
        }
        // Through the validator.
        let token = generate_token(&key(), &TokenRequest::new(AUD), t0()).unwrap();
        assert!(matches!(
            validator().validate(&token, "http://localhost/client/?hub=other", t0()),
            Err(TokenError::WrongAudience { .. })
        ));
        assert!(validator()
            .validate(&token, "http://localhost:8888/client/?hub=chat", t0())
            .is_ok());
        assert!(validator()
            .with_port_check(true)
            .validate(&token, "http://localhost:8888/client/?hub=chat", t0())
            .is_err());
        let multi = hmac_sign(
            Algorithm::HS256,
            &json!({}),
            &json!({"aud": ["http://x/", AUD], "exp": 1_900_000_000u64}),
            KEY.as_bytes(),
        );
        assert_eq!(
            validator().validate(&multi, AUD, t0()).unwrap().audience,
            AUD
        );
        let no_aud = hmac_sign(
            Algorithm::HS256,
            &json!({}),
            &json!({"exp": 1_900_000_000u64}),
            KEY.as_bytes(),
        );
        assert_eq!(
            validator().validate(&no_aud, AUD, t0()),
            Err(TokenError::MissingClaim("aud"))
        );
    }

    /// Checklist item 97 (rotation): two keys valid at once.
    #[test]
    fn tokens_from_either_key_pass_during_a_rotation() {
        let old = AccessKey::new("old-key");
        let new = AccessKey::new("new-key");
        let both = TokenValidator::new(vec![old.clone(), new.clone()]);
        for k in [&old, &new] {
            let t = generate_token(k, &TokenRequest::new(AUD), t0()).unwrap();
            assert!(both.validate(&t, AUD, t0()).is_ok());
        }
        let only_new = TokenValidator::new(vec![new]);
        let t = generate_token(&old, &TokenRequest::new(AUD), t0()).unwrap();
        assert_eq!(
            only_new.validate(&t, AUD, t0()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            TokenValidator::new(vec![]).validate(&t, AUD, t0()),
            Err(TokenError::NoKeys)
        );
        assert_eq!(
            generate_token(&AccessKey::new(""), &TokenRequest::new(AUD), t0()),
            Err(TokenError::EmptyKey)
        );
    }

    #[test]
    fn malformed_tokens_get_an_error_never_a_panic() {
        let h = b64(&json!({"alg": "HS256"}));
        for t in [
            "".to_owned(),
            " ".to_owned(),
            ".".to_owned(),
            "..".to_owned(),
            "...".to_owned(),
            "a.b.c".to_owned(),
            format!("{h}.!!!.sig"),
            format!("{h}.{}.sig", b64(&json!([1, 2]))),
            format!("{h}..sig"),
            format!("{}.e30.sig", b64(&json!("HS256"))),
            format!("{}.e30.sig", b64(&json!({"alg": 256}))),
            "eyJhbGciOiJIUzI1NiJ9.eyJ9.x".to_owned(),
            "\u{1F600}.\u{1F600}.\u{1F600}".to_owned(),
            "Bearer eyJ".to_owned(),
        ] {
            let err = validator().validate(&t, AUD, t0()).unwrap_err();
            assert!(err.is_rejection(), "{t:?}: {err:?}");
            assert!(!err.to_string().contains(KEY));
        }
    }

    #[test]
    fn names_with_injection_characters_unicode_or_only_whitespace_round_trip_as_data() {
        for user in [
            "",
            " ",
            "\t\n",
            "ünïcödé 用户 🚀",
            "\"}, \"admin\": true, {\"",
            "a\u{0}b",
            "../../etc",
            "<script>",
            "x;y=z&hub=admin",
        ] {
            let req = TokenRequest::new(AUD).user_id(user).claim(user, user);
            let token = generate_token(&key(), &req, t0()).unwrap();
            let v = validator().validate(&token, AUD, t0()).unwrap();
            assert_eq!(v.user_id.as_deref(), Some(user));
            assert!(v.claims.get("admin").is_none());
        }
        // Hub names with the same characters never widen the audience.
        for hub in ["admin&hub=chat", "chat#", "chat%26hub%3Dadmin", "", " "] {
            let aud = format!("http://localhost/client/?hub={hub}");
            assert!(
                !audience_matches(&aud, AUD, false) || hub == "chat",
                "{hub:?}"
            );
        }
    }
}
