// Benchmarks of the official @microsoft/signalr client against the talkback fixture, for a side by
// side comparison with the Rust client's benchmark in the same run (scripts/bench.sh).
//
// Usage: node --expose-gc bench.mjs
// Environment: TALKBACK_FIXTURE_BIN (default target/release/talkback-fixture, else debug),
//   BENCH_SECONDS (per throughput measurement, default 5), BENCH_CONNECTIONS (default 1000),
//   BENCH_URL (use a running fixture instead of starting one, e.g. http://127.0.0.1:5000).
// Output: human-readable lines, then one line per result: `RESULT <key> <value> <unit>`.

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { startFixture, fixtureBinary, repoRoot } from "./fixture.mjs";

const require = createRequire(import.meta.url);
const signalR = require("@microsoft/signalr");
const WebSocket = require("ws");

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 1000);
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
  return { rate, cpuPerCall: Number(((cpu.user + cpu.system) / Math.max(done, 1)).toFixed(1)) };
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

function rssBytes() {
  global.gc?.();
  return process.memoryUsage().rss;
}

async function main() {
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
    const parallel = await measure(() => conn.invoke("Echo", "hello"), 100, SECONDS);
    report("js.echo_100_in_flight", parallel.rate, "ops/s");
    report("js.cpu_us_per_call_100_in_flight", parallel.cpuPerCall, "us");
    await conn.stop();

    // 2. The ceiling: raw JSON frames over ws, no SignalR client.
    const raw = await connectRaw(url);
    report("raw_ws.echo_sequential", await throughput(() => raw.echo("hello"), 1, SECONDS), "ops/s");
    report("raw_ws.echo_100_in_flight", await throughput(() => raw.echo("hello"), 100, SECONDS), "ops/s");
    raw.close();

    // 3. Memory per idle connection of the official client.
    const before = rssBytes();
    const idle = [];
    const started = performance.now();
    for (let i = 0; i < CONNECTIONS; i += 50) {
      const batch = Array.from({ length: Math.min(50, CONNECTIONS - i) }, () => connectOfficial(url));
      await Promise.all(batch.map((c) => c.start()));
      idle.push(...batch);
    }
    const connectSeconds = (performance.now() - started) / 1000;
    await new Promise((res) => setTimeout(res, 1000));
    const after = rssBytes();
    report("js.connect_rate", Math.round(CONNECTIONS / connectSeconds), "conn/s", `${CONNECTIONS} connections`);
    report("js.memory_per_idle_connection", Math.round((after - before) / CONNECTIONS), "bytes", `RSS delta / ${CONNECTIONS}`);
    for (let i = 0; i < idle.length; i += 100) await Promise.all(idle.slice(i, i + 100).map((c) => c.stop()));
  } finally {
    await fixture?.stop();
  }
  console.log("");
  for (const { key, value, unit } of results) console.log(`RESULT ${key} ${value} ${unit}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`bench failed: ${error.stack ?? error}`);
    process.exit(1);
  },
);
