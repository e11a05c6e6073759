#!/usr/bin/env bash
# scripts/run.sh — build and run the Talkback fixture (the SignalR service with the test hub and the
# chat demo) on 127.0.0.1. It prints `listening on http://127.0.0.1:PORT` and its hub URLs, and runs
# until Ctrl-C. Open http://127.0.0.1:5000 for the browser demo (a chat and a live dashboard on
# the npm package talkback-signalr), which this script builds first with scripts/build-npm.sh
# when the wasm tools are there (scripts/wasm-setup.sh, scripts/browser-setup.sh); without them
# the page at / says how to build the package.
#
#   scripts/run.sh                 # port 5000 (or $PORT)
#   scripts/run.sh --port 0        # any free port; further arguments go to the fixture
#   SKIP_PACKAGE=1 scripts/run.sh  # do not (re)build the package
#   scripts/run.sh --redis         # two nodes on one Redis backplane (scripts/redis-demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (stable)" >&2; exit 1; }
# `--redis` without a URL: the two-node Redis backplane demo (scripts/redis-demo.sh, docs/backplane.md).
if [ "${1:-}" = "--redis" ] && [[ "${2:-}" != redis://* ]]; then shift; exec scripts/redis-demo.sh "$@"; fi

args=("$@")
has_port=0
for a in "${args[@]+"${args[@]}"}"; do
  case "$a" in --port|--port=*) has_port=1 ;; esac
done
if [ "$has_port" = 0 ]; then args=(--port "${PORT:-5000}" "${args[@]+"${args[@]}"}"); fi

# The demo page's package (client-wasm/npm/dist). The wasm32 toolchain is the one
# scripts/wasm-setup.sh recorded, else the active one.
if [ "${SKIP_PACKAGE:-0}" != 1 ]; then
  wasm_tc="$(sed -n 's/^WASM_RUSTUP_TOOLCHAIN=//p' "${WASM_ENV_FILE:-target/wasm-toolchain.env}" 2>/dev/null || true)"
  if command -v wasm-bindgen >/dev/null &&
     { [ -n "$wasm_tc" ] || rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; }; then
    echo "run.sh: building the npm package for the demo page (scripts/build-npm.sh; SKIP_PACKAGE=1 skips this)" >&2
    if ! ( if [ -n "$wasm_tc" ]; then export RUSTUP_TOOLCHAIN="$wasm_tc"; fi; scripts/build-npm.sh >&2 ); then
      echo "run.sh: building the package failed; the fixture runs anyway and its page at / says how to build it" >&2
    fi
  else
    echo "run.sh: no wasm32 target or wasm-bindgen, so the demo page's package is not built:" \
      "run scripts/wasm-setup.sh and scripts/browser-setup.sh, then scripts/build-npm.sh" >&2
  fi
fi

exec cargo run --release -p talkback-fixture -- "${args[@]}"
