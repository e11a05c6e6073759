// The JavaScript API's scenarios (scenarios.js in test.html, the same page as run.mjs) in headless
// Firefox, driven over W3C WebDriver by geckodriver: plain HTTP from this process.
//
//   node client-wasm/npm/test/firefox.mjs
//
// By default it also runs the custom-httpClient scenarios of httpclient.js beside the official
// client's browser bundle (served at /official/ as run.mjs does), and the script-tag bundle in a
// page and in a classic worker; SCENARIOS=api runs only the API's scenarios, SCENARIOS=httpclient
// only those. (They once failed now and then in Firefox: a test race, and two real differences
// from the official client's stop() over long polling, both fixed in the engine.)
//
// Needs the built package (scripts/build-npm.sh), the fixture (TALKBACK_FIXTURE_BIN, else
// target/debug/talkback-fixture, else $CARGO_TARGET_DIR/debug/talkback-fixture), Firefox
// (FIREFOX_BIN, else `firefox-esr` on PATH) and geckodriver (GECKODRIVER, else
// /opt/geckodriver-0.37.1/bin/geckodriver, where scripts/browser-setup.sh installs it). Without
// Firefox or geckodriver it prints `Firefox: skipped (why)` and exits 0.
//
// run.mjs gives the page the fixture's admin routes through a DevTools binding; WebDriver has
// none, so here `window.talkbackAdmin` is a function injected into the page that posts to this
// process's static server (the page's own origin), which calls the fixture. Prints one line per
// scenario and `N passed, N failed`; exits non-zero on any failure; stops everything it started
// (also after TEST_TIMEOUT_MS, default 240 s).

import { accessSync, constants, existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import {
  Results, dist, exitWith, here, officialBundles, onCleanup, overallTimeout, relayAdmin, serveStatic, startFixture,
  startListening,
} from "./harness.mjs";

const GECKODRIVER_DEFAULT = "/opt/geckodriver-0.37.1/bin/geckodriver";
const scenarios = process.env.SCENARIOS || "all";
// The largest admin request body this process reads from the page, in bytes.
const MAX_ADMIN_BODY = 4096;

function executable(path) {
  try { accessSync(path, constants.X_OK); return true; } catch { return false; }
}

function onPath(name) {
  for (const dir of (process.env.PATH || "").split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return null;
}

// Why Firefox cannot run here, or null; fills `tools` with the two binaries.
function missing(tools) {
  const firefox = process.env.FIREFOX_BIN || onPath("firefox-esr");
  if (!firefox || !executable(firefox)) return "firefox-esr is not installed (scripts/browser-setup.sh installs it)";
  const driver = process.env.GECKODRIVER || GECKODRIVER_DEFAULT;
  if (!executable(driver)) return `no geckodriver at ${driver} (scripts/browser-setup.sh installs it)`;
  // The real binary, not Debian's /usr/bin wrapper script.
  tools.firefox = realpathSync(firefox);
  tools.driver = driver;
  return null;
}

// One W3C WebDriver command; resolves with its `value`, rejects with the driver's error.
async function command(driverUrl, method, path, body) {
  const response = await fetch(`${driverUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json; charset=utf-8" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(300000),
  });
  const text = await response.text();
  let json;
  try { json = JSON.parse(text); } catch { throw new Error(`WebDriver ${method} ${path}: HTTP ${response.status}: ${text.slice(0, 500)}`); }
  if (!response.ok || (json.value && json.value.error)) {
    const v = json.value || {};
    throw new Error(`WebDriver ${method} ${path}: ${v.error || response.status}: ${v.message || text.slice(0, 500)}`);
  }
  return json.value;
}

// Reads a small request body; null when it is larger than `limit` bytes.
function readBody(req, limit) {
  return new Promise((resolvePromise) => {
    const parts = [];
    let size = 0;
    req.on("data", (d) => {
      size += d.length;
      if (size > limit) { req.destroy(); resolvePromise(null); } else parts.push(d);
    });
    req.on("end", () => resolvePromise(Buffer.concat(parts).toString("utf8")));
    req.on("error", () => resolvePromise(null));
  });
}

// Run in the page before `runAll` (by a `<script>` element, so in the page's own realm: a
// WebDriver script runs in a sandbox with globals of its own, though it sees the page's expandos
// such as `window.runAll`). `window.talkbackAdmin` is what
// scenarios.js's `admin()` calls; it answers through `talkbackAdminDone` as run.mjs's binding
// does, with the page's `fetch` as it is now (a scenario that wraps `fetch` does not see it).
//
// The scenarios report a failure as `String(e.stack)`: V8 starts a stack with "Name: message",
// SpiderMonkey gives the frames alone. So that a failure here says what failed, the page's
// `Error.prototype.stack` getter (an accessor in Firefox) is wrapped to start the same way.
const PAGE_SETUP = `
  const stack = Object.getOwnPropertyDescriptor(Error.prototype, "stack");
  if (stack && stack.get) {
    Object.defineProperty(Error.prototype, "stack", {
      configurable: true,
      set: stack.set,
      get() {
        const frames = stack.get.call(this);
        return typeof frames === "string" ? this.name + ": " + this.message + "\\n" + frames : frames;
      },
    });
  }
  const pageFetch = window.fetch.bind(window);
  window.talkbackAdmin = (payload) => {
    let id = 0;
    try { id = Number(JSON.parse(payload).id); } catch { /* answered with status 0 */ }
    pageFetch("/__admin", { method: "POST", body: payload })
      .then((r) => r.json())
      .then((j) => window.talkbackAdminDone(id, j.status), () => window.talkbackAdminDone(id, 0));
  };
  // A module imported from a WebDriver script would be evaluated in the sandbox's realm (other
  // ArrayBuffer, other Error): this imports httpclient.js from the page.
  window.talkbackRunHttpClient = (base) => import("/httpclient.js").then((m) => m.runHttpClient(base));
  window.talkbackPageSetup = true;`;
const INSTALL = `
  const script = document.createElement("script");
  script.textContent = arguments[0];
  document.head.append(script);
  return [window.talkbackPageSetup === true, typeof window.runAll];`;

async function main(tools) {
  if (!existsSync(join(dist, "index.js"))) throw new Error("the package is not built: run scripts/build-npm.sh");
  const base = await startFixture(["--stateful-reconnect"]);

  // The page and the package, from another origin than the fixture (CORS as for real apps),
  // and the admin relay on the page's own origin.
  const site = await serveStatic({ "/": here, "/pkg/": dist, "/official/": officialBundles }, {
    route(req, res, path) {
      if (path !== "/__admin" || req.method !== "POST") return false;
      readBody(req, MAX_ADMIN_BODY)
        .then((payload) => relayAdmin(base, payload))
        .then(({ status }) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status })))
        .catch(() => res.destroy());
      return true;
    },
  });
  const page = `${site}/test.html`;

  // geckodriver in its own process group (harness.mjs's cleanup kills the group, so Firefox goes
  // with it), its profiles in a directory of ours.
  const profiles = mkdtempSync(join(tmpdir(), "talkback-firefox-test-"));
  onCleanup(() => rmSync(profiles, { recursive: true, force: true }));
  const [, driverAddress] = await startListening(tools.driver, ["--port", "0", "--profile-root", profiles, "--binary", tools.firefox],
    /Listening on (127\.0\.0\.1:\d+)/, "geckodriver address", { detached: true });
  const driverUrl = `http://${driverAddress}`;

  const session = await command(driverUrl, "POST", "/session", {
    capabilities: {
      alwaysMatch: {
        browserName: "firefox",
        "moz:firefoxOptions": { binary: tools.firefox, args: ["-headless"] },
        timeouts: { script: 200000, pageLoad: 60000 },
      },
    },
  });
  const sid = session.sessionId;
  const s = (method, path, body) => command(driverUrl, method, `/session/${sid}${path}`, body);
  onCleanup(() => { fetch(`${driverUrl}/session/${sid}`, { method: "DELETE" }).catch(() => {}); });
  console.log(`# ${session.capabilities.browserName} ${session.capabilities.browserVersion}, geckodriver at ${tools.driver}`);

  await s("POST", "/url", { url: page });
  for (let i = 0; ; i++) {
    if (await s("POST", "/execute/sync", { script: "return window.ready === true;", args: [] })) break;
    if (i > 200) throw new Error("the test page did not load the package");
    await new Promise((r) => setTimeout(r, 50));
  }
  const [setUp, runAllType] = await s("POST", "/execute/sync", { script: INSTALL, args: [PAGE_SETUP] });
  if (!setUp || runAllType !== "function") throw new Error(`the page is not ready (set up: ${setUp}, runAll: ${runAllType})`);
  const outcome = await s("POST", "/execute/async", {
    script: `const done = arguments[arguments.length - 1];
             (arguments[1] ? window.runAll(arguments[0]) : Promise.resolve([]))
               .then((results) => done({ results }), (e) => done({ error: String(e && e.stack || e) }));`,
    args: [base, scenarios !== "httpclient"],
  });
  if (outcome.error) throw new Error(`runAll threw: ${outcome.error}`);
  const results = [...outcome.results];
  if (scenarios === "all" || scenarios === "httpclient") {
    const more = await s("POST", "/execute/async", {
      script: `const done = arguments[arguments.length - 1];
               window.talkbackRunHttpClient(arguments[0]).then((results) => done({ results }), (e) => done({ error: String(e && e.stack || e) }));`,
      args: [base],
    });
    if (more.error) throw new Error(`runHttpClient threw: ${more.error}`);
    results.push(...more.results);
  }
  if (scenarios === "all") results.push(...await scriptTag(s, site, `${base}/hubs/test`));
  const report = new Results();
  for (const t of results) report.add(t.name, t.ok, t.error);
  await s("DELETE", "").catch(() => {});
  return report.report("Firefox: ");
}

/**
 * The script-tag bundle (browser/talkback-signalr.js) as run.mjs runs it in Chromium: classic.html,
 * an app of classic scripts written for the official bundles, then the same app in a classic
 * worker that loads the minified bundle with importScripts(). In a worker the bundle finds its
 * wasm module from the address a stack frame names, and Firefox writes frames its own way
 * (`f@https://...`), so this is the check that the lookup works there too.
 */
async function scriptTag(s, site, hub) {
  const results = [];
  const page = "script tag (talkback-signalr.js)";
  await s("POST", "/url", { url: `${site}/classic.html?hub=${encodeURIComponent(hub)}` });
  let list = null;
  for (let i = 0; !list; i++) {
    list = await s("POST", "/execute/sync", { script: "return window.results || null;", args: [] });
    if (list) break;
    if (i > 1200) return [{ name: `${page}: the app ran`, ok: false, error: "no results in 60 s" }];
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const r of list) results.push({ ...r, name: `${page}: ${r.name}` });
  const worker = "classic worker, importScripts(talkback-signalr.min.js)";
  const answer = await s("POST", "/execute/async", {
    script: `const done = arguments[arguments.length - 1];
             const w = new Worker("/classic-worker.js?bundle=talkback");
             const timer = setTimeout(() => { w.terminate(); done({ error: "no answer from the worker in 60 s" }); }, 60000);
             w.onerror = (e) => { clearTimeout(timer); w.terminate(); done({ error: "worker error: " + e.message }); };
             w.onmessage = (e) => { clearTimeout(timer); w.terminate(); done(e.data); };
             w.postMessage({ hub: arguments[0] });`,
    args: [hub],
  });
  if (answer.error) return [...results, { name: `${worker}: the app ran`, ok: false, error: answer.error }];
  for (const r of answer.results) results.push({ ...r, name: `${worker}: ${r.name}` });
  const expected = JSON.stringify([`${site}/pkg/browser/talkback_wasm_bg.wasm`]);
  const fetched = JSON.stringify(answer.wasm);
  results.push({ name: `${worker}: the wasm module is fetched from next to the imported script, not the worker's`,
    ok: fetched === expected, error: `fetched ${fetched}, not ${expected}` });
  return results;
}

const tools = {};
const why = missing(tools);
if (why) {
  console.log(`Firefox: skipped (${why})`);
  process.exit(0);
}
overallTimeout(Number(process.env.TEST_TIMEOUT_MS || 240000), "firefox package test", "Firefox: ");
await exitWith(() => main(tools), "firefox package test", "Firefox: ");
