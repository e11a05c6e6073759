#!/usr/bin/env bash
# scripts/redis-demo.sh (also `scripts/run.sh --redis`) — two fixture nodes sharing one Redis
# backplane (docs/backplane.md): a redis-server on 127.0.0.1:$REDIS_PORT (default 6380, so a
# system Redis on 6379 is left alone), node A on $PORT (default 5000) and node B on $PORT+1,
# both with `--redis`. A client of node A and a client of node B see each other's broadcasts,
# group and user sends. Ctrl-C stops all three. Further arguments go to both nodes
# (`--redis-prefix P`, `--redis-hub-name test=Contoso.TestHub`, ...).
#
#   scripts/run.sh --redis
#   PORT=7000 REDIS_PORT=6390 scripts/redis-demo.sh --redis-prefix demo-
#   FIXTURE_BIN=target/debug/talkback-fixture scripts/redis-demo.sh   # skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
port="${PORT:-5000}"
redis_port="${REDIS_PORT:-6380}"

scripts/redis-setup.sh
bin="${FIXTURE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release -p talkback-fixture >&2
  bin="${CARGO_TARGET_DIR:-target}/release/talkback-fixture"
fi

pids=()
stop() { for pid in "${pids[@]+"${pids[@]}"}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning &
pids+=($!)
for _ in $(seq 50); do
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then break; fi
  sleep 0.1
done
url="redis://127.0.0.1:$redis_port"
echo "redis:  $url"
"$bin" --port "$port" --redis "$url" "$@" > >(sed -u 's/^/[node A] /') 2>&1 &
pids+=($!)
"$bin" --port "$((port + 1))" --redis "$url" "$@" > >(sed -u 's/^/[node B] /') 2>&1 &
pids+=($!)
wait -n "${pids[@]}" || true
