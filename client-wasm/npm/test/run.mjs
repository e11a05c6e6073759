// The package test of talkback-signalr: the built package (client-wasm/npm/dist, made by
// scripts/build-npm.sh) loaded by a page in headless Chromium, driving the fixture through the
// JavaScript API.
//
//   node client-wasm/npm/test/run.mjs            (SCENARIOS=httpclient or protocols: only those)
//
// Then the scenarios of httpclient.js (a custom httpClient) and protocols.js (MessagePackHubProtocol's
// methods), beside the official client's browser bundles (tests/interop/node_modules/@microsoft:
// signalr at /official/, signalr-protocol-msgpack at /official-msgpack/). Then (SCENARIOS=classic
// for only these) classic.html, an app of classic scripts written for those official bundles, with
// the official bundles, then with the package's script-tag bundle (dist/browser) in their place:
// the same app code passes with each, the global `signalR` has every export of the official one
// and of the ES module, and the bundle finds its wasm module next to itself.
//
// Starts the fixture (TALKBACK_FIXTURE_BIN, else target/debug/talkback-fixture, else
// $CARGO_TARGET_DIR/debug/talkback-fixture) on a loopback port, a static server for the page and
// the package on another, and Chromium (CHROMIUM, else `chromium`) with the DevTools protocol
// on a third; runs the scenarios of scenarios.js in the page; prints `N passed, N failed`;
// exits non-zero on any failure; stops everything it started (also after TEST_TIMEOUT_MS).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  Results, dist, exitWith, here, officialBundles, officialMsgpackBundles, overallTimeout, relayAdmin, serveStatic,
  startChromium, startFixture,
} from "./harness.mjs";

overallTimeout(Number(process.env.TEST_TIMEOUT_MS || 240000), "package test");

// classic.html loads the package's script-tag bundle with this tag; the other variants are the
// same page with other scripts in its place (served by `classicRoute`). The official bundles go
// first: their globals are what the package's must match.
const CLASSIC_TAG = `<script src="/pkg/browser/talkback-signalr.js"></script>`;
const CLASSIC_VARIANTS = [
  ["official signalr.min.js + signalr-protocol-msgpack.min.js", "/classic-official.html",
    `<script src="/official/signalr.min.js"></script>\n<script src="/official-msgpack/signalr-protocol-msgpack.min.js"></script>`],
  ["talkback-signalr.js", "/classic.html", CLASSIC_TAG],
  ["talkback-signalr.min.js", "/classic-min.html", `<script src="/pkg/browser/talkback-signalr.min.js"></script>`],
];

/** Serves the variants of classic.html other than itself (a route of `serveStatic`). */
function classicRoute(req, res, path) {
  const variant = CLASSIC_VARIANTS.find(([, p]) => p === path && p !== "/classic.html");
  if (!variant) return false;
  const html = readFileSync(join(here, "classic.html"), "utf8");
  if (!html.includes(CLASSIC_TAG)) { res.writeHead(500).end(`classic.html has no ${CLASSIC_TAG}`); return true; }
  res.writeHead(200, { "content-type": "text/html", "cache-control": "no-store" }).end(html.replace(CLASSIC_TAG, variant[2]));
  return true;
}

// What a page's global `signalR` holds, and the wasm modules the page fetched.
const GLOBALS = `(() => {
  const g = globalThis.signalR;
  const types = (o) => Object.fromEntries(Object.keys(o || {}).map((k) => [k, typeof o[k]]));
  return {
    onWindow: Object.getOwnPropertyDescriptor(window, "signalR") !== undefined,
    exports: types(g),
    msgpack: types(g && g.protocols && g.protocols.msgpack),
    wasm: performance.getEntriesByType("resource").map((e) => e.name).filter((n) => /\\.wasm([?#]|$)/.test(n)),
  };
})()`;

/** Checks that `actual` has every key of `expected`, each of the same type. */
function assertSuperset(actual, expected, what) {
  const missing = Object.keys(expected).filter((k) => !(k in actual));
  if (missing.length) throw new Error(`${what}: missing ${missing.join(", ")}`);
  const differing = Object.keys(expected).filter((k) => actual[k] !== expected[k]);
  if (differing.length) throw new Error(`${what}: of another type: ${differing.map((k) => `${k} (${actual[k]}, not ${expected[k]})`).join(", ")}`);
}

/** classic.html with the official bundles, then with the package's script-tag bundle. */
async function runClassic(page, site, base, results) {
  const hub = `${base}/hubs/test`;
  let official;
  for (const [label, path] of CLASSIC_VARIANTS) {
    const name = (what) => `script tag (${label}): ${what}`;
    try {
      await page.navigate(`${site}${path}?hub=${encodeURIComponent(hub)}`);
      const list = await page.waitFor("window.results", `the results of ${path}`, 90000);
      for (const r of list) results.add(name(r.name), r.ok, r.error);
    } catch (e) {
      results.add(name("the app ran"), false, e && e.stack || e);
      continue;
    }
    const globals = await page.evaluate(GLOBALS);
    if (path === "/classic-official.html") { official = globals; continue; }
    await results.check(name("window.signalR has every export of the official signalR and signalR.protocols.msgpack"), () => {
      if (!globals.onWindow) throw new Error("no window.signalR");
      if (!official?.exports.HubConnectionBuilder || !official.msgpack.MessagePackHubProtocol) {
        throw new Error(`the official bundles' globals are unknown: ${JSON.stringify(official)}`);
      }
      assertSuperset(globals.exports, official.exports, "signalR");
      assertSuperset(globals.msgpack, official.msgpack, "signalR.protocols.msgpack");
    });
    await results.check(name("window.signalR has every export of the ES module, and protocols"), async () => {
      const module = await page.evaluate(`import("/pkg/index.js").then((m) => Object.fromEntries(Object.keys(m).map((k) => [k, typeof m[k]])))`);
      assertSuperset(globals.exports, { ...module, protocols: "object" }, "signalR");
      const extra = Object.keys(globals.exports).filter((k) => !(k in module) && k !== "protocols");
      if (extra.length) throw new Error(`signalR has more than the ES module: ${extra.join(", ")}`);
    });
    await results.check(name("the wasm module is fetched from next to the script"), () => {
      const expected = [`${site}/pkg/browser/talkback_wasm_bg.wasm`];
      if (JSON.stringify(globals.wasm) !== JSON.stringify(expected)) throw new Error(`fetched ${JSON.stringify(globals.wasm)}, not ${expected}`);
    });
  }

  // The same app in a classic worker (classic-worker.js) that loads the bundle with importScripts().
  for (const [label, bundle] of [["official signalr.min.js + signalr-protocol-msgpack.min.js", "official"], ["talkback-signalr.min.js", "talkback"]]) {
    const name = (what) => `classic worker, importScripts(${label}): ${what}`;
    let answer;
    try {
      answer = await page.evaluate(`new Promise((resolve, reject) => {
        const worker = new Worker("/classic-worker.js?bundle=${bundle}");
        const timer = setTimeout(() => { worker.terminate(); reject(new Error("no answer from the worker in 60 s")); }, 60000);
        worker.onerror = (e) => { clearTimeout(timer); worker.terminate(); reject(new Error("worker error: " + e.message)); };
        worker.onmessage = (e) => { clearTimeout(timer); worker.terminate(); resolve(e.data); };
        worker.postMessage({ hub: ${JSON.stringify(hub)} });
      })`);
    } catch (e) {
      results.add(name("the app ran"), false, e && e.stack || e);
      continue;
    }
    for (const r of answer.results) results.add(name(r.name), r.ok, r.error);
    if (bundle === "official") continue;
    await results.check(name("the wasm module is fetched from next to the imported script, not the worker's"), () => {
      const expected = [`${site}/pkg/browser/talkback_wasm_bg.wasm`];
      if (JSON.stringify(answer.wasm) !== JSON.stringify(expected)) throw new Error(`fetched ${JSON.stringify(answer.wasm)}, not ${expected}`);
    });
  }
}

async function main() {
  if (!existsSync(join(dist, "index.js"))) throw new Error("the package is not built: run scripts/build-npm.sh");
  const base = await startFixture(["--stateful-reconnect"]);

  // The page and the package, from another origin than the fixture (CORS as for real apps).
  const site = await serveStatic({ "/": here, "/pkg/": dist, "/official/": officialBundles, "/official-msgpack/": officialMsgpackBundles },
    { route: classicRoute });

  const page = await startChromium();
  page.echoExceptions = true;
  // The fixture's admin routes (faults) answer no CORS, so the page asks this process to call
  // them: `talkbackAdmin(JSON.stringify({ id, path }))`, answered by `talkbackAdminDone(id, status)`.
  page.on("Runtime.bindingCalled", async ({ name, payload }) => {
    if (name !== "talkbackAdmin") return;
    const { id, status } = await relayAdmin(base, payload);
    page.send("Runtime.evaluate", { expression: `talkbackAdminDone(${id}, ${status})` }).catch(() => {});
  });
  await page.send("Runtime.addBinding", { name: "talkbackAdmin" });
  // SCENARIOS=httpclient, protocols or classic runs only those scenarios.
  const only = process.env.SCENARIOS;
  const results = new Results();
  if (only !== "classic") {
    await page.navigate(`${site}/test.html`);
    await page.waitFor("window.ready === true", "the test page to load the package", 10000);
    const list = [];
    for (const [module, run] of [["", "runAll"], ["/httpclient.js", "runHttpClient"], ["/protocols.js", "runProtocols"]]) {
      if (only && !module.includes(only)) continue;
      const call = `${run}(${JSON.stringify(base)})`;
      list.push(...await page.evaluate(module ? `import(${JSON.stringify(module)}).then((m) => m.${call})` : call));
    }
    for (const t of list) results.add(t.name, t.ok, t.error);
  }
  if (!only || only === "classic") await runClassic(page, site, base, results);
  return results.report();
}

await exitWith(main, "package test");
