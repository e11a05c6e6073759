#!/usr/bin/env bash
# scripts/run.sh — build and run the Talkback fixture (the SignalR service with the test hub and the
# chat demo) on 127.0.0.1. It prints `listening on http://127.0.0.1:PORT` and its hub URLs, and runs
# until Ctrl-C.
#
#   scripts/run.sh                 # port 5000 (or $PORT)
#   scripts/run.sh --port 0        # any free port; further arguments go to the fixture
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (stable)" >&2; exit 1; }

args=("$@")
has_port=0
for a in "${args[@]+"${args[@]}"}"; do
  case "$a" in --port|--port=*) has_port=1 ;; esac
done
if [ "$has_port" = 0 ]; then args=(--port "${PORT:-5000}" "${args[@]+"${args[@]}"}"); fi

exec cargo run --release -p talkback-fixture -- "${args[@]}"
