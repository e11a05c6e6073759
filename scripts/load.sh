#!/usr/bin/env bash
# scripts/load.sh — the fixture at scale, measured against the release fixture in its own process
# (server-fixture/benches/idle.rs; RSS read from /proc/PID/status, CPU from /proc/PID/stat):
# memory per idle connection (WebSockets, SSE, long polling, negotiated but never connected,
# upgraded but no handshake), 15,000 concurrent WebSockets, a broadcast to 10,000 of them, and a
# minute of churn (connect, call, disconnect).
#
#   scripts/load.sh                          # everything below (about 5 minutes)
#   LOAD_WS=15000 LOAD_SSE=0 LOAD_LP=0 scripts/load.sh
#   LOAD_ONLY=ws scripts/load.sh             # one run: ws sse lp negotiate nohandshake scale broadcast churn
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
NEGOTIATE="${LOAD_NEGOTIATE:-10000}"
NOHANDSHAKE="${LOAD_NOHANDSHAKE:-5000}"
SCALE="${LOAD_SCALE:-15000}"
BROADCAST="${LOAD_BROADCAST:-10000}"
BROADCAST_ROUNDS="${LOAD_BROADCAST_ROUNDS:-5}"
CHURN_SECONDS="${LOAD_CHURN_SECONDS:-60}"
CHURN_WORKERS="${LOAD_CHURN_WORKERS:-50}"
ONLY="${LOAD_ONLY:-}"

cargo bench -p talkback-fixture --bench idle --no-run
run() {
  local name="$1" kind="$2" n="$3"; shift 3
  [ "$n" -gt 0 ] || return 0
  [ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || return 0
  printf '\n== %s: %s %s\n' "$name" "$n" "$kind"
  cargo bench -q -p talkback-fixture --bench idle -- --transport "$kind" --connections "$n" "$@"
}
run ws ws "$WS" "$@"
run sse sse "$SSE" "$@"
run lp lp "$LP" "$@"
run negotiate negotiate "$NEGOTIATE" "$@"
run nohandshake nohandshake "$NOHANDSHAKE" "$@"
run scale ws "$SCALE" "$@"
run broadcast ws "$BROADCAST" --broadcast "$BROADCAST_ROUNDS" "$@"
[ "$CHURN_SECONDS" -gt 0 ] && run churn ws "$CHURN_WORKERS" --churn "$CHURN_SECONDS" "$@"
exit 0
