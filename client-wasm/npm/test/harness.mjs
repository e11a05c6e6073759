// What the package runners (run.mjs, firefox.mjs, packaging.mjs, demo.mjs, serverless.mjs)
// share: the fixture on a loopback port, static file servers, headless Chromium driven over the
// DevTools protocol, a time limit on everything, and the `N passed, N failed` summary. Every
// process and server started here is stopped on exit, on a signal, and after the overall timeout.

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../../..");
export const npmDir = resolve(here, "..");
export const dist = join(npmDir, "dist");
/** The official client's browser bundles (tests/interop's npm install). */
export const officialBundles = join(root, "tests/interop/node_modules/@microsoft/signalr/dist/browser");
export const officialMsgpackBundles = join(root, "tests/interop/node_modules/@microsoft/signalr-protocol-msgpack/dist/browser");

const children = [];
// The children that lead their own process group (spawned `detached`; a ChildProcess does not say).
const groupLeaders = new WeakSet();
const cleanups = [];
/** Runs the cleanups (latest first), then kills every child left (a detached one with its process group). */
export function cleanup() {
  for (const f of cleanups.splice(0)) { try { f(); } catch { /* best effort */ } }
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    try { process.kill(groupLeaders.has(c) ? -c.pid : c.pid, "SIGKILL"); } catch { /* already gone */ }
  }
}
export function onCleanup(f) { cleanups.unshift(f); }
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { cleanup(); process.exit(130); });

/** `spawn`, the child being killed on exit (with its process group when `options.detached`). */
export function spawnChild(command, args, options) {
  const child = spawn(command, args, options);
  children.push(child);
  if (options?.detached && child.pid) groupLeaders.add(child);
  return child;
}

/** Ends the process (failing, `<label>0 passed, 1 failed`) if the run takes longer than `ms`. */
export function overallTimeout(ms, what, label = "") {
  const t = setTimeout(() => {
    console.error(`${what}: overall timeout after ${ms} ms`);
    console.log(`${label}0 passed, 1 failed`);
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

/**
 * Runs `main` (resolving with whether everything passed), stops everything and exits: 0 when it
 * passed. When it throws, says why on stderr and prints `<label>0 passed, 1 failed`.
 */
export async function exitWith(main, what, label = "") {
  let ok = false;
  try {
    ok = await main();
  } catch (e) {
    console.error(`${what}: ${e && e.stack || e}`);
    console.log(`${label}0 passed, 1 failed`);
  }
  cleanup();
  process.exit(ok ? 0 : 1);
}

// How much of a child's output `waitForOutput` keeps to match against and to quote, in characters.
const OUTPUT_KEPT = 65536;
const OUTPUT_QUOTED = 2000;

/** Resolves with the first match of `re` in a child's output (the last 64 KiB of it). */
export function waitForOutput(child, stream, re, what, ms = 20000) {
  return new Promise((resolvePromise, reject) => {
    let text = "";
    const fail = (why) => {
      child[stream].off("data", onData);
      reject(new Error(text ? `${why}: ${text.slice(-OUTPUT_QUOTED)}` : why));
    };
    const t = setTimeout(() => fail(`no ${what} within ${ms} ms`), ms);
    function onData(d) {
      text = (text + d).slice(-OUTPUT_KEPT);
      const m = re.exec(text);
      if (m) { clearTimeout(t); child[stream].off("data", onData); resolvePromise(m); }
    }
    child[stream].on("data", onData);
    child.on("error", (e) => { clearTimeout(t); fail(`${what}: ${e.message}`); });
    child.on("exit", (code) => { clearTimeout(t); fail(`${what}: process exited (${code})`); });
  });
}

/**
 * Starts `command` (stopped on exit) and waits for `re` in its `stream` (stdout unless told);
 * resolves with the match. Its output is read and dropped from then on.
 */
export async function startListening(command, args, re, what, { stream = "stdout", detached = false } = {}) {
  const child = spawnChild(command, args, { stdio: ["ignore", "pipe", "pipe"], detached });
  const match = await waitForOutput(child, stream, re, what);
  child.stdout.resume();
  child.stderr.resume();
  return match;
}

/** Runs a command to its end; rejects with its output when it fails or takes longer than `ms`. */
export function run(command, args, { cwd, env, ms = 120000, quiet = true } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawnChild(command, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
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

/**
 * A binary of the workspace: the first of the `envNames` variables that is set to an existing
 * file, else target/debug/<name>, else $CARGO_TARGET_DIR/debug/<name>.
 */
export function findBinary(name, ...envNames) {
  const candidates = [...envNames.map((n) => process.env[n]), join(root, "target/debug", name),
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug", name)];
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) throw new Error(`${name} is not built (set ${envNames[0]}, or cargo build the crate that has it)`);
  return found;
}

/**
 * Starts the fixture (TALKBACK_FIXTURE_BIN, or the older TALKBACK_FIXTURE, else as `findBinary`)
 * on a free loopback port; resolves with its base URL.
 */
export async function startFixture(args = []) {
  const [, base] = await startListening(findBinary("talkback-fixture", "TALKBACK_FIXTURE_BIN", "TALKBACK_FIXTURE"),
    ["--port", "0", ...args], /listening on (http:\/\/127\.0\.0\.1:\d+)/, "fixture address");
  return base;
}

/**
 * Calls one of the fixture's admin routes (faults) for a page, which cannot: they answer no CORS.
 * `payload` is the page's JSON text `{ id, path }`, `path` under /admin/. Resolves with the id
 * and the fixture's HTTP status, 0 when the request is not one or the call fails.
 */
export async function relayAdmin(base, payload) {
  let id = 0, status = 0;
  try {
    const request = JSON.parse(payload);
    id = Number(request.id);
    if (typeof request.path !== "string" || !request.path.startsWith("/admin/")) throw new Error("not an admin path");
    status = (await fetch(`${base}${request.path}`, { method: "POST", headers: { "X-Talkback-Admin": "1" } })).status;
  } catch { status = 0; }
  return { id, status };
}

const TYPES = {
  ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html",
  ".json": "application/json", ".css": "text/css", ".map": "application/json",
};

/**
 * Serves files on a free loopback port, uncached; resolves with its URL. `dirs` is a directory,
 * served at `/`, or a map from URL prefixes (ending in `/`) to directories: a path is served from
 * the directory of its longest prefix, never from outside it; a directory by its index.html.
 * `route(req, res, path)`, when given, sees each request first and returns true when it answers
 * it itself.
 */
export async function serveStatic(dirs, { route } = {}) {
  const mounts = Object.entries(typeof dirs === "string" ? { "/": dirs } : dirs)
    .map(([prefix, dir]) => [prefix, resolve(dir)])
    .sort(([a], [b]) => b.length - a.length);
  const server = createServer((req, res) => {
    let path;
    try { path = decodeURIComponent(new URL(req.url, "http://x").pathname); } catch { res.writeHead(400).end(); return; }
    if (route && route(req, res, path)) return;
    const [prefix, base] = mounts.find(([p]) => path.startsWith(p)) ?? [];
    if (!base) { res.writeHead(404).end(); return; }
    let file = normalize(join(base, path.slice(prefix.length)));
    if (file !== base && !file.startsWith(base + sep)) { res.writeHead(404).end(); return; }
    let body;
    try {
      if (statSync(file).isDirectory()) file = join(file, "index.html");
      body = readFileSync(file);
    } catch { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  onCleanup(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

/**
 * Installs the tarball `npm pack` made (client-wasm/npm/<name>-<version>.tgz, by
 * scripts/build-npm.sh) into a fresh temporary app (removed on exit unless KEEP_APP is set) with
 * `npm install --offline`, as an app would, with its dependencies (`ws`) packed from this
 * folder's node_modules. Resolves with `{ app, installed, tarball, source }`:
 * the app's folder, the installed package's folder, the tarball and the source package.json.
 */
export async function installTarball(prefix = "talkback-signalr-app-") {
  const source = JSON.parse(readFileSync(join(npmDir, "package.json"), "utf8"));
  const tarball = join(npmDir, `${source.name}-${source.version}.tgz`);
  if (!existsSync(tarball)) throw new Error(`${tarball} is missing (scripts/build-npm.sh packs it)`);
  const app = mkdtempSync(join(tmpdir(), prefix));
  if (!process.env.KEEP_APP) onCleanup(() => rmSync(app, { recursive: true, force: true }));
  else console.log(`temporary app: ${app}`);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "tarball-app", private: true, type: "module" }, null, 2));
  // The package's dependencies (`ws`), from the test tools' install (npm ci here) packed into
  // tarballs too: an offline install cannot resolve a version range without the registry.
  const deps = [];
  for (const name of Object.keys(source.dependencies || {})) {
    const dir = join(here, "node_modules", name);
    if (!existsSync(dir)) throw new Error(`${dir} is missing: (cd ${here} && npm ci)`);
    const packed = (await run("npm", ["pack", "--silent", "--pack-destination", app, dir], { cwd: app })).trim().split("\n").pop();
    deps.push(join(app, packed));
  }
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", tarball, ...deps], { cwd: app });
  const installed = join(app, "node_modules", source.name);
  if (!existsSync(join(installed, "package.json"))) throw new Error("no node_modules/talkback-signalr/package.json after npm install");
  return { app, installed, tarball, source };
}

/**
 * The `ws` package's WebSocket: this folder's (npm ci here), else tests/interop's, so that
 * run.mjs needs only the latter. Loaded when Chromium is, so that firefox.mjs needs neither.
 */
async function webSocketClass() {
  try {
    return (await import("ws")).default;
  } catch {
    return (await import(join(root, "tests/interop/node_modules/ws/wrapper.mjs"))).default;
  }
}

/** Starts headless Chromium; resolves with a DevTools session on its first page. */
export async function startChromium() {
  const profile = mkdtempSync(join(tmpdir(), "talkback-npm-chromium-"));
  onCleanup(() => rmSync(profile, { recursive: true, force: true }));
  const [, devtools] = await startListening(process.env.CHROMIUM || "chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--font-render-hinting=none", `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank",
  ], /DevTools listening on (ws:\/\/[^\s]+)/, "DevTools address", { stream: "stderr" });
  const port = new URL(devtools).port;
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = targets.find((t) => t.type === "page");
  const WebSocket = await webSocketClass();
  const page = new Page(new WebSocket(target.webSocketDebuggerUrl));
  await page.opened;
  onCleanup(() => page.ws.close());
  await page.send("Runtime.enable");
  await page.send("Page.enable");
  return page;
}

/**
 * One DevTools session: commands, page console and exceptions (kept for failure reports, echoed
 * with VERBOSE; exceptions also when `echoExceptions` is set), and handlers of other events.
 */
export class Page {
  constructor(ws) {
    this.ws = ws;
    this.next = 0;
    this.pending = new Map();
    this.handlers = new Map();
    this.echoExceptions = false;
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
        if (process.env.VERBOSE || this.echoExceptions) console.log(`  ${line}`);
      } else if (this.handlers.has(msg.method)) {
        this.handlers.get(msg.method)(msg.params);
      }
    });
  }

  /** Calls `handler(params)` on each DevTools event `method` (one handler per event). */
  on(method, handler) { this.handlers.set(method, handler); }

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

/** Collects named results, printing each; `report(label)` prints `<label>N passed, N failed`. */
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
  report(label = "") {
    const passed = this.list.filter((r) => r.ok).length, failed = this.list.length - passed;
    console.log(`${label}${passed} passed, ${failed} failed`);
    return failed === 0 && passed > 0;
  }
}
