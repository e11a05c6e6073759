#!/usr/bin/env bash
# The size floor of a browser package on the talkback-core engine: builds the example
# client-wasm/examples/engine_floor.rs (the whole sans-IO engine, both hub protocols, behind a
# thin wasm-bindgen driver; no client layer, futures or browser shell) exactly as
# scripts/build-npm.sh builds the package (wasm-release profile, std rebuilt for size,
# wasm-bindgen --target web, wasm-opt -Oz) and prints its sizes (raw / gzip / brotli).
# `--breakdown [--top N]` also sums its code by crate and module (scripts/wasm-size-breakdown.py).
# Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
. scripts/wasm-common.sh

wasm_release_build build -p talkback-wasm --example engine_floor
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/examples/engine_floor.wasm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$work" --out-name floor "$wasm"
wasm_opt_for_size "$work/floor_bg.wasm" "$work/floor.wasm" --converge --strip-producers
printf '%-34s %9s raw %9s gzip %9s brotli\n' "engine alone: wasm" $(size_of "$work/floor.wasm") \
    "engine alone: wasm-bindgen glue" $(size_of "$work/floor.js")
if [ "${1:-}" = --breakdown ]; then
    shift
    wasm-bindgen --target web --no-typescript --keep-debug --out-dir "$work" --out-name named "$wasm"
    wasm_opt_for_size "$work/named_bg.wasm" "$work/named.wasm" -g
    python3 scripts/wasm-size-breakdown.py "$work/named.wasm" "$@"
fi
