#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 60) and prints the executions of each.
# Needs cargo-fuzz and a nightly toolchain: run fuzz/setup.sh once first (idempotent).
# Release build without ASan (`-O -a -s none`: optimised, with debug assertions and overflow
# checks); corpora grow in fuzz/corpus/<target> (not committed), the seed inputs in
# fuzz/seeds/<target> are read too. Memory is capped with libFuzzer's -rss_limit_mb.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
for target in $(cargo +nightly fuzz list); do
  log="$(mktemp)"
  mkdir -p "corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  cargo +nightly fuzz run -O -a -s none "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  execs="$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || true)"
  echo "$target: ${execs:-?} executions in ${seconds}s"
  rm -f "$log"
done
