#!/usr/bin/env bash
# wasm-browser-tests.sh — talkback-wasm's runtime and client tests in headless Chromium, then in
# headless Firefox, against a talkback-fixture this script starts on loopback (an OS-chosen port)
# and stops when it exits.
#
# Firefox runs when scripts/browser-setup.sh could install it (Debian's firefox-esr, and
# geckodriver in $GECKODRIVER_ROOT/bin, default /opt/geckodriver-0.37.1, off PATH); otherwise this
# prints "Firefox: skipped (why)" and the exit status is Chromium's. FIREFOX=0 skips it,
# FIREFOX=only runs Firefox alone. The tests in CHROMIUM_ONLY below are skipped in Firefox.
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

# Tests that rely on something only Chromium has, each with the reason; skipped in Firefox
# (wasm-bindgen-test-runner's --skip matches test names by substring). None today: every test
# passes in Firefox 153 ESR as it does in Chromium.
CHROMIUM_ONLY=()

GECKODRIVER_ROOT="${GECKODRIVER_ROOT:-/opt/geckodriver-0.37.1}"
GECKODRIVER_BIN="$GECKODRIVER_ROOT/bin/geckodriver"
firefox_missing() {
  if [ "${FIREFOX:-1}" = 0 ]; then echo "FIREFOX=0"; return; fi
  command -v firefox-esr >/dev/null || { echo "firefox-esr is not installed (scripts/browser-setup.sh installs it)"; return; }
  [ -x "$GECKODRIVER_BIN" ] || echo "no geckodriver at $GECKODRIVER_BIN (scripts/browser-setup.sh installs it)"
}

# The runner takes the driver named by CHROMEDRIVER or GECKODRIVER (before any on PATH).
rc=0
if [ "${FIREFOX:-1}" != only ]; then
  log "Chromium: $(chromium --version 2>/dev/null)"
  set +e
  CHROMEDRIVER="$(command -v chromedriver)" cargo test -p talkback-wasm --target wasm32-unknown-unknown "$@"
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || log "Chromium: tests failed (exit $rc)"
fi

why_not="$(firefox_missing)"
if [ -n "$why_not" ]; then
  echo "Firefox: skipped ($why_not)"
  # Asked for Firefox alone: not having it is a failure.
  if [ "${FIREFOX:-1}" = only ]; then rc=1; fi
else
  firefox_bin="$(readlink -f "$(command -v firefox-esr)")"
  log "Firefox: $("$firefox_bin" --version 2>/dev/null), geckodriver $GECKODRIVER_BIN"
  # Skip filters go after the `--` that separates cargo's arguments from the runner's.
  args=("$@")
  have_sep=0
  for a in "${args[@]}"; do [ "$a" = "--" ] && have_sep=1; done
  [ "$have_sep" = 1 ] || args+=("--")
  for t in "${CHROMIUM_ONLY[@]}"; do args+=("--skip" "$t"); done
  set +e
  GECKODRIVER="$GECKODRIVER_BIN" GECKODRIVER_ARGS="--binary=$firefox_bin" \
    cargo test -p talkback-wasm --target wasm32-unknown-unknown "${args[@]}"
  firefox_rc=$?
  set -e
  if [ "$firefox_rc" -ne 0 ]; then log "Firefox: tests failed (exit $firefox_rc)"; rc=$firefox_rc; fi
fi

if [ "$rc" -ne 0 ]; then
  log "tests failed (exit $rc); the fixture's log:"
  tail -n 50 "$WORK/fixture.err" >&2 || true
fi
exit "$rc"
