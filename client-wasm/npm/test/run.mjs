// The package test of talkback-signalr: the built package (client-wasm/npm/dist, made by
// scripts/build-npm.sh) loaded by a page in headless Chromium, driving the fixture through the
// JavaScript API.
//
//   node client-wasm/npm/test/run.mjs            (SCENARIOS=httpclient or protocols: only those)
//
// Then the scenarios of httpclient.js (a custom httpClient) and protocols.js (MessagePackHubProtocol's
// methods), beside the official client's browser bundles (tests/interop/node_modules/@microsoft:
// signalr at /official/, signalr-protocol-msgpack at /official-msgpack/).
//
// Starts the fixture (TALKBACK_FIXTURE_BIN, else target/debug/talkback-fixture, else
// $CARGO_TARGET_DIR/debug/talkback-fixture) on a loopback port, a static server for the page and
// the package on another, and Chromium (CHROMIUM, else `chromium`) with the DevTools protocol
// on a third; runs the scenarios of scenarios.js in the page; prints `N passed, N failed`;
// exits non-zero on any failure; stops everything it started (also after TEST_TIMEOUT_MS).

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const dist = resolve(here, "../dist");
const officialDirs = {
  "/official/": join(root, "tests/interop/node_modules/@microsoft/signalr/dist/browser"),
  "/official-msgpack/": join(root, "tests/interop/node_modules/@microsoft/signalr-protocol-msgpack/dist/browser"),
};
const { default: WebSocket } = await import(join(root, "tests/interop/node_modules/ws/wrapper.mjs"));

const children = [];
const cleanups = [];
function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const f of cleanups.splice(0)) { try { f(); } catch { /* best effort */ } }
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { cleanup(); process.exit(130); });
const overall = setTimeout(() => {
  console.error("package test: overall timeout");
  cleanup();
  process.exit(1);
}, Number(process.env.TEST_TIMEOUT_MS || 240000));
overall.unref();

// Resolves with the first match of `re` in the child's output.
function waitFor(child, stream, re, what) {
  return new Promise((resolvePromise, reject) => {
    let text = "";
    const t = setTimeout(() => reject(new Error(`no ${what} within 20 s: ${text}`)), 20000);
    child[stream].on("data", (d) => {
      text += d;
      const m = re.exec(text);
      if (m) { clearTimeout(t); resolvePromise(m); }
    });
    child.on("exit", (code) => reject(new Error(`${what}: process exited (${code}): ${text}`)));
  });
}

function findFixture() {
  const candidates = [process.env.TALKBACK_FIXTURE_BIN, process.env.TALKBACK_FIXTURE, join(root, "target/debug/talkback-fixture"),
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug/talkback-fixture")];
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) throw new Error("talkback-fixture not built (cargo build -p talkback-fixture)");
  return found;
}

async function main() {
  if (!existsSync(join(dist, "index.js"))) throw new Error("the package is not built: run scripts/build-npm.sh");
  const fixture = spawn(findFixture(), ["--port", "0", "--stateful-reconnect"], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(fixture);
  const [, base] = await waitFor(fixture, "stdout", /listening on (http:\/\/127\.0\.0\.1:\d+)/, "fixture address");
  fixture.stderr.resume();

  // The page and the package, from another origin than the fixture (CORS as for real apps).
  const types = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".json": "application/json" };
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const prefix = ["/pkg/", ...Object.keys(officialDirs)].find((p) => path.startsWith(p));
    const [dir, rest] = prefix ? [officialDirs[prefix] ?? dist, path.slice(prefix.length)] : [here, path];
    const file = normalize(join(dir, rest));
    if (!file.startsWith(dir) || !existsSync(file)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": types[extname(file)] || "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => server.close());
  const page = `http://127.0.0.1:${server.address().port}/test.html`;

  const profile = mkdtempSync(join(tmpdir(), "talkback-npm-test-"));
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  const chromium = spawn(process.env.CHROMIUM || "chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  children.push(chromium);
  const [, devtools] = await waitFor(chromium, "stderr", /DevTools listening on (ws:\/\/[^\s]+)/, "DevTools address");
  const port = new URL(devtools).port;
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = targets.find((t) => t.type === "page");
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  cleanups.unshift(() => ws.close());
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  let next = 0;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(data);
    if (msg.id !== undefined && pending.has(msg.id)) {
      const { resolve: ok, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) reject(new Error(JSON.stringify(msg.error))); else ok(msg.result);
    } else if (msg.method === "Runtime.bindingCalled" && msg.params.name === "talkbackAdmin") {
      admin(msg.params.payload);
    } else if (msg.method === "Runtime.consoleAPICalled" && process.env.VERBOSE) {
      console.log(`  [page ${msg.params.type}]`, msg.params.args.map((a) => a.value ?? a.description).join(" "));
    } else if (msg.method === "Runtime.exceptionThrown") {
      console.log("  [page exception]", msg.params.exceptionDetails.exception?.description ?? msg.params.exceptionDetails.text);
    }
  });
  const send = (method, params = {}) => new Promise((ok, reject) => {
    const id = ++next;
    pending.set(id, { resolve: ok, reject });
    ws.send(JSON.stringify({ id, method, params }));
  });
  // The fixture's admin routes (faults) answer no CORS, so the page asks this process to call
  // them: `talkbackAdmin(JSON.stringify({ id, path }))`, answered by `talkbackAdminDone(id, status)`.
  async function admin(payload) {
    let id = 0, status = 0;
    try {
      const request = JSON.parse(payload);
      id = Number(request.id);
      if (typeof request.path !== "string" || !request.path.startsWith("/admin/")) throw new Error("not an admin path");
      status = (await fetch(`${base}${request.path}`, { method: "POST", headers: { "X-Talkback-Admin": "1" } })).status;
    } catch { status = 0; }
    send("Runtime.evaluate", { expression: `talkbackAdminDone(${id}, ${status})` }).catch(() => {});
  }
  await send("Runtime.addBinding", { name: "talkbackAdmin" });
  await send("Runtime.enable");
  await send("Page.enable");
  await send("Page.navigate", { url: page });
  for (let i = 0; ; i++) {
    const r = await send("Runtime.evaluate", { expression: "window.ready === true", returnByValue: true });
    if (r.result.value === true) break;
    if (i > 200) throw new Error("the test page did not load the package");
    await new Promise((r2) => setTimeout(r2, 50));
  }
  // SCENARIOS=httpclient (or protocols) runs only the scenarios of that module.
  const only = process.env.SCENARIOS;
  const results = [];
  for (const [module, run] of [["", "runAll"], ["/httpclient.js", "runHttpClient"], ["/protocols.js", "runProtocols"]]) {
    if (only && !module.includes(only)) continue;
    const call = `${run}(${JSON.stringify(base)})`;
    const r = await send("Runtime.evaluate", {
      expression: module ? `import(${JSON.stringify(module)}).then((m) => m.${call})` : call, awaitPromise: true, returnByValue: true,
    });
    if (r.exceptionDetails) throw new Error(`${run} threw: ${JSON.stringify(r.exceptionDetails)}`);
    results.push(...r.result.value);
  }
  let passed = 0, failed = 0;
  for (const t of results) {
    if (t.ok) { passed++; console.log(`ok   ${t.name}`); } else { failed++; console.log(`FAIL ${t.name}\n     ${t.error.replace(/\n/g, "\n     ")}`); }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0;
}

let ok = false;
try {
  ok = await main();
} catch (e) {
  console.error(`package test: ${e && e.stack || e}`);
  console.log("0 passed, 1 failed");
}
cleanup();
process.exit(ok ? 0 : 1);
