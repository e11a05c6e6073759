#!/usr/bin/env bash
# scripts/test.sh — set up what the tests need (idempotently) and run every test of Talkback.
#
# Steps, in order: setup (rustfmt/clippy components, the wasm32 target, headless Chromium,
# Firefox ESR with geckodriver when they install, wasm-bindgen-test-runner, npm ci), cargo fmt
# --check, cargo clippy -D warnings, cargo doc (rustdoc warnings are errors), cargo test
# (nextest when installed, plus doc tests), talkback-core's tests built for wasm32-unknown-unknown
# and run in headless Chromium and Firefox, talkback-wasm's and the npm package's browser tests,
# the interop suite (the official JavaScript client against the fixture). Every step runs even
# when an earlier one failed (set FAIL_FAST=1 to stop at the first failure); the script ends
# with a summary and exits non-zero if any step failed.
#
# Environment:
#   FAIL_FAST=1            stop after the first failing step
#   TEST_RUNNER=auto|nextest|cargo   (default auto: nextest if installed, else cargo test)
#   SKIP_WASM=1            skip the wasm32 setup and browser tests (reported as skipped)
#   SKIP_INTEROP=1         skip the interop suite (reported as skipped)
#   WASM_TOOLCHAIN_MODE    see scripts/wasm-setup.sh (scripts/browser-setup.sh installs Chromium)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CI="${CI:-true}"
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
exec </dev/null

FAIL_FAST="${FAIL_FAST:-0}"
TEST_RUNNER="${TEST_RUNNER:-auto}"
T_START=$(date +%s)
SUMMARY=()
FAILED=0
WASM_ENV_FILE="${WASM_ENV_FILE:-$ROOT/target/wasm-toolchain.env}"
export WASM_ENV_FILE

header() {
  printf '\n==================================================================\n'
  printf '== %s\n' "$*"
  printf '==================================================================\n'
}

# step NAME COMMAND... : runs one step, records its status and duration.
step() {
  local name="$1"; shift
  header "$name"
  printf '$ %s\n' "$*"
  local t0 rc
  t0=$(date +%s)
  # A subshell with errexit, so that a failing command inside a step function fails the step.
  set +e
  ( set -e; "$@" )
  rc=$?
  set -e
  local dt=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf '%-6s %5ss  %s' ok "$dt" "$name")")
  else
    SUMMARY+=("$(printf '%-6s %5ss  %s (exit %s)' FAILED "$dt" "$name" "$rc")")
    FAILED=$((FAILED + 1))
    if [ "$FAIL_FAST" = 1 ]; then finish; fi
  fi
  return 0
}

skip() {
  local name="$1" why="$2"
  header "$name"
  echo "skipped: $why"
  SUMMARY+=("$(printf '%-6s %5s   %s (%s)' skip - "$name" "$why")")
}

finish() {
  header "summary"
  printf '%s\n' "${SUMMARY[@]}"
  printf 'total: %s s\n' "$(( $(date +%s) - T_START ))"
  if [ "$FAILED" -gt 0 ]; then
    echo "RESULT: $FAILED step(s) failed"
    exit 1
  fi
  echo "RESULT: all steps passed"
  exit 0
}

# ------------------------------------------------------------------------------------ setup
setup_rust() {
  command -v cargo >/dev/null || { echo "cargo not found (install rustup stable)"; return 1; }
  cargo --version
  local component
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      rustup component add "$component"
    fi
  done
}

setup_wasm() {
  rm -f "$WASM_ENV_FILE"
  scripts/wasm-setup.sh
  scripts/browser-setup.sh
}

setup_node() {
  command -v node >/dev/null || { echo "node not found (Node 20 or later is needed)"; return 1; }
  command -v npm >/dev/null || { echo "npm not found"; return 1; }
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  echo "node $(node --version), npm $(npm --version 2>/dev/null)"
  if [ "$major" -lt 20 ]; then echo "Node $major is too old: Node 20 or later is needed"; return 1; fi
  # npm ci only when package-lock.json changed since the last install.
  local stamp=tests/interop/node_modules/.talkback-lock-stamp
  if [ -f "$stamp" ] && cmp -s "$stamp" tests/interop/package-lock.json; then
    echo "tests/interop/node_modules is up to date"
  else
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
    cp tests/interop/package-lock.json "$stamp"
  fi
}

# ------------------------------------------------------------------------------------ checks
run_tests() {
  local runner="$TEST_RUNNER"
  if [ "$runner" = auto ]; then
    if cargo nextest --version >/dev/null 2>&1; then runner=nextest; else runner=cargo; fi
  fi
  if [ "$runner" = nextest ]; then
    echo "runner: cargo nextest (plus cargo test --doc)"
    cargo nextest run --workspace --all-features --no-fail-fast --no-tests=warn
    cargo test --workspace --all-features --doc
  else
    echo "runner: cargo test"
    cargo test --workspace --all-features --no-fail-fast
  fi
}

wasm_tests() {
  if [ ! -f "$WASM_ENV_FILE" ]; then echo "no wasm toolchain (the setup step failed)"; return 1; fi
  local tc
  tc="$(sed -n 's/^WASM_RUSTUP_TOOLCHAIN=//p' "$WASM_ENV_FILE")"
  echo "toolchain: $tc; runner: wasm-bindgen-test-runner (.cargo/config.toml) in headless Chromium"
  # The client layer (talkback-core's default `client` feature) builds for the browser without
  # tokio: no tokio in its dependency tree, and it checks and lints clean for wasm32.
  if RUSTUP_TOOLCHAIN="$tc" cargo tree -p talkback-core --target wasm32-unknown-unknown -e normal | grep tokio >/dev/null; then
    echo "talkback-core depends on tokio for wasm32"; return 1
  fi
  RUSTUP_TOOLCHAIN="$tc" cargo check -p talkback-core --target wasm32-unknown-unknown
  RUSTUP_TOOLCHAIN="$tc" cargo clippy -p talkback-core --lib --target wasm32-unknown-unknown -- -D warnings
  RUSTUP_TOOLCHAIN="$tc" cargo clippy -p talkback-core --lib --tests --target wasm32-unknown-unknown -- -D warnings
  RUSTUP_TOOLCHAIN="$tc" cargo test -p talkback-core --target wasm32-unknown-unknown
  # Again in headless Firefox when scripts/browser-setup.sh could install it (off PATH, so the
  # runner takes it only when named).
  local gecko=/opt/geckodriver-0.37.1/bin/geckodriver
  if [ "${FIREFOX:-1}" != 0 ] && [ -x "$gecko" ] && command -v firefox-esr >/dev/null; then
    GECKODRIVER="$gecko" GECKODRIVER_ARGS="--binary=$(readlink -f "$(command -v firefox-esr)")" \
      RUSTUP_TOOLCHAIN="$tc" cargo test -p talkback-core --target wasm32-unknown-unknown
  else
    echo "Firefox: skipped (firefox-esr or geckodriver not installed, or FIREFOX=0)"
  fi
}

# talkback-wasm's BrowserRuntime: lint for wasm32, then its tests in headless Chromium against a
# fixture that scripts/wasm-browser-tests.sh starts on loopback and stops.
wasm_browser_tests() {
  if [ ! -f "$WASM_ENV_FILE" ]; then echo "no wasm toolchain (the setup step failed)"; return 1; fi
  local tc
  tc="$(sed -n 's/^WASM_RUSTUP_TOOLCHAIN=//p' "$WASM_ENV_FILE")"
  RUSTUP_TOOLCHAIN="$tc" cargo clippy -p talkback-wasm --target wasm32-unknown-unknown --all-targets -- -D warnings
  scripts/wasm-browser-tests.sh
}

# The npm package talkback-signalr: built by scripts/build-npm.sh (wasm-release profile,
# wasm-bindgen, wasm-opt from npm's binaryen), then loaded by a page in headless Chromium that
# runs the JavaScript API's scenarios against the fixture (client-wasm/npm/test/run.mjs), and
# the same scenarios in Node.js 20 and 22 (node.mjs); then
# its packaging (client-wasm/npm/test/packaging.mjs: the tarball installed into an app, tsc on a
# typed app, esbuild and Vite bundles and module workers in Chromium) and the fixture's demo page
# (demo.mjs: a message from the native `talkback` CLI rendered at /, target/artifacts/demo.png;
# serverless.mjs: the serverless dashboard example's browser page, target/artifacts/serverless.png).
# Node.js 22 (the active LTS; it has a WebSocket of its own), for the Node.js test of the npm
# package beside the machine's Node.js 20: an official build from npm's `node-linux-<arch>`
# package, installed once under <target>/node22. Prints the binary's path.
node22_bin() {
  local dir="$1/node22" version=22.23.5 arch
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) return 1 ;; esac
  local bin="$dir/node_modules/node-linux-$arch/bin/node"
  if [ ! -x "$bin" ] || [ "$("$bin" --version)" != "v$version" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "node-linux-$arch@$version") >&2 || return 1
  fi
  echo "$bin"
}

npm_package_tests() {
  if [ ! -f "$WASM_ENV_FILE" ]; then echo "no wasm toolchain (the setup step failed)"; return 1; fi
  local tc target_dir
  tc="$(sed -n 's/^WASM_RUSTUP_TOOLCHAIN=//p' "$WASM_ENV_FILE")"
  RUSTUP_TOOLCHAIN="$tc" cargo clippy -p talkback-wasm --target wasm32-unknown-unknown --all-targets --all-features -- -D warnings
  RUSTUP_TOOLCHAIN="$tc" scripts/build-npm.sh
  [ -d tests/interop/node_modules/ws ] || (cd tests/interop && npm ci --no-audit --no-fund)
  cargo build -p talkback-fixture
  target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
  # The packaging and demo tests' tools (esbuild, Vite, TypeScript: pinned by the lockfile);
  # npm ci only when client-wasm/npm/test/package-lock.json changed since the last install.
  local stamp=client-wasm/npm/test/node_modules/.talkback-lock-stamp
  if [ -f "$stamp" ] && cmp -s "$stamp" client-wasm/npm/test/package-lock.json; then
    echo "client-wasm/npm/test/node_modules is up to date"
  else
    (cd client-wasm/npm/test && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
    cp client-wasm/npm/test/package-lock.json "$stamp"
  fi
  # The native client of the demo test, with the test step's features (so nothing rebuilds).
  cargo build --workspace --all-features --bin talkback --example serverless_dashboard
  local failed=0
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" node client-wasm/npm/test/run.mjs || failed=1
  # The same scenarios in Node.js, through the packed tarball installed into an app (with its
  # `ws` dependency), the Node.js behaviours beside the official client's, and the process-exit
  # check (client-wasm/npm/test/node.mjs).
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" node client-wasm/npm/test/node.mjs || failed=1
  # The same in Node.js 22, whose global WebSocket and require() of ES modules are its own.
  local node22
  if node22="$(node22_bin "$target_dir")"; then
    echo "node.mjs under $("$node22" --version)"
    PATH="$(dirname "$node22"):$PATH" TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" \
      node client-wasm/npm/test/node.mjs || failed=1
  else
    echo "Node.js 22 could not be installed from npm (node-linux-<arch>)"
    failed=1
  fi
  # The same scenarios in headless Firefox, over geckodriver (skipped when Firefox is missing).
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" node client-wasm/npm/test/firefox.mjs || failed=1
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" node client-wasm/npm/test/packaging.mjs || failed=1
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" TALKBACK_CLI_BIN="$target_dir/debug/talkback" \
    TALKBACK_ARTIFACTS="$target_dir/artifacts" node client-wasm/npm/test/demo.mjs || failed=1
  TALKBACK_ARTIFACTS="$target_dir/artifacts" SERVERLESS_DASHBOARD_BIN="$target_dir/debug/examples/serverless_dashboard" \
    node client-wasm/npm/test/serverless.mjs || failed=1
  return "$failed"
}

interop() {
  cargo build -p talkback-fixture
  local target_dir
  target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" node tests/interop/run.mjs
  # Azure service mode: the official client through the two-step negotiate (docs/azure-mode.md).
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" node tests/interop/azure.mjs
  # Two fixture nodes on a Redis backplane (docs/backplane.md), one official client on each.
  TALKBACK_FIXTURE_BIN="$target_dir/debug/talkback-fixture" node tests/interop/backplane.mjs
}

step "setup: Rust components (rustfmt, clippy)" setup_rust
step "setup: redis-server (Redis backplane tests)" scripts/redis-setup.sh
if [ "${SKIP_WASM:-0}" = 1 ]; then skip "setup: wasm32 target, Chromium, Firefox, wasm-bindgen-test-runner" "SKIP_WASM=1"
else step "setup: wasm32 target, Chromium, Firefox, wasm-bindgen-test-runner" setup_wasm; fi
if [ "${SKIP_INTEROP:-0}" = 1 ]; then skip "setup: Node packages (npm ci)" "SKIP_INTEROP=1"; else step "setup: Node packages (npm ci)" setup_node; fi

step "cargo fmt --all -- --check" cargo fmt --all -- --check
step "cargo clippy --workspace --all-targets --all-features -- -D warnings" \
  cargo clippy --workspace --all-targets --all-features -- -D warnings
step "cargo doc --workspace --no-deps --all-features (rustdoc -D warnings)" \
  env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
step "cargo test --workspace --all-features" run_tests
if [ "${SKIP_WASM:-0}" = 1 ]; then skip "talkback-core tests in headless Chromium and Firefox (wasm32)" "SKIP_WASM=1"
else step "talkback-core tests in headless Chromium and Firefox (wasm32)" wasm_tests; fi
if [ "${SKIP_WASM:-0}" = 1 ]; then skip "talkback-wasm in headless Chromium and Firefox" "SKIP_WASM=1"
else step "talkback-wasm in headless Chromium and Firefox" wasm_browser_tests; fi
if [ "${SKIP_WASM:-0}" = 1 ]; then skip "npm package talkback-signalr in headless Chromium, Firefox and Node.js" "SKIP_WASM=1"
else step "npm package talkback-signalr in headless Chromium, Firefox and Node.js" npm_package_tests; fi
if [ "${SKIP_INTEROP:-0}" = 1 ]; then skip "interop: official JavaScript client against the fixture" "SKIP_INTEROP=1"
else step "interop: official JavaScript client against the fixture" interop; fi

finish
