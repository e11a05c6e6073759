#!/usr/bin/env bash
# scripts/bench.sh — build and run the benchmarks in one run, against one release fixture, and print
# the Rust client's figures next to the official JavaScript client's with their ratios.
#
# Every benchmark program prints result lines `RESULT <side>.<measurement> <value> <unit>`; the
# sides are `rust`, `js` and `raw_ws` (raw JSON frames over a WebSocket, the ceiling). Measurements
# with the same name on two sides are compared. `cpu_us_per_call_*` is the client process's CPU
# time (user + system) over the measured calls divided by their number: /proc/self/stat on the
# Rust side, process.cpuUsage() in Node.
#
#   scripts/bench.sh
#   BENCH_SECONDS=10 BENCH_CONNECTIONS=1000 scripts/bench.sh
#   RUST_BENCH_CMD='cargo run --release -p talkback-examples --example bench --' scripts/bench.sh
#   BENCH_FIXTURE_BIN=/path/to/talkback-fixture scripts/bench.sh   # another fixture build (A/B)
#   BENCH_FIXTURE_WORKERS=auto scripts/bench.sh                      # a fixture thread per core (default 1)
#   BENCH_CPUS=all scripts/bench.sh                                  # let the kernel place the processes
#
# BENCH_CPUS (default 0): the CPUs (a `taskset -c` list) that the fixture and both clients run on;
# `all` pins nothing. By default everything shares core 0. On the virtual machines we measure
# on, waking a process that sleeps on another, idle core costs the waker a round trip through
# the hypervisor (an inter-processor interrupt): with the client and the fixture on different
# cores, about half of the client's CPU samples are wake-ups, a bare socket costs 26-34 us of
# CPU per sequential call instead of 7-8.5 us, and the figures of both clients swing several
# times more from run to run. A client talking to a server on another machine never pays it. The
# cross-core figures are still worth a look: README, "Benchmarks", gives both.
#
# Sides: `rust` (the tokio client on a single-threaded runtime), `rust_mt` (two workers), `js`
# (@microsoft/signalr in Node), `raw_ws` and `raw_rs` (pre-encoded frames over a bare WebSocket
# from Node's `ws` and from tokio-tungstenite: the ceilings),
# `fixture` (the server's broadcast fan-out to every idle connection).
#
# The Rust side runs $RUST_BENCH_CMD if set; otherwise the first of these that exists: an example or
# binary named `bench` in the workspace. Its command gets the fixture URL as its last argument and
# in $BENCH_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
exec </dev/null

header() { printf '\n== %s\n' "$*"; }
OUT="$(mktemp -d)"
FIXTURE_PID=""
cleanup() {
  if [ -n "$FIXTURE_PID" ]; then kill "$FIXTURE_PID" 2>/dev/null || true; wait "$FIXTURE_PID" 2>/dev/null || true; fi
  rm -rf "$OUT"
}
trap cleanup EXIT

cpus="${BENCH_CPUS:-0}"
pin=()
if [ "$cpus" != all ]; then pin=(taskset -c "$cpus"); fi

header "build (release)"
if [ -n "${BENCH_FIXTURE_BIN:-}" ]; then
  FIXTURE_BIN="$BENCH_FIXTURE_BIN"
else
  cargo build --release -p talkback-fixture
  TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
  FIXTURE_BIN="$TARGET_DIR/release/talkback-fixture"
fi
(cd tests/interop && { [ -d node_modules/@microsoft/signalr ] || npm ci --no-audit --no-fund --loglevel=error; })

rust_cmd="${RUST_BENCH_CMD:-}"
if [ -z "$rust_cmd" ]; then
  rust_cmd="$(cargo metadata --format-version 1 --no-deps | node -e '
    let s=""; process.stdin.on("data",d=>s+=d).on("end",()=>{
      const m = JSON.parse(s);
      for (const p of m.packages) for (const t of p.targets) {
        if (t.name === "bench" && t.kind.includes("example")) { console.log(`cargo run --release -q -p ${p.name} --example bench --`); return; }
        if (t.name === "bench" && t.kind.includes("bin")) { console.log(`cargo run --release -q -p ${p.name} --bin bench --`); return; }
      }
    });')"
fi

# Build the Rust side now, so that nothing compiles on the pinned CPUs.
case "$rust_cmd" in
  "cargo run "*) build_cmd="${rust_cmd/cargo run/cargo build}"; build_cmd="${build_cmd% --}"; $build_cmd ;;
esac

header "fixture"
echo "CPUs: $cpus (BENCH_CPUS)"
# BENCH_FIXTURE_WORKERS (default 1): the fixture's tokio worker threads (TOKIO_WORKER_THREADS;
# `auto`: one per core). The clients compared run on one thread each (the Rust side on a
# current-thread runtime, Node), so on the 2 cores of our machines one fixture thread gives each
# side a core. With a thread per core the fixture's tasks wake each other across its threads on
# the cores the client needs (about 45 % of the fixture's CPU per call), and the fixture, not
# the client, sets the pace of both clients (README, "Benchmarks").
workers="${BENCH_FIXTURE_WORKERS:-1}"
echo "fixture with ${workers} tokio worker thread(s)"
if [ "$workers" = auto ]; then
  "${pin[@]}" "$FIXTURE_BIN" --port 0 > "$OUT/fixture.log" 2>&1 &
else
  TOKIO_WORKER_THREADS="$workers" "${pin[@]}" "$FIXTURE_BIN" --port 0 > "$OUT/fixture.log" 2>&1 &
fi
FIXTURE_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL="$(sed -n 's/.*listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$OUT/fixture.log" | head -n 1)"
  [ -n "$URL" ] && break
  sleep 0.1
done
if [ -z "$URL" ]; then echo "the fixture did not start:"; cat "$OUT/fixture.log"; exit 1; fi
echo "fixture at $URL ($FIXTURE_BIN)"
export BENCH_URL="$URL"

status=0
header "Rust client"
if [ -n "$rust_cmd" ]; then
  echo "\$ $rust_cmd $URL"
  # shellcheck disable=SC2086
  if ! "${pin[@]}" $rust_cmd "$URL" | tee "$OUT/rust.txt"; then echo "the Rust benchmark failed"; status=1; fi
else
  echo "no Rust benchmark program found (set RUST_BENCH_CMD, or add an example or binary named 'bench')"
  : > "$OUT/rust.txt"
fi

header "official JavaScript client (@microsoft/signalr, Node $(node --version))"
if ! "${pin[@]}" node --expose-gc tests/interop/bench.mjs | tee "$OUT/js.txt"; then echo "the JavaScript benchmark failed"; status=1; fi

header "side by side"
cat "$OUT/rust.txt" "$OUT/js.txt" | grep '^RESULT ' | node -e '
  let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
    const r = {};
    for (const line of s.split("\n")) {
      const [, key, value, unit] = line.split(" ");
      if (!key) continue;
      const dot = key.indexOf(".");
      const side = key.slice(0, dot), name = key.slice(dot + 1);
      (r[name] ??= {})[side] = { value: Number(value), unit };
    }
    const fmt = (x) => x ? `${x.value} ${x.unit}` : "-";
    const ratio = (a, b) => (a && b && b.value ? (a.value / b.value).toFixed(2) : "-");
    console.log(["measurement".padEnd(30), "rust".padStart(16), "rust_mt".padStart(16), "js".padStart(16), "raw_ws".padStart(16), "raw_rs".padStart(16), "fixture".padStart(12), "rust/js".padStart(8), "rust/raw_rs".padStart(12)].join(" "));
    for (const [name, sides] of Object.entries(r)) {
      console.log([name.padEnd(30), fmt(sides.rust).padStart(16), fmt(sides.rust_mt).padStart(16), fmt(sides.js).padStart(16), fmt(sides.raw_ws).padStart(16), fmt(sides.raw_rs).padStart(16), fmt(sides.fixture).padStart(12), ratio(sides.rust, sides.js).padStart(8), ratio(sides.rust, sides.raw_rs).padStart(12)].join(" "));
    }
    console.log("(ops/s: higher is better; bytes and us, the client process\u0027s CPU time per call, user + system: lower is better)");
  });'
exit "$status"
