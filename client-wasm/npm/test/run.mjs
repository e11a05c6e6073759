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

import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  Results, dist, exitWith, here, officialBundles, officialMsgpackBundles, overallTimeout, relayAdmin, serveStatic,
  startChromium, startFixture,
} from "./harness.mjs";

overallTimeout(Number(process.env.TEST_TIMEOUT_MS || 240000), "package test");

async function main() {
  if (!existsSync(join(dist, "index.js"))) throw new Error("the package is not built: run scripts/build-npm.sh");
  const base = await startFixture(["--stateful-reconnect"]);

  // The page and the package, from another origin than the fixture (CORS as for real apps).
  const site = await serveStatic({ "/": here, "/pkg/": dist, "/official/": officialBundles, "/official-msgpack/": officialMsgpackBundles });

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
  await page.navigate(`${site}/test.html`);
  await page.waitFor("window.ready === true", "the test page to load the package", 10000);
  // SCENARIOS=httpclient (or protocols) runs only the scenarios of that module.
  const only = process.env.SCENARIOS;
  const list = [];
  for (const [module, run] of [["", "runAll"], ["/httpclient.js", "runHttpClient"], ["/protocols.js", "runProtocols"]]) {
    if (only && !module.includes(only)) continue;
    const call = `${run}(${JSON.stringify(base)})`;
    list.push(...await page.evaluate(module ? `import(${JSON.stringify(module)}).then((m) => m.${call})` : call));
  }
  const results = new Results();
  for (const t of list) results.add(t.name, t.ok, t.error);
  return results.report();
}

await exitWith(main, "package test");
