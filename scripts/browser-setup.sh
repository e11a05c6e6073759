#!/usr/bin/env bash
# browser-setup.sh — what running wasm tests in headless Chromium needs, idempotently and without
# prompts: Debian's chromium and chromium-driver (same version, needs root and the Debian mirror)
# and wasm-bindgen-cli (wasm-bindgen-test-runner) at exactly the version of the `wasm-bindgen`
# crate pinned in Cargo.toml. Run after scripts/wasm-setup.sh (which provides the wasm32 target).
#
# Then, optionally, headless Firefox for the same tests: Debian's firefox-esr and geckodriver
# (crates.io, pinned) in $GECKODRIVER_ROOT/bin (default /opt/geckodriver-<version>). geckodriver
# is kept off PATH on purpose: wasm-bindgen-test-runner takes a geckodriver it finds on PATH before
# chromedriver, which would move every Chromium test run to Firefox. A Firefox install that fails
# is logged and does not fail this script (scripts/wasm-browser-tests.sh then reports Firefox as
# skipped); FIREFOX=0 skips it.
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

# ------------------------------------------------------------------ Firefox (optional)
GECKODRIVER_VERSION=0.37.1
GECKODRIVER_ROOT="${GECKODRIVER_ROOT:-/opt/geckodriver-$GECKODRIVER_VERSION}"
firefox_setup() {
  if command -v firefox-esr >/dev/null; then
    log "firefox-esr is installed"
  else
    if [ "$(id -u)" != 0 ]; then log "installing firefox-esr needs root"; return 1; fi
    log "apt-get install firefox-esr"
    apt-get install -y -qq --no-install-recommends firefox-esr >/dev/null 2>&1 \
      || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends firefox-esr >/dev/null; } \
      || { log "apt-get install firefox-esr failed"; return 1; }
  fi
  if [ "$("$GECKODRIVER_ROOT/bin/geckodriver" --version 2>/dev/null | awk 'NR==1{print $2}')" = "$GECKODRIVER_VERSION" ]; then
    log "geckodriver $GECKODRIVER_VERSION is installed in $GECKODRIVER_ROOT/bin"
  else
    log "cargo install geckodriver $GECKODRIVER_VERSION into $GECKODRIVER_ROOT (about 4 min)"
    cargo install --quiet --locked --force --root "$GECKODRIVER_ROOT" geckodriver \
      --version "=$GECKODRIVER_VERSION" -j "${CARGO_BUILD_JOBS:-2}" >&2 \
      || { log "cargo install geckodriver failed"; return 1; }
  fi
  log "$(firefox-esr --version 2>/dev/null), geckodriver $GECKODRIVER_VERSION"
}
if [ "${FIREFOX:-1}" = 0 ]; then
  log "Firefox: not set up (FIREFOX=0)"
elif ! firefox_setup; then
  log "Firefox: not set up; its tests will be skipped (scripts/wasm-browser-tests.sh)"
fi
