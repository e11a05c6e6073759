//! The hub URL as text: its check, and the small edits the engine makes to it (the negotiate
//! path, query pairs), without a URL library in the engine's path.
//!
//! A shell hands the engine an absolute URL. With the `url` feature (the native shell, the
//! fixture) it is first normalized by the `url` crate, the WHATWG URL Standard's parser: IDNA
//! hosts, percent-encoding, dot segments. Without it (the browser shell, which keeps the `url`
//! crate and its Unicode tables out of the wasm module) the browser's own `URL` parser has
//! already normalized it, and the engine only checks its shape: a scheme, `//` and a host.
//!
//! Either way the edits below are plain text edits on `scheme://authority/path?query#fragment`,
//! so both shells share them.

use std::borrow::Cow;

/// A hub URL that is not an absolute URL the engine can use. The text says why, in the words
/// of the `url` crate (`relative URL without a base`, `empty host`, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(Cow<'static, str>);

/// An absolute URL split into `scheme://authority`, path, query and fragment (each without its
/// leading `?` or `#`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// `scheme://authority`, as given.
    pub origin: &'a str,
    /// The path, empty or starting with `/`.
    pub path: &'a str,
    /// The query without its `?`, if there is a `?`.
    pub query: Option<&'a str>,
    /// The fragment without its `#`, if there is a `#`.
    pub fragment: Option<&'a str>,
}

impl Parts<'_> {
    /// The scheme in lower case (`http`, `wss`, ...).
    pub fn scheme(&self) -> String {
        let end = self.origin.find(':').unwrap_or(0);
        self.origin[..end].to_ascii_lowercase()
    }
}

/// The URL the engine works on: normalized by the `url` crate with the `url` feature, else
/// `url` itself once its shape is checked.
pub fn normalize(url: &str) -> Result<Cow<'_, str>, UrlError> {
    #[cfg(feature = "url")]
    {
        let parsed = url::Url::parse(url).map_err(|e| UrlError(e.to_string().into()))?;
        Ok(Cow::Owned(parsed.into()))
    }
    #[cfg(not(feature = "url"))]
    {
        split(url)?;
        Ok(Cow::Borrowed(url))
    }
}

/// Splits an absolute URL (`scheme://authority[/path][?query][#fragment]`), checking its shape:
/// a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), `//`, a host, balanced IPv6
/// brackets, no whitespace or control characters.
pub fn split(url: &str) -> Result<Parts<'_>, UrlError> {
    let err = |text: &'static str| Err(UrlError(Cow::Borrowed(text)));
    let Some((scheme, rest)) = url.split_once(':') else {
        return err("relative URL without a base");
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return err("relative URL without a base");
    }
    let Some(after) = rest.strip_prefix("//") else {
        return err("relative URL without a base");
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return err("invalid character");
    }
    let origin_len = scheme.len() + 3 + after.find(['/', '?', '#']).unwrap_or(after.len());
    let (origin, tail) = url.split_at(origin_len);
    let authority = &origin[scheme.len() + 3..];
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return err("empty host");
    }
    if host.starts_with('[') != host.contains(']') || host[1..].contains('[') {
        return err("invalid IPv6 address");
    }
    let (tail, fragment) = match tail.split_once('#') {
        Some((tail, fragment)) => (tail, Some(fragment)),
        None => (tail, None),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    Ok(Parts {
        origin,
        path,
        query,
        fragment,
    })
}

/// Joins parts back into a URL text.
pub fn join(parts: &Parts<'_>) -> String {
    let mut out = String::with_capacity(
        parts.origin.len()
            + parts.path.len()
            + parts.query.map_or(0, |q| q.len() + 1)
            + parts.fragment.map_or(0, |f| f.len() + 1),
    );
    out.push_str(parts.origin);
    out.push_str(parts.path);
    if let Some(query) = parts.query {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = parts.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The `key=value` pairs of a query, as written (not percent-decoded); a pair without `=` has
/// an empty value.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn absolute_urls_split_into_their_parts_and_join_back() {
        for url in [
            "http://h",
            "https://user:pw@h:8080/a/b/?x=1&y#frag",
            "http://[::1]:5000/hub",
            "ws://h?q",
            "http://h#f?not-query",
        ] {
            let parts = split(url).unwrap();
            assert_eq!(join(&parts), url);
        }
        let parts = split("HTTPS://h:1/p?q=1#f").unwrap();
        assert_eq!(parts.scheme(), "https");
        assert_eq!(
            (parts.origin, parts.path, parts.query, parts.fragment),
            ("HTTPS://h:1", "/p", Some("q=1"), Some("f"))
        );
        let parts = split("http://h#f?x").unwrap();
        assert_eq!((parts.path, parts.query), ("", None));
    }

    #[test]
    fn urls_that_are_not_absolute_or_have_no_host_are_refused_with_a_reason() {
        for (url, why) in [
            ("not a url", "relative URL without a base"),
            ("/hubs/chat", "relative URL without a base"),
            ("1http://h", "relative URL without a base"),
            ("mailto:a@b", "relative URL without a base"),
            ("http://", "empty host"),
            ("http:///path", "empty host"),
            ("http://u@:80/", "empty host"),
            ("http://[not a host/hubs", "invalid character"),
            ("http://[::1/hubs", "invalid IPv6 address"),
            ("http://h/a b", "invalid character"),
        ] {
            assert_eq!(split(url).unwrap_err().to_string(), why, "{url}");
        }
    }

    #[cfg(feature = "url")]
    #[test]
    fn with_the_url_feature_a_url_is_normalized_by_the_url_crate() {
        assert_eq!(
            normalize("HTTP://Bücher.example/a/../b c?q=ü").unwrap(),
            "http://xn--bcher-kva.example/b%20c?q=%C3%BC"
        );
        assert_eq!(normalize("http://h").unwrap(), "http://h/");
        assert!(normalize("/relative").is_err());
    }

    #[cfg(not(feature = "url"))]
    #[test]
    fn without_the_url_feature_a_url_is_only_checked() {
        assert_eq!(normalize("http://h").unwrap(), "http://h");
        assert_eq!(
            normalize("http://h/a b").unwrap_err().to_string(),
            "invalid character"
        );
    }

    #[test]
    fn query_pairs_are_split_as_written() {
        let pairs: Vec<_> = query_pairs("a=1&&b&c=x=y&").collect();
        assert_eq!(pairs, [("a", "1"), ("b", ""), ("c", "x=y")]);
    }
}
