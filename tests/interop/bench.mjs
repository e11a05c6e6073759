// Benchmarks of the official @microsoft/signalr client against the talkback fixture, for a side by
// side comparison with the Rust client's benchmark in the same run (scripts/bench.sh).
//
// Usage: node --expose-gc bench.mjs
// Environment: TALKBACK_FIXTURE_BIN (default target/release/talkback-fixture, else debug),
//   BENCH_SECONDS (per throughput measurement, default 5), BENCH_CONNECTIONS (default 1000),
//   BENCH_MEMORY_SAMPLES (fresh processes measuring idle memory, default 3),
//   BENCH_URL (use a running fixture instead of starting one, e.g. http://127.0.0.1:5000),
//   BENCH_ONLY=echo_json_1 (only the sequential echo figures, as the Rust side's, for profiling).
// Output: human-readable lines, then one line per result: `RESULT <key> <value> <unit>`.
//
// Memory per idle connection is measured the same way as the Rust side's
// (examples/examples/bench.rs), so the two compare: each sample is a fresh process (nothing
// left over from the throughput runs, whose freed memory a later allocation would reuse) that
// opens WARM_CONNECTIONS connections first (one-time costs: the HTTP agent, compiled code),
// takes the baseline, opens BENCH_CONNECTIONS more in batches of 50, waits a second and takes
// the RSS again; the figure is the difference over BENCH_CONNECTIONS, the median of
// BENCH_MEMORY_SAMPLES processes. Here both readings follow a forced full GC (twice, with a
// pause), and the V8 heap plus external memory is reported beside the RSS.

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startFixture, fixtureBinary, repoRoot } from "./fixture.mjs";

const require = createRequire(import.meta.url);
const signalR = require("@microsoft/signalr");
const WebSocket = require("ws");

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 1000);
const MEMORY_SAMPLES = Math.max(1, Number(process.env.BENCH_MEMORY_SAMPLES ?? 3));
/** Connections opened before the baseline of a memory sample (the same count on the Rust side). */
const WARM_CONNECTIONS = 10;
const RS = "\u001e";

function defaultBinary() {
  if (process.env.TALKBACK_FIXTURE_BIN) return fixtureBinary();
  const release = resolve(process.env.CARGO_TARGET_DIR ?? resolve(repoRoot, "target"), "release", "talkback-fixture");
  return existsSync(release) ? release : fixtureBinary();
}

const results = [];
function report(key, value, unit, note = "") {
  results.push({ key, value, unit });
  console.log(`${key.padEnd(34)} ${String(value).padStart(12)} ${unit}${note ? `  (${note})` : ""}`);
}

/**
 * Runs `op` with `inFlight` concurrent workers for `seconds`; returns completed ops per second and
 * the process's CPU time (user + system, microseconds) per completed op over the measured span.
 */
async function measure(op, inFlight, seconds) {
  // Warm-up.
  const warmEnd = performance.now() + 500;
  while (performance.now() < warmEnd) await op();
  let done = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const worker = async () => {
    while (performance.now() < end) {
      await op();
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const rate = Math.round(done / ((performance.now() - started) / 1000));
  const cpu = process.cpuUsage(cpuBefore);
  return { rate, cpuPerCall: Number(((cpu.user + cpu.system) / Math.max(done, 1)).toFixed(2)) };
}

/** Ops per second only. */
async function throughput(op, inFlight, seconds) {
  return (await measure(op, inFlight, seconds)).rate;
}

function connectOfficial(url) {
  return new signalR.HubConnectionBuilder()
    .withUrl(`${url}/hubs/test`, { transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.None)
    .build();
}

/** A bare SignalR JSON connection over `ws`, without the official client: the ceiling. */
async function connectRaw(url) {
  const negotiate = await fetch(`${url}/hubs/test/negotiate?negotiateVersion=1`, { method: "POST" });
  const body = await negotiate.json();
  const token = body.connectionToken ?? body.connectionId;
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/hubs/test?id=${encodeURIComponent(token)}`);
  await new Promise((res, rej) => {
    ws.once("open", res);
    ws.once("error", rej);
  });
  const pending = new Map();
  let handshakeDone;
  const handshake = new Promise((res) => (handshakeDone = res));
  let buffered = "";
  let handshaken = false;
  ws.on("message", (data) => {
    buffered += data.toString("utf8");
    let end;
    while ((end = buffered.indexOf(RS)) >= 0) {
      const record = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (!handshaken) {
        handshaken = true;
        handshakeDone(JSON.parse(record));
        continue;
      }
      const message = JSON.parse(record);
      if (message.type === 3) {
        const resolveCall = pending.get(message.invocationId);
        pending.delete(message.invocationId);
        resolveCall?.(message);
      }
    }
  });
  ws.send(`{"protocol":"json","version":1}${RS}`);
  const hs = await handshake;
  if (hs.error) throw new Error(`handshake error: ${hs.error}`);
  let nextId = 0;
  return {
    echo(value) {
      const id = String(nextId++);
      return new Promise((res) => {
        pending.set(id, res);
        ws.send(`{"type":1,"invocationId":"${id}","target":"Echo","arguments":[${JSON.stringify(value)}]}${RS}`);
      });
    },
    close() {
      ws.close();
    },
  };
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/** RSS and V8 heap (used heap plus external memory) after forced full collections. */
async function memorySnapshot() {
  global.gc?.();
  await sleep(200);
  global.gc?.();
  const usage = process.memoryUsage();
  return { rss: usage.rss, heap: usage.heapUsed + usage.external };
}

/** Opens `count` official-client connections in batches of 50. */
async function openIdle(url, count) {
  const idle = [];
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, () => connectOfficial(url));
    await Promise.all(batch.map((c) => c.start()));
    idle.push(...batch);
  }
  return idle;
}

/**
 * One memory sample, in this (fresh) process: bytes of RSS and of heap per idle connection, and
 * connections opened per second. Printed as one `MEMORY {json}` line for the parent.
 */
async function memorySample(url) {
  const warm = await openIdle(url, WARM_CONNECTIONS);
  await sleep(500);
  const before = await memorySnapshot();
  const started = performance.now();
  const idle = await openIdle(url, CONNECTIONS);
  const connectSeconds = (performance.now() - started) / 1000;
  await sleep(1000);
  const after = await memorySnapshot();
  console.log(
    `MEMORY ${JSON.stringify({
      rss: Math.round((after.rss - before.rss) / CONNECTIONS),
      heap: Math.round((after.heap - before.heap) / CONNECTIONS),
      rate: Math.round(CONNECTIONS / connectSeconds),
    })}`,
  );
  const all = [...warm, ...idle];
  for (let i = 0; i < all.length; i += 100) await Promise.all(all.slice(i, i + 100).map((c) => c.stop()));
}

/** Runs MEMORY_SAMPLES memory samples, each in a fresh Node process, one after another. */
function memorySamples(url) {
  const samples = [];
  for (let i = 0; i < MEMORY_SAMPLES; i++) {
    const output = execFileSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url)], {
      env: { ...process.env, BENCH_URL: url, BENCH_MEMORY_CHILD: "1" },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    const line = output.split("\n").find((l) => l.startsWith("MEMORY "));
    if (!line) throw new Error(`a memory sample printed no MEMORY line:\n${output}`);
    samples.push(JSON.parse(line.slice("MEMORY ".length)));
  }
  return samples;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : Math.round((sorted[mid - 1] + sorted[mid]) / 2);
}

async function main() {
  if (process.env.BENCH_MEMORY_CHILD === "1") {
    await memorySample(process.env.BENCH_URL);
    return;
  }
  let fixture;
  let url = process.env.BENCH_URL;
  if (!url) {
    const bin = defaultBinary();
    console.log(`fixture: ${bin}`);
    fixture = await startFixture([], { bin });
    url = fixture.url;
  }
  console.log(`server: ${url}; ${SECONDS} s per throughput measurement; node ${process.version}`);
  if (!global.gc) console.log("(run with --expose-gc for steadier memory figures)");
  try {
    // 1. The official client: echo invocations.
    const conn = connectOfficial(url);
    await conn.start();
    const sequential = await measure(() => conn.invoke("Echo", "hello"), 1, SECONDS);
    report("js.echo_sequential", sequential.rate, "ops/s");
    report("js.cpu_us_per_call_sequential", sequential.cpuPerCall, "us");
    if (process.env.BENCH_ONLY === "echo_json_1") {
      await conn.stop();
      return;
    }
    const parallel = await measure(() => conn.invoke("Echo", "hello"), 100, SECONDS);
    report("js.echo_100_in_flight", parallel.rate, "ops/s");
    report("js.cpu_us_per_call_100_in_flight", parallel.cpuPerCall, "us");
    await conn.stop();

    // 2. The ceiling: raw JSON frames over ws, no SignalR client.
    const raw = await connectRaw(url);
    report("raw_ws.echo_sequential", await throughput(() => raw.echo("hello"), 1, SECONDS), "ops/s");
    report("raw_ws.echo_100_in_flight", await throughput(() => raw.echo("hello"), 100, SECONDS), "ops/s");
    raw.close();

    // 3. Memory per idle connection of the official client, and its connection rate: the
    //    median of fresh processes (see the top of this file).
    const samples = memorySamples(url);
    const field = (name) => samples.map((s) => s[name]);
    const shown = (name) => field(name).join(", ");
    report("js.connect_rate", median(field("rate")), "conn/s", `${CONNECTIONS} connections; samples ${shown("rate")}`);
    report(
      "js.memory_per_idle_connection",
      median(field("rss")),
      "bytes",
      `RSS delta / ${CONNECTIONS}, median of ${samples.length} processes: ${shown("rss")}`,
    );
    report("js.heap_per_idle_connection", median(field("heap")), "bytes", `V8 heap + external: ${shown("heap")}`);
  } finally {
    await fixture?.stop();
    console.log("");
    for (const { key, value, unit } of results) console.log(`RESULT ${key} ${value} ${unit}`);
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`bench failed: ${error.stack ?? error}`);
    process.exit(1);
  },
);
