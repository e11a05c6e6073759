// A small sequential test runner with per-test timeouts and cleanup, plus helpers for the
// official SignalR client. No dependencies beyond node:*.

import { isDeepStrictEqual, inspect } from "node:util";

/** Thrown by a test that needs something the fixture does not offer (yet). */
export class Missing extends Error {
  constructor(message) {
    super(message);
    this.name = "Missing";
  }
}

/** A promise with its resolve and reject functions. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/** Rejects with a message naming `what` if `promise` does not settle within `ms`. */
export function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Fails unless `actual` deep-equals `expected`. */
export function eq(actual, expected, what = "value") {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(`${what}: expected ${inspect(expected, { depth: 6 })}, got ${inspect(actual, { depth: 6 })}`);
  }
}

/** Fails unless `condition` holds. */
export function ok(condition, message) {
  if (!condition) throw new Error(message);
}

/** Fails unless `promise` rejects; returns the rejection. */
export async function rejects(promise, what) {
  try {
    const value = await promise;
    throw new Error(`${what}: expected a rejection, got ${inspect(value)}`, { cause: "no-rejection" });
  } catch (error) {
    if (error && error.cause === "no-rejection") throw error;
    return error;
  }
}

/** A collection of named tests, run one after another. */
export class Suite {
  constructor() {
    this.tests = [];
  }

  /**
   * Registers a test. `fn(t)` gets a context whose `defer(fn)` registers cleanup run after the test.
   * @param {string} name
   * @param {(t: {defer: (fn: () => any) => void}) => Promise<void>} fn
   * @param {{timeoutMs?: number}} options
   */
  test(name, fn, { timeoutMs = 20_000 } = {}) {
    this.tests.push({ name, fn, timeoutMs });
  }

  /** Runs the tests whose names match `filter` (a RegExp or undefined); returns the counts. */
  async run(filter) {
    const counts = { passed: 0, failed: 0, missing: 0 };
    const failures = [];
    const missing = [];
    const selected = this.tests.filter((t) => !filter || filter.test(t.name));
    for (const { name, fn, timeoutMs } of selected) {
      const cleanups = [];
      const context = { defer: (cleanup) => cleanups.push(cleanup), name };
      const started = performance.now();
      let outcome;
      try {
        await within(timeoutMs, Promise.resolve().then(() => fn(context)), `test "${name}" to finish`);
        outcome = { kind: "passed" };
      } catch (error) {
        outcome = error instanceof Missing ? { kind: "missing", error } : { kind: "failed", error };
      }
      for (const cleanup of cleanups.reverse()) {
        try {
          await within(10_000, Promise.resolve().then(cleanup), "cleanup");
        } catch (error) {
          if (outcome.kind === "passed") outcome = { kind: "failed", error: new Error(`cleanup failed: ${error.message}`) };
        }
      }
      const ms = Math.round(performance.now() - started);
      counts[outcome.kind]++;
      if (outcome.kind === "passed") {
        console.log(`ok      ${name} (${ms} ms)`);
      } else if (outcome.kind === "missing") {
        console.log(`MISSING ${name}: ${outcome.error.message}`);
        missing.push(`${name}: ${outcome.error.message}`);
      } else {
        const message = outcome.error instanceof Error ? outcome.error.message : inspect(outcome.error);
        console.log(`FAIL    ${name} (${ms} ms): ${message}`);
        failures.push(`${name}: ${message}`);
      }
    }
    return { counts, failures, missing, selected: selected.length };
  }
}
