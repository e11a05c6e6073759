#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 60) and prints the executions of each.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
for target in $(cargo +nightly fuzz list); do
  log="$(mktemp)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  execs="$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || true)"
  echo "$target: ${execs:-?} executions in ${seconds}s"
  rm -f "$log"
done
