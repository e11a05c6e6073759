#!/usr/bin/env bash
# wasm-browser-tests.sh — talkback-wasm's runtime and client tests in headless Chromium, against a
# talkback-fixture this script starts on loopback (an OS-chosen port) and stops when it exits.
#
# The fixture's URL reaches the wasm tests at compile time (TALKBACK_FIXTURE_URL, read with
# option_env!). Needs the wasm32 target (scripts/wasm-setup.sh) and Chromium, chromedriver and
# wasm-bindgen-test-runner (scripts/browser-setup.sh). Honours CARGO_TARGET_DIR and, like
# scripts/test.sh, the toolchain recorded in $WASM_ENV_FILE (default target/wasm-toolchain.env).
# TALKBACK_FIXTURE_BIN=path uses that fixture binary instead of building one. Extra arguments go
# to `cargo test` (for example a test name filter after `--`).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
log() { printf '[wasm-browser-tests %s] %s\n' "$(date +%T)" "$*" >&2; }

WASM_ENV_FILE="${WASM_ENV_FILE:-$ROOT/target/wasm-toolchain.env}"
WASM_TC=""
if [ -f "$WASM_ENV_FILE" ]; then WASM_TC="$(sed -n 's/^WASM_RUSTUP_TOOLCHAIN=//p' "$WASM_ENV_FILE")"; fi

# The fixture is a host binary: built with the default toolchain, in the same target dir,
# unless TALKBACK_FIXTURE_BIN names one already built (as the interop step does).
if [ -n "${TALKBACK_FIXTURE_BIN:-}" ]; then
  FIXTURE_BIN="$TALKBACK_FIXTURE_BIN"
else
  cargo build --quiet -p talkback-fixture
  TARGET_DIR="${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}"
  FIXTURE_BIN="$TARGET_DIR/debug/talkback-fixture"
fi
[ -x "$FIXTURE_BIN" ] || { log "no fixture binary at $FIXTURE_BIN"; exit 1; }

WORK="$(mktemp -d)"
FIXTURE_PID=""
cleanup() {
  if [ -n "$FIXTURE_PID" ] && kill -0 "$FIXTURE_PID" 2>/dev/null; then
    kill "$FIXTURE_PID" 2>/dev/null || true
    # Give it a moment to shut down cleanly, then make sure it is gone.
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$FIXTURE_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$FIXTURE_PID" 2>/dev/null || true
    wait "$FIXTURE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stateful reconnect is allowed for the client tests that ask for it (tests/client.rs).
"$FIXTURE_BIN" --port 0 --stateful-reconnect >"$WORK/fixture.out" 2>"$WORK/fixture.err" &
FIXTURE_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$WORK/fixture.out" | head -n1)"
  [ -n "$URL" ] && break
  if ! kill -0 "$FIXTURE_PID" 2>/dev/null; then
    log "the fixture exited early:"; cat "$WORK/fixture.err" >&2; exit 1
  fi
  sleep 0.1
done
[ -n "$URL" ] || { log "the fixture printed no address within 10 s"; cat "$WORK/fixture.err" >&2; exit 1; }
log "fixture at $URL (pid $FIXTURE_PID)"

export TALKBACK_FIXTURE_URL="$URL"
if [ -n "$WASM_TC" ]; then export RUSTUP_TOOLCHAIN="$WASM_TC"; log "toolchain: $WASM_TC"; fi
set +e
cargo test -p talkback-wasm --target wasm32-unknown-unknown "$@"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  log "tests failed (exit $rc); the fixture's log:"
  tail -n 50 "$WORK/fixture.err" >&2 || true
fi
exit "$rc"
