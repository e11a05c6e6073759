#!/usr/bin/env bash
# wasm-marginal-size.sh — what talkback-wasm's Rust API adds to a Rust wasm app that already uses
# serde, serde_json and web-sys. Writes a small app to a temporary directory (its own WebSocket
# and serde_json messages; with the feature `talkback`, also a hub connection: builder with
# automatic reconnect, `on`, `start`, a typed `invoke` and `send`), builds it without and with
# talkback-wasm (opt-level "z", LTO, one codegen unit, panic=abort; wasm-bindgen --target web;
# wasm-opt -Oz from npm's binaryen@132 as scripts/build-npm.sh installs it) and prints both
# sizes (raw / gzip / brotli) and the difference. Honours CARGO_TARGET_DIR and RUSTUP_TOOLCHAIN.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$target_dir/marginal-size"
app="$(mktemp -d)"
trap 'rm -rf "$app"' EXIT
mkdir -p "$app/src"
cp Cargo.lock "$app/"   # the workspace's versions
cat >"$app/Cargo.toml" <<TOML
[package]
name = "marginal-app"
version = "0.0.0"
edition = "2021"
publish = false
[lib]
crate-type = ["cdylib"]
[features]
talkback = ["dep:talkback-wasm"]
[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
wasm-bindgen = "=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)"
wasm-bindgen-futures = "0.4"
web-sys = { version = "0.3", features = ["WebSocket", "MessageEvent", "BinaryType", "console"] }
talkback-wasm = { path = "$ROOT/client-wasm", optional = true }
[profile.release]
opt-level = "z"
lto = true
codegen-units = 1
panic = "abort"
debug = false
TOML
cat >"$app/src/lib.rs" <<'RS'
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[derive(Serialize, Deserialize, Debug)]
struct Message {
    user: String,
    text: String,
    n: f64,
}

#[wasm_bindgen]
pub fn run(url: &str) -> Result<(), JsValue> {
    let ws = web_sys::WebSocket::new(url)?;
    ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
    let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(|e: web_sys::MessageEvent| {
        if let Some(text) = e.data().as_string() {
            match serde_json::from_str::<Message>(&text) {
                Ok(m) => web_sys::console::log_1(&format!("{} says {} ({})", m.user, m.text, m.n).into()),
                Err(err) => web_sys::console::log_1(&err.to_string().into()),
            }
        }
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let hello = Message { user: "me".into(), text: "hi".into(), n: 1.5 };
    let _ = ws.send_with_str(&serde_json::to_string(&hello).unwrap());
    #[cfg(feature = "talkback")]
    hub(url.to_owned());
    Ok(())
}

#[cfg(feature = "talkback")]
fn hub(url: String) {
    use talkback_wasm::{HubConnectionBuilder, Protocol};
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(conn) = HubConnectionBuilder::new(url)
            .with_automatic_reconnect()
            .with_protocol(Protocol::Json)
            .build()
        else {
            return;
        };
        conn.on("ReceiveMessage", |m: Message| web_sys::console::log_1(&m.text.into()));
        if conn.start().await.is_ok() {
            let m = Message { user: "a".into(), text: "b".into(), n: 2.0 };
            let echoed: Result<Message, _> = conn.invoke("Echo", (m,)).await;
            web_sys::console::log_1(&format!("{echoed:?}").into());
            let _ = conn.send("Send", ("a", "b")).await;
        }
    });
}
RS

. "$ROOT/scripts/wasm-common.sh"
declare -A wasm js
for v in base talkback; do
    features=()
    [ "$v" = talkback ] && features=(--features talkback)
    (cd "$app" && cargo build --quiet --release --target wasm32-unknown-unknown "${features[@]}")
    out="$app/out-$v"
    wasm-bindgen --target web --no-typescript --out-dir "$out" \
        "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/marginal_app.wasm"
    wasm_opt_for_size "$out/marginal_app_bg.wasm" "$out/marginal_app_bg.wasm" --converge --strip-producers
    wasm[$v]="$(size_of "$out/marginal_app_bg.wasm")"
    js[$v]="$(size_of "$out/marginal_app.js")"
done
row() { printf '%-34s %9s raw %9s gzip %9s brotli\n' "$@"; }
read -r wr wg wb <<<"${wasm[base]}"; row "app (serde_json, web-sys): wasm" "$wr" "$wg" "$wb"
read -r tr tg tb <<<"${wasm[talkback]}"; row "app + talkback-wasm: wasm" "$tr" "$tg" "$tb"
row "talkback-wasm adds: wasm" $((tr - wr)) $((tg - wg)) $((tb - wb))
read -r jr jg jb <<<"${js[base]}"; read -r kr kg kb <<<"${js[talkback]}"
row "talkback-wasm adds: JS glue" $((kr - jr)) $((kg - jg)) $((kb - jb))
