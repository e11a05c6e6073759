// Starts and stops the talkback fixture binary for the interop suite and the benchmarks.
//
// The fixture is started with `--port 0`; it prints `listening on http://127.0.0.1:PORT` on stdout.
// Node's fetch refuses some ports (the WHATWG "bad ports" list); if the OS hands one of them out,
// the fixture is restarted.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (tests/interop/../..). */
export const repoRoot = resolve(here, "..", "..");

/** Ports that fetch() refuses to connect to (https://fetch.spec.whatwg.org/#bad-port). */
const BAD_PORTS = new Set([
  0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102,
  103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465,
  512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993,
  995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668,
  6669, 6679, 6697, 10080,
]);

/** Every fixture process started by this module, so that they can all be killed on exit. */
const running = new Set();

/** The fixture binary: $TALKBACK_FIXTURE_BIN, or target/debug/talkback-fixture. */
export function fixtureBinary() {
  const fromEnv = process.env.TALKBACK_FIXTURE_BIN;
  if (fromEnv) return resolve(fromEnv);
  const targetDir = process.env.CARGO_TARGET_DIR
    ? resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : resolve(repoRoot, "target");
  return resolve(targetDir, "debug", "talkback-fixture");
}

/**
 * Starts one fixture process and resolves when it listens.
 * @param {string[]} extraArgs arguments after `--port 0`
 * @param {{timeoutMs?: number, bin?: string}} options
 * @returns {Promise<{url: string, port: number, output: () => string, stop: () => Promise<void>}>}
 */
export async function startFixture(extraArgs = [], options = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const fixture = await startOnce(extraArgs, options);
    if (!BAD_PORTS.has(fixture.port)) return fixture;
    await fixture.stop();
  }
  throw new Error("the fixture kept getting ports that fetch() refuses");
}

function startOnce(extraArgs, { timeoutMs = 30_000, bin = fixtureBinary() }) {
  if (!existsSync(bin)) {
    return Promise.reject(
      new Error(`fixture binary not found at ${bin} (build it with: cargo build -p talkback-fixture)`),
    );
  }
  const child = spawn(bin, ["--port", "0", ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { RUST_LOG: "warn", ...process.env },
  });
  running.add(child);
  let output = "";
  let exited = false;
  const exitedPromise = new Promise((res) =>
    child.once("exit", () => {
      exited = true;
      running.delete(child);
      res();
    }),
  );

  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exitedPromise;
    clearTimeout(timer);
  };

  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`the fixture did not print its listening line within ${timeoutMs} ms; output:\n${output}`));
    }, timeoutMs);
    let lineBuffer = "";
    const onData = (chunk) => {
      const text = chunk.toString("utf8");
      output = (output + text).slice(-20_000);
      lineBuffer += text;
      let newline;
      while ((newline = lineBuffer.indexOf("\n")) >= 0) {
        const line = lineBuffer.slice(0, newline).trim();
        lineBuffer = lineBuffer.slice(newline + 1);
        const match = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(line);
        if (match) {
          clearTimeout(timer);
          resolvePromise({
            url: match[1],
            port: Number(match[2]),
            output: () => output,
            stop,
          });
        }
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (chunk) => {
      output = (output + chunk.toString("utf8")).slice(-20_000);
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the fixture exited early (code ${code}, signal ${signal}); output:\n${output}`));
    });
  });
}

/** Kills every fixture still running (synchronously, for use in exit handlers). */
export function killAllFixtures() {
  for (const child of running) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  running.clear();
}

process.once("exit", killAllFixtures);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(signal, () => {
    killAllFixtures();
    process.exit(130);
  });
}
