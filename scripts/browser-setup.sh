#!/usr/bin/env bash
# browser-setup.sh — what running wasm tests in headless Chromium needs, idempotently and without
# prompts: Debian's chromium and chromium-driver (same version, needs root and the Debian mirror)
# and wasm-bindgen-cli (wasm-bindgen-test-runner) at exactly the version of the `wasm-bindgen`
# crate pinned in Cargo.toml. Run after scripts/wasm-setup.sh (which provides the wasm32 target).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
log() { printf '[browser-setup %s] %s\n' "$(date +%T)" "$*" >&2; }

# The CLI must match the crate exactly, so its version is read from the workspace manifest.
WASM_BINDGEN_VERSION="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml")"
if [ -z "$WASM_BINDGEN_VERSION" ]; then log "no pinned wasm-bindgen version in Cargo.toml"; exit 1; fi

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  log "chromium and chromedriver are installed"
else
  if [ "$(id -u)" != 0 ]; then log "installing chromium needs root"; exit 1; fi
  log "apt-get install chromium chromium-driver"
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
chromium_version="$(chromium --version 2>/dev/null | awk '{print $2}')"
driver_version="$(chromedriver --version 2>/dev/null | awk '{print $2}')"
if [ "$chromium_version" != "$driver_version" ]; then
  log "chromium $chromium_version and chromedriver $driver_version differ"; exit 1
fi

have_version() { command -v "$1" >/dev/null && [ "$("$1" --version 2>/dev/null | awk '{print $2}')" = "$2" ]; }
if have_version wasm-bindgen-test-runner "$WASM_BINDGEN_VERSION"; then
  log "wasm-bindgen-test-runner $WASM_BINDGEN_VERSION is installed"
else
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2 min)"
  # Not --locked: the CLI's own lockfile pins a webpki-roots version the registry does not serve.
  cargo install --quiet --force wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" >&2
fi
log "chromium $chromium_version, $(wasm-bindgen-test-runner --version)"
