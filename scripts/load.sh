#!/usr/bin/env bash
# scripts/load.sh — the fixture's memory per idle connection, measured against the release fixture
# in its own process (server-fixture/benches/idle.rs; RSS read from /proc/PID/status).
#
#   scripts/load.sh                          # 10,000 WebSockets, 3,000 SSE, 3,000 long polling
#   LOAD_WS=15000 LOAD_SSE=0 LOAD_LP=0 scripts/load.sh
#   scripts/load.sh --fixture-arg --max-connections --fixture-arg 20000   # passed to every run
#
# SSE and long polling hold two sockets per connection on the client side (the stream or poll,
# and the sends), so they run with fewer connections to stay under the file limit.
# Lines starting with RESULT are the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
exec </dev/null

# Each process (the fixture and the client) holds one descriptor per socket: raise the soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open files limit: $(ulimit -n)"

WS="${LOAD_WS:-10000}"
SSE="${LOAD_SSE:-3000}"
LP="${LOAD_LP:-3000}"

cargo bench -p talkback-fixture --bench idle --no-run
run() {
  local kind="$1" n="$2"; shift 2
  [ "$n" -gt 0 ] || return 0
  printf '\n== %s idle connections: %s\n' "$kind" "$n"
  cargo bench -q -p talkback-fixture --bench idle -- --transport "$kind" --connections "$n" "$@"
}
run ws "$WS" "$@"
run sse "$SSE" "$@"
run lp "$LP" "$@"
