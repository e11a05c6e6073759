// What the package runners (packaging.mjs, demo.mjs) share: the fixture on a loopback port,
// static file servers, headless Chromium driven over the DevTools protocol, a time limit on
// everything, and the `N passed, N failed` summary. Every process and server started here is
// stopped on exit, on a signal, and after the overall timeout.

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../../..");
export const npmDir = resolve(here, "..");
export const dist = join(npmDir, "dist");

const children = [];
const cleanups = [];
export function cleanup() {
  for (const f of cleanups.splice(0)) { try { f(); } catch { /* best effort */ } }
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}
export function onCleanup(f) { cleanups.unshift(f); }
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { cleanup(); process.exit(130); });

/** Ends the process (failing) if the run takes longer than `ms`. */
export function overallTimeout(ms, what) {
  const t = setTimeout(() => {
    console.error(`${what}: overall timeout after ${ms} ms`);
    console.log("0 passed, 1 failed");
    cleanup();
    process.exit(1);
  }, ms);
  t.unref();
}

export const withTimeout = (p, ms, what) => {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); })])
    .finally(() => clearTimeout(t));
};

/** Resolves with the first match of `re` in a child's output. */
export function waitForOutput(child, stream, re, what, ms = 20000) {
  return new Promise((resolvePromise, reject) => {
    let text = "";
    const t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms: ${text}`)), ms);
    child[stream].on("data", (d) => {
      text += d;
      const m = re.exec(text);
      if (m) { clearTimeout(t); resolvePromise(m); }
    });
    child.on("exit", (code) => { clearTimeout(t); reject(new Error(`${what}: process exited (${code}): ${text}`)); });
  });
}

/** Runs a command to its end; rejects with its output when it fails or takes longer than `ms`. */
export function run(command, args, { cwd, env, ms = 120000, quiet = true } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    child.stdout.on("data", (d) => { out += d; if (!quiet) process.stdout.write(d); });
    child.stderr.on("data", (d) => { out += d; if (!quiet) process.stderr.write(d); });
    const t = setTimeout(() => { child.kill("SIGKILL"); reject(new Error(`${command} ${args.join(" ")}: timed out after ${ms} ms\n${out}`)); }, ms);
    child.on("error", (e) => { clearTimeout(t); reject(e); });
    child.on("exit", (code) => {
      clearTimeout(t);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${command} ${args.join(" ")}: exit ${code}\n${out}`));
    });
  });
}

/** A binary of the workspace: `$envName`, else target/debug/<name>, else $CARGO_TARGET_DIR/debug/<name>. */
export function findBinary(name, envName) {
  const candidates = [process.env[envName], join(root, "target/debug", name),
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug", name)];
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) throw new Error(`${name} is not built (set ${envName}, or cargo build the crate that has it)`);
  return found;
}

/** Starts the fixture on a free loopback port; resolves with its base URL. */
export async function startFixture(args = []) {
  const fixture = spawn(findBinary("talkback-fixture", "TALKBACK_FIXTURE_BIN"), ["--port", "0", ...args],
    { stdio: ["ignore", "pipe", "pipe"] });
  children.push(fixture);
  const [, base] = await waitForOutput(fixture, "stdout", /listening on (http:\/\/127\.0\.0\.1:\d+)/, "fixture address");
  fixture.stderr.resume();
  return base;
}

const TYPES = {
  ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html",
  ".json": "application/json", ".css": "text/css", ".map": "application/json",
};

/** Serves the files under `dir` (GET only, nothing outside it) on a free loopback port; resolves with its URL. */
export async function serveStatic(dir) {
  const base = resolve(dir);
  const server = createServer((req, res) => {
    let path;
    try { path = decodeURIComponent(new URL(req.url, "http://x").pathname); } catch { res.writeHead(400).end(); return; }
    let file = normalize(join(base, path));
    if (file !== base && !file.startsWith(base + sep)) { res.writeHead(404).end(); return; }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!existsSync(file)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  onCleanup(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

/** Starts headless Chromium; resolves with a DevTools session on its first page. */
export async function startChromium() {
  const profile = mkdtempSync(join(tmpdir(), "talkback-npm-chromium-"));
  onCleanup(() => rmSync(profile, { recursive: true, force: true }));
  const chromium = spawn(process.env.CHROMIUM || "chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--font-render-hinting=none", `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(chromium);
  const [, devtools] = await waitForOutput(chromium, "stderr", /DevTools listening on (ws:\/\/[^\s]+)/, "DevTools address");
  chromium.stderr.resume();
  const port = new URL(devtools).port;
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = targets.find((t) => t.type === "page");
  const page = new Page(new WebSocket(target.webSocketDebuggerUrl));
  await page.opened;
  onCleanup(() => page.ws.close());
  await page.send("Runtime.enable");
  await page.send("Page.enable");
  return page;
}

/** One DevTools session: commands, page console and exceptions (kept for failure reports). */
export class Page {
  constructor(ws) {
    this.ws = ws;
    this.next = 0;
    this.pending = new Map();
    this.log = [];
    this.opened = new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
    ws.on("message", (data) => {
      const msg = JSON.parse(data);
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const { ok, reject } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(new Error(JSON.stringify(msg.error))); else ok(msg.result);
      } else if (msg.method === "Runtime.consoleAPICalled") {
        const line = `[page ${msg.params.type}] ${msg.params.args.map((a) => a.value ?? a.description).join(" ")}`;
        this.log.push(line);
        if (process.env.VERBOSE) console.log(`  ${line}`);
      } else if (msg.method === "Runtime.exceptionThrown") {
        const d = msg.params.exceptionDetails;
        const line = `[page exception] ${d.exception?.description ?? d.text}`;
        this.log.push(line);
        if (process.env.VERBOSE) console.log(`  ${line}`);
      }
    });
  }

  send(method, params = {}) {
    return new Promise((ok, reject) => {
      const id = ++this.next;
      this.pending.set(id, { ok, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Evaluates `expression` in the page (awaiting a promise); returns its value. */
  async evaluate(expression) {
    const r = await this.send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  async navigate(url) {
    this.log = [];
    await this.send("Page.navigate", { url });
  }

  /**
   * Resolves with the value of `expression` once it is truthy: the page signals its state by
   * values it sets (window.results, data-* attributes); asked every 50 ms, up to `ms`.
   */
  async waitFor(expression, what, ms = 20000) {
    const deadline = Date.now() + ms;
    for (;;) {
      let value;
      try { value = await this.evaluate(expression); } catch { value = undefined; }
      if (value) return value;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${ms} ms waiting for ${what}${this.log.length ? `\n${this.log.join("\n")}` : ""}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Collects named results; `report()` prints them and `N passed, N failed`. */
export class Results {
  constructor() { this.list = []; }
  add(name, ok, error) {
    this.list.push({ name, ok, error });
    if (ok) console.log(`ok   ${name}`); else console.log(`FAIL ${name}\n     ${String(error).replace(/\n/g, "\n     ")}`);
  }
  /** Runs `f` as one result, within `ms`. */
  async check(name, f, ms = 60000) {
    try { await withTimeout(Promise.resolve().then(f), ms, name); this.add(name, true); return true; } catch (e) { this.add(name, false, e && e.stack || e); return false; }
  }
  report() {
    const passed = this.list.filter((r) => r.ok).length, failed = this.list.length - passed;
    console.log(`${passed} passed, ${failed} failed`);
    return failed === 0 && passed > 0;
  }
}
