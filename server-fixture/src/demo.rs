//! The browser demo at `/`: a chat (the `chat` hub) and a live dashboard (the `test` hub's
//! `InfiniteCounter` stream, `Echo` round trips and `/metrics`) written against the npm package
//! `talkback-signalr`.
//!
//! The page, its script and its style sheet are compiled into the fixture
//! (`server-fixture/assets/demo/`); the package itself is read from disk at each request, from
//! [`Config::demo_package_dir`](crate::Config::demo_package_dir) or, by default,
//! `client-wasm/npm/dist` of this source tree, so building the package (scripts/build-npm.sh)
//! while the fixture runs is enough. Without a built package, `/` answers a page that says how
//! to build it. The routes answer no CORS: only the page itself (same origin) uses them.

use crate::registry::Shared;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;

type App = Arc<Shared>;

const INDEX_HTML: &str = include_str!("../assets/demo/index.html");
const NOT_BUILT_HTML: &str = include_str!("../assets/demo/not-built.html");
const APP_JS: &str = include_str!("../assets/demo/app.js");
const STYLE_CSS: &str = include_str!("../assets/demo/style.css");

/// The largest package file served (the wasm module is far smaller).
const MAX_PACKAGE_FILE: u64 = 16 * 1024 * 1024;

/// The longest package file name served.
const MAX_FILE_NAME: usize = 128;

/// The demo's routes: `/`, `/demo/app.js`, `/demo/style.css` and `/demo/pkg/{file}` (the
/// package's files, one folder level, no hidden files).
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(index))
        .route("/demo/app.js", get(app_js))
        .route("/demo/style.css", get(style_css))
        .route("/demo/pkg/{file}", get(package_file))
}

/// Where the package is read from.
fn package_dir(shared: &Shared) -> PathBuf {
    shared.config.demo_package_dir.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../client-wasm/npm/dist"
        ))
    })
}

/// A response with `body`, its content type, and no caching (the package may be rebuilt).
fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`: the demo page, or how to build the package when it is not built.
async fn index(State(shared): State<App>) -> Response {
    let entry = package_dir(&shared).join("index.js");
    let built = tokio::fs::metadata(&entry).await.is_ok_and(|m| m.is_file());
    if built {
        asset("text/html; charset=utf-8", INDEX_HTML)
    } else {
        let page = NOT_BUILT_HTML.replace("{{DIR}}", &html_escape(&entry.display().to_string()));
        asset("text/html; charset=utf-8", page)
    }
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /demo/pkg/{file}`: one file of the built package, by a plain name (letters, digits,
/// `.`, `_`, `-`; not starting with `.`), so no path leaves the package folder.
async fn package_file(State(shared): State<App>, Path(file): Path<String>) -> Response {
    let plain = !file.is_empty()
        && file.len() <= MAX_FILE_NAME
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plain {
        return (StatusCode::NOT_FOUND, "no such package file").into_response();
    }
    let path = package_dir(&shared).join(&file);
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() && m.len() <= MAX_PACKAGE_FILE => {}
        Ok(m) if m.is_file() => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "package file too large").into_response()
        }
        _ => return (StatusCode::NOT_FOUND, "no such package file").into_response(),
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => asset(content_type(&file), bytes),
        Err(_) => (StatusCode::NOT_FOUND, "no such package file").into_response(),
    }
}

/// The content type of a package file, by its extension (`application/wasm` lets the browser
/// compile the module while it downloads).
fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json" | "map") => "application/json",
        Some("ts" | "md" | "txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_files_get_the_content_type_of_their_extension() {
        assert_eq!(content_type("talkback_wasm_bg.wasm"), "application/wasm");
        assert_eq!(content_type("index.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("package.json"), "application/json");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn markup_in_a_folder_name_is_escaped() {
        assert_eq!(html_escape("/a/<b>&\""), "/a/&lt;b&gt;&amp;&quot;");
    }
}
