// The packaging test of talkback-signalr (issue #11, "Packaging"):
//
//   node client-wasm/npm/test/packaging.mjs      (after scripts/build-npm.sh and `npm ci` here)
//
// 1. installs the tarball `npm pack` made (client-wasm/npm/talkback-signalr-<version>.tgz) into a
//    fresh temporary app with `npm install --offline`, and checks what an app gets: an ES
//    module with types, an `exports` map, `sideEffects: false`, every listed file, no Node-only
//    code;
// 2. `tsc --noEmit` on the typed app (apps/typed-app) against the installed package, and the
//    same app against @microsoft/signalr;
// 3. bundles apps/esbuild with esbuild and apps/vite with Vite (page + worker, in Vite's default
//    worker format, a classic `iife` script: the package has no top-level await), and a classic
//    worker with esbuild's `--format=iife` (CLASSIC_PAGE), the wasm module copied next to it;
// 4. loads both bundles and an unbundled module worker (apps/worker) in headless Chromium, each
//    running apps/shared/scenario.js (invoke, stream, on()) against the fixture;
// 5. the lazy wasm initialisation, in a page written here (LAZY_PAGE): importing the package
//    fetches nothing, a connection just built is Disconnected, calls made before start() get the
//    official error, a module that cannot be loaded is start()'s error and a later start()
//    loads it;
// 6. the script-tag bundle (browser/talkback-signalr.min.js, the global `signalR`): in the
//    tarball with its wasm module beside it, reachable through the exports map, a classic
//    script; ../classic.html (an app of classic scripts, ../classic-app.js) runs against the
//    fixture with it.
// Prints `N passed, N failed`; exits non-zero on any failure. Everything it starts is stopped,
// also after TEST_TIMEOUT_MS (default 240 s). Set KEEP_APP=1 to keep the temporary app.

import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  Results, dist, here, installTarball, overallTimeout, run, serveStatic, startChromium, startFixture,
} from "./harness.mjs";

overallTimeout(Number(process.env.TEST_TIMEOUT_MS || 240000), "packaging test");
const results = new Results();
const tsc = join(here, "node_modules/typescript/bin/tsc");

function assert(cond, what) { if (!cond) throw new Error(what); }

// A classic (non-module) worker bundled by esbuild as an iife, where `import.meta.url` is empty:
// the package finds its wasm module next to the worker script (step 3).
const CLASSIC_WORKER = `import * as signalR from "talkback-signalr";
import { serveInWorker } from "../shared/scenario.js";
serveInWorker(signalR);
`;
const CLASSIC_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>talkback-signalr in a classic worker bundled by esbuild (iife)</title>
<script type="module">
import { publish, runInWorker } from "/shared/scenario.js";
const hub = new URLSearchParams(location.search).get("hub");
publish(runInWorker(() => new Worker("./worker.js"), hub, "classic worker (esbuild iife)"), "classic worker (esbuild iife)");
</script>
`;

// The lazy-initialisation page (step 5): the installed package, unbundled. Its `fetch` wrapper
// answers 404 for the wasm module until `failing` is cleared (the package looks `fetch` up when
// it loads the module, so a page can wrap it): start() must report it, a later start() work.
const LAZY_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>talkback-signalr: lazy wasm initialisation</title>
<script type="module">
const results = [];
const check = (name, ok, error) => results.push({ name: \`lazy init: \${name}\`, ok: !!ok, error: ok ? undefined : error });
const wasmRequests = [];
const realFetch = globalThis.fetch;
let failing = true;
globalThis.fetch = (input, init) => {
  const url = String(input && input.url ? input.url : input);
  if (url.endsWith(".wasm")) {
    wasmRequests.push(url);
    if (failing) return Promise.resolve(new Response("gone", { status: 404 }));
  }
  return realFetch(input, init);
};
try {
  const signalR = await import("../node_modules/talkback-signalr/index.js");
  await new Promise((r) => setTimeout(r, 100));
  check("importing the package fetches no wasm module", wasmRequests.length === 0, \`fetched \${wasmRequests}\`);
  const hub = new URLSearchParams(location.search).get("hub");
  const connection = new signalR.HubConnectionBuilder().withUrl(hub).configureLogging(signalR.LogLevel.None).build();
  check("a connection just built is Disconnected, with no id",
    connection.state === signalR.HubConnectionState.Disconnected && connection.connectionId === null,
    \`\${connection.state} \${connection.connectionId}\`);
  const early = await connection.invoke("Add", 1, 2).then((v) => \`resolved \${v}\`, (e) => String(e.message));
  check("invoke before start() gets the official error", early === "Cannot send data if the connection is not in the 'Connected' State.", early);
  const failed = await connection.start().then(() => "started", (e) => String(e && e.message || e));
  check("a wasm module that cannot be loaded is start()'s error, naming it",
    failed.startsWith("talkback-signalr could not load its WebAssembly module from ") && failed.includes("talkback_wasm_bg.wasm")
      && connection.state === signalR.HubConnectionState.Disconnected, \`\${failed}; \${connection.state}\`);
  failing = false;
  const before = wasmRequests.length;
  const starting = connection.start();
  check("the connection is Connecting while start() waits for the module", connection.state === signalR.HubConnectionState.Connecting,
    connection.state);
  await starting;
  const sum = await connection.invoke("Add", 40, 2);
  await connection.stop();
  check("a later start() loads the module and connects", sum === 42 && wasmRequests.length === before + 1,
    \`Add gave \${sum}; requests \${before} then \${wasmRequests.length}\`);
} catch (e) {
  results.push({ name: "lazy init: the page ran", ok: false, error: String(e && e.stack || e) });
}
globalThis.results = results;
</script>
`;

async function main() {
  if (!existsSync(join(dist, "index.js"))) throw new Error("the package is not built: run scripts/build-npm.sh");
  if (!existsSync(join(here, "node_modules/vite"))) throw new Error(`the test tools are not installed: (cd ${here} && npm ci)`);
  // ---- 1. the tarball, installed into an app
  let app, installed, source;
  const packed = await results.check("npm pack's tarball installs into a fresh app with npm install --offline", async () => {
    ({ app, installed, source } = await installTarball());
  });
  if (!packed) return;

  await results.check("the installed package is an ES module with an exports map, types and sideEffects false", () => {
    const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8"));
    assert(pkg.type === "module", `"type": ${JSON.stringify(pkg.type)}`);
    assert(pkg.sideEffects === false, `"sideEffects": ${JSON.stringify(pkg.sideEffects)}`);
    assert(pkg.types === "./index.d.ts" && pkg.exports?.["."]?.types === "./index.d.ts", "types in the package and in exports['.']");
    assert(pkg.exports["."].import === "./index.js" && pkg.exports["."].default === "./index.js", "exports['.'] import/default");
    for (const f of pkg.files) {
      if (f !== "README.md") assert(existsSync(join(installed, f)), `listed file ${f} is in the tarball`);
    }
    const files = readdirSync(installed).sort();
    for (const f of files) assert(pkg.files.includes(f) || f === "package.json" || /^(README|LICEN[CS]E)/i.test(f), `unexpected file ${f} in the tarball`);
    // What the exports map lets an app (and a bundler) resolve, and what it keeps private.
    const require = createRequire(join(app, "package.json"));
    assert(require.resolve(source.name) === join(installed, "index.js"), `'${source.name}' resolves to index.js`);
    assert(existsSync(require.resolve(`${source.name}/talkback_wasm_bg.wasm`)), "the wasm module is exported for copying");
    let hidden = false;
    try { require.resolve(`${source.name}/msgpack.js`); } catch (e) { hidden = e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED"; }
    assert(hidden, "internal modules are not exported");
  });

  // In Node.js the package reads its wasm file with node:fs and opens WebSockets with `ws`, both
  // reached through `process.getBuiltinModule` (fs, and module's createRequire for ws): nothing
  // a bundler follows, so neither reaches a browser bundle (checked on the esbuild bundle
  // below). So a Node module's name may appear as a string; what is refused is code a bundler
  // would follow or warn about, or a browser could not run: require(), a static or literal
  // dynamic import of a Node module or of `ws`, an `import()` of a computed name (webpack warns
  // "Critical dependency" on those), `process.`, Buffer, __dirname, module.exports.
  await results.check("the package's JavaScript has no Node-only code", () => {
    const nodeModule = "(node:[\\w/]+|fs|fs/promises|path|url|os|crypto|util|stream|http|https|child_process|worker_threads|module|ws)";
    const nodeOnly = [/\brequire\s*\(/, /\bprocess\s*\./, /\bBuffer\b/, /__dirname|__filename/, /\bmodule\.exports\b/,
      new RegExp(`from\\s*["']${nodeModule}["']`), new RegExp(`\\bimport\\s*\\(\\s*(/\\*.*?\\*/\\s*)*["'\`]${nodeModule}["'\`]`),
      /\bimport\s*\(\s*(\/\*.*?\*\/\s*)*(?!["'`])[\w$]/];
    const scripts = [...readdirSync(installed), ...readdirSync(join(installed, "browser")).map((n) => `browser/${n}`)];
    for (const f of scripts.filter((n) => n.endsWith(".js"))) {
      const text = readFileSync(join(installed, f), "utf8");
      for (const re of nodeOnly) {
        const m = re.exec(text);
        assert(!m, `${f}: Node-only code ${JSON.stringify(m && text.slice(Math.max(0, m.index - 40), m.index + 40))}`);
      }
      assert(!/^\s*import\s[^;]*from\s+["'](?!\.\/)/m.test(text), `${f} imports only its own files`);
    }
  });

  // ---- 6. the script-tag bundle (its page runs with the others, in step 4)
  const scriptTag = await results.check("the tarball holds the script-tag bundle (browser/), a classic script with its wasm module beside it", () => {
    const require = createRequire(join(app, "package.json"));
    const wasm = readFileSync(require.resolve(`${source.name}/talkback_wasm_bg.wasm`));
    const beside = readFileSync(require.resolve(`${source.name}/browser/talkback_wasm_bg.wasm`));
    assert(wasm.equals(beside), "browser/talkback_wasm_bg.wasm is the package's wasm module");
    for (const f of ["talkback-signalr.js", "talkback-signalr.min.js"]) {
      const text = readFileSync(require.resolve(`${source.name}/browser/${f}`), "utf8");
      assert(/^var signalR ?= ?\(\(\) ?=> ?\{/.test(text), `${f} sets the global signalR: ${JSON.stringify(text.slice(0, 40))}`);
      assert(!/^\s*(import|export)\s/m.test(text), `${f} is a classic script (no import or export statement)`);
    }
  });
  const classicHtml = readFileSync(join(here, "classic.html"), "utf8");
  const tag = `<script src="/pkg/browser/talkback-signalr.js"></script>`;
  mkdirSync(join(app, "script-tag"), { recursive: true });
  cpSync(join(here, "classic-app.js"), join(app, "classic-app.js"));
  writeFileSync(join(app, "script-tag/index.html"),
    classicHtml.replace(tag, `<script src="/node_modules/${source.name}/browser/talkback-signalr.min.js"></script>`));

  cpSync(join(here, "apps"), app, { recursive: true });
  mkdirSync(join(app, "lazy"), { recursive: true });
  writeFileSync(join(app, "lazy/index.html"), LAZY_PAGE);
  mkdirSync(join(app, "classic"), { recursive: true });
  writeFileSync(join(app, "classic/worker.js"), CLASSIC_WORKER);

  // ---- 2. TypeScript
  await results.check("tsc --noEmit passes on the typed app against the installed package", async () => {
    await run(process.execPath, [tsc, "-p", join(app, "typed-app/tsconfig.json")]);
  });
  await results.check("the same typed app passes tsc --noEmit against @microsoft/signalr", async () => {
    await run(process.execPath, [tsc, "-p", join(here, "apps/typed-app/tsconfig.official.json")]);
  });

  // ---- 3. bundles
  const out = join(app, "out");
  const esbuildOk = await results.check("esbuild bundles an app that imports the package (platform browser, ESM)", async () => {
    const esbuild = await import("esbuild");
    await esbuild.build({
      entryPoints: [join(app, "esbuild/main.js")], bundle: true, format: "esm", platform: "browser", target: "es2022",
      outdir: join(out, "esbuild"), logLevel: "error", absWorkingDir: app,
    });
    cpSync(join(app, "esbuild/index.html"), join(out, "esbuild/index.html"));
    // esbuild leaves `new URL("./talkback_wasm_bg.wasm", import.meta.url)` alone: the app ships
    // the module next to its bundle, found through the package's exports map.
    const require = createRequire(join(app, "package.json"));
    cpSync(require.resolve(`${source.name}/talkback_wasm_bg.wasm`), join(out, "esbuild/talkback_wasm_bg.wasm"));
    const bundle = readFileSync(join(out, "esbuild/main.js"), "utf8");
    assert(bundle.includes("RawConnection"), "the bundle holds the package");
    // The package's Node.js support stays out of a browser bundle: esbuild did not follow the
    // import of `ws` (it would have failed on node:fs, a Node module, for platform browser).
    assert(!/permessage-deflate|Sec-WebSocket-Key/i.test(bundle), "the bundle holds no code of the ws package");
  });
  const classicOk = await results.check("esbuild bundles a classic worker that imports the package (format iife)", async () => {
    const esbuild = await import("esbuild");
    await esbuild.build({
      entryPoints: [join(app, "classic/worker.js")], bundle: true, format: "iife", platform: "browser", target: "es2022",
      outdir: join(out, "classic"), logLevel: "error", absWorkingDir: app,
    });
    writeFileSync(join(out, "classic/index.html"), CLASSIC_PAGE);
    const require = createRequire(join(app, "package.json"));
    cpSync(require.resolve(`${source.name}/talkback_wasm_bg.wasm`), join(out, "classic/talkback_wasm_bg.wasm"));
    const bundle = readFileSync(join(out, "classic/worker.js"), "utf8");
    assert(!/^\s*(import|export)\s/m.test(bundle) && !/\bawait\s+init\b/.test(bundle), "a classic script with no top-level await");
  });
  const viteOk = await results.check("Vite builds an app (page and worker) that imports the package, with its default worker format", async () => {
    const { build } = await import("vite");
    // No `worker` options: Vite's default worker format is `iife`, which cannot hold a top-level
    // await; the package initialises its wasm lazily, so it needs none.
    await build({
      root: join(app, "vite"), base: "./", configFile: false, logLevel: "error", publicDir: false,
      build: { outDir: join(out, "vite"), emptyOutDir: true },
    });
    const assets = readdirSync(join(out, "vite/assets"));
    const workers = assets.filter((f) => /^worker.*\.js$/.test(f));
    assert(workers.length === 1, `one worker bundle (${assets.join(", ")})`);
    const worker = readFileSync(join(out, "vite/assets", workers[0]), "utf8");
    assert(!/^\s*(import|export)\s/m.test(worker) && /^\s*\(function\b|^\s*\(\(\)\s*=>/.test(worker),
      `the worker bundle is a classic script (iife): ${JSON.stringify(worker.slice(0, 80))}`);
    assert(assets.some((f) => f.endsWith(".wasm")), `Vite emitted the wasm module (${assets.join(", ")})`);
    const wasmSize = statSync(join(installed, "talkback_wasm_bg.wasm")).size;
    const emitted = assets.filter((f) => f.endsWith(".wasm")).map((f) => statSync(join(out, "vite/assets", f)).size);
    assert(emitted.includes(wasmSize), `the emitted wasm is the package's (${emitted} vs ${wasmSize} bytes)`);
  });

  // ---- 4. in the browser, against the fixture
  const fixture = await startFixture();
  const hub = `${fixture}/hubs/test`;
  const site = await serveStatic(app);
  const page = await startChromium();
  const pages = [
    ["esbuild bundle", esbuildOk, "/out/esbuild/index.html"],
    ["Vite bundle", viteOk, "/out/vite/index.html"],
    ["module worker (unbundled)", true, "/worker/index.html"],
    ["classic worker (esbuild iife)", classicOk, "/out/classic/index.html"],
    ["lazy init page (unbundled)", true, "/lazy/index.html"],
    ["script tag (installed browser/talkback-signalr.min.js)", scriptTag && classicHtml.includes(tag), "/script-tag/index.html", true],
  ];
  for (const [label, built, path, prefixed] of pages) {
    if (!built) { results.add(`${label}: runs in headless Chromium`, false, "not built (see above)"); continue; }
    try {
      await page.navigate(`${site}${path}?hub=${encodeURIComponent(hub)}`);
      const list = await page.waitFor("globalThis.results", `the results of the ${label}`, 90000);
      for (const r of list) results.add(prefixed ? `${label}: ${r.name}` : r.name, r.ok, r.error);
    } catch (e) {
      results.add(`${label}: runs in headless Chromium`, false, e && e.stack || e);
    }
  }
}

let ok = false;
try {
  await main();
} catch (e) {
  results.add("packaging test setup", false, e && e.stack || e);
}
ok = results.report();
process.exit(ok ? 0 : 1);
