//! The browser demo's routes (`server-fixture/src/demo.rs`): `/` with and without a built
//! package, the page's assets, and the package files, which never leave the package folder.
//! The page itself runs in headless Chromium in client-wasm/npm/test/demo.mjs.

mod kit;

use kit::*;
use std::path::{Path, PathBuf};
use talkback_fixture::{Config, Server};

/// A fresh folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("talkback-demo-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn serve_package(dir: &Path) -> Server {
    fixture(Config {
        demo_package_dir: Some(dir.to_path_buf()),
        ..Config::default()
    })
    .await
}

/// `GET {server}{path}`: status, content type and body.
async fn get(server: &Server, path: &str) -> (u16, String, Vec<u8>) {
    let response = within(http().get(format!("{}{path}", server.url())).send())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn without_a_built_package_the_root_says_how_to_build_it() {
    let dir = TempDir::new("empty");
    let server = serve_package(&dir.0.join("dist")).await;
    let (status, content_type, body) = get(&server, "/").await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(body.contains("scripts/build-npm.sh"), "{body}");
    assert!(body.contains("scripts/run.sh"), "{body}");
    assert!(body.contains(&format!(
        "{}",
        dir.0.join("dist").join("index.js").display()
    )));
    assert!(
        !body.contains("/demo/app.js"),
        "no page script without a package"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn with_a_built_package_the_root_serves_the_page_and_the_package_files() {
    let dir = TempDir::new("built");
    let entry = format!("export const built = {};\n", std::process::id());
    std::fs::write(dir.0.join("index.js"), &entry).unwrap();
    let wasm = b"\0asm\x01\0\0\0".to_vec();
    std::fs::write(dir.0.join("talkback_wasm_bg.wasm"), &wasm).unwrap();
    let server = serve_package(&dir.0).await;

    let (status, content_type, body) = get(&server, "/").await;
    let page = String::from_utf8(body).unwrap();
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(page.contains(r#"src="/demo/app.js""#), "{page}");
    let (status, content_type, body) = get(&server, "/demo/app.js").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("/demo/pkg/index.js"));
    let (status, content_type, _) = get(&server, "/demo/style.css").await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/css; charset=utf-8")
    );

    let (status, content_type, body) = get(&server, "/demo/pkg/index.js").await;
    assert_eq!(
        (status, content_type.as_str(), body),
        (200, "text/javascript; charset=utf-8", entry.into_bytes())
    );
    let (status, content_type, body) = get(&server, "/demo/pkg/talkback_wasm_bg.wasm").await;
    assert_eq!(
        (status, content_type.as_str(), body),
        (200, "application/wasm", wasm)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn package_file_names_never_leave_the_package_folder() {
    let dir = TempDir::new("escape");
    let package = dir.0.join("dist");
    std::fs::create_dir_all(package.join("nested")).unwrap();
    std::fs::write(package.join("index.js"), "export {};\n").unwrap();
    std::fs::write(package.join(".hidden"), "hidden").unwrap();
    std::fs::write(package.join("nested").join("inner.js"), "inner").unwrap();
    std::fs::write(dir.0.join("secret.txt"), "secret").unwrap();
    let server = serve_package(&package).await;
    for path in [
        "/demo/pkg/..%2Fsecret.txt",
        "/demo/pkg/%2E%2E%2Fsecret.txt",
        "/demo/pkg/..",
        "/demo/pkg/.hidden",
        "/demo/pkg/nested",
        "/demo/pkg/nested/inner.js",
        "/demo/pkg/nested%2Finner.js",
        "/demo/pkg/missing.js",
    ] {
        let (status, _, body) = get(&server, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("secret"), "{path}");
    }
    let long = format!("/demo/pkg/{}.js", "a".repeat(200));
    assert_eq!(get(&server, &long).await.0, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn the_demo_routes_answer_no_cors() {
    let dir = TempDir::new("cors");
    std::fs::write(dir.0.join("index.js"), "export {};\n").unwrap();
    let server = serve_package(&dir.0).await;
    for path in ["/", "/demo/app.js", "/demo/pkg/index.js"] {
        let response = within(
            http()
                .get(format!("{}{path}", server.url()))
                .header("Origin", "https://elsewhere.example")
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path}"
        );
    }
    server.shutdown().await;
}
