//! Azure SignalR Service: connection strings, access tokens, service URLs (feature `azure`).
//!
//! Shared by the clients (`talkback::azure`, which hold a connection string) and the fixture
//! (`talkback-fixture --azure`, which stands in for the service). Reference: `docs/protocol/azure.md`
//! and checklist items 94–99.
//!
//! # Notes for users of this module (where the semantics differ from the first contract)
//!
//! - **Audiences are port-less.** [`ConnectionString::client_audience`] is
//!   `{scheme}://{host}/client/?hub=<hub>` built from `Endpoint` without the port, as the Azure
//!   SDK writes it (`ServiceEndpoint.AudienceBaseUrl`), while [`ConnectionString::client_url`]
//!   carries the port (and `ClientEndpoint`, when set). They differ whenever there is a `Port`;
//!   [`TokenValidator`] ignores ports by default so the two match
//!   ([`TokenValidator::with_port_check`] turns the strict comparison on).
//! - **Audience matching** ([`audience_matches`]): scheme and host equal, port ignored, paths
//!   equal up to trailing `/` and ASCII case, and every query pair of `aud` present in the
//!   expected URL (so the REST forms "no query" and "with `api-version`" both match a request
//!   URL that also has `excluded=`). Pass the full URL the request reached (scheme, host, path
//!   and query) as `expected_audience`. When that URL has a `hub` query parameter, the token's
//!   `aud` must name the same hub: a client token for one hub never opens another.
//! - **Leeway** defaults to 5 minutes ([`DEFAULT_LEEWAY`], ASP.NET Core's default clock skew);
//!   tests that want expired tokens refused promptly use `with_leeway(Duration::ZERO)`.
//! - **`exp` and `aud` are required** by the validator; `nbf` is checked when present; `iat` is
//!   not checked.
//! - **`Port`** applies to `Endpoint` only; `ClientEndpoint` and `ServerEndpoint` keep their
//!   own ports (as in the SDK's parser). `ConnectionString::endpoint` is stored as parsed, port
//!   not applied: use [`ConnectionString::client_endpoint`] / [`ConnectionString::server_endpoint`].
//! - **`AuthType`** only lifts the `AccessKey` requirement for the Entra ID types (`aad`,
//!   `azure`, `azure.app`, `azure.msi`); an unknown `AuthType` still needs a key, as in the SDK.
//!   An empty `AccessKey=` is refused (the SDK would accept it and sign with an empty key).
//! - `Endpoint`, `ClientEndpoint` and `ServerEndpoint` may not carry credentials, a query or a
//!   fragment (the SDK's `Uri` would take them and build broken URLs). `Endpoint` keeps no
//!   trailing `/` on a path, even when URL normalization brings one back (`/x/.`).
//! - `ConnectionString` also has `client_id` and `tenant_id` (Entra ID, kept for display).
//! - Generated tokens carry no `kid` header (the SDK's is a per-process string hash that no
//!   validator uses); the header is exactly `{"alg":"HS256","typ":"JWT"}`.
//! - Added items: [`AccessKey::expose_secret`], [`ConnectionString::local`],
//!   [`ConnectionString::to_secret_string`], [`ConnectionString::server_url`],
//!   [`ConnectionString::server_audience`], [`ConnectionString::rest_url`], [`hub_path_name`],
//!   [`encode_path_segment`], [`TokenRequest`]'s builder methods, [`TokenError::is_rejection`].

mod connection_string;
mod endpoints;
mod token;

pub use connection_string::{
    AccessKey, ConnectionString, ConnectionStringError, MAX_CONNECTION_STRING_LEN,
};
pub use endpoints::{
    encode_path_segment, encode_query_value, hub_path_name, RestApiVersion, API_VERSION_2022_06_01,
};
pub use token::{
    audience_matches, generate_token, TokenError, TokenRequest, TokenValidator, ValidatedToken,
    DEFAULT_LEEWAY, DEFAULT_LIFETIME, MAX_TOKEN_LEN, NAME_ID_CLAIM, RESERVED_CLAIMS,
    USER_CLAIM_PREFIX, USER_ID_CLAIM,
};
