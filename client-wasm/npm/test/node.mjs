// The Node.js test of talkback-signalr (issue #11: the package works in Node.js, as
// @microsoft/signalr does there):
//
//   node client-wasm/npm/test/node.mjs    (after scripts/build-npm.sh and `npm ci` here;
//                                         SCENARIOS=scenarios, httpclient, protocols or node: only those)
//
// 1. installs the tarball `npm pack` made into a fresh temporary app (`npm install --offline`,
//    which brings the package's `ws` dependency), as an app does;
// 2. runs the scenario modules of run.mjs (scenarios.js, httpclient.js, protocols.js) in this
//    Node.js process against the fixture, through the installed package (copied into the app
//    with their `/pkg/index.js` import pointed at `talkback-signalr`), with `window` as the
//    global object holding the admin binding, and the official client's Node.js build (from
//    tests/interop) as `window.signalR` for the scenarios that compare with it;
// 3. the Node.js behaviours, most beside the official client running the same code: WebSockets
//    with `ws` by default and with the `WebSocket` option (the upgrade's headers), Server-Sent
//    Events' headers, cookies a server sets (sent back on every request, the upgrade included,
//    through a proxy that sets them), the `EventSource` option (accepted, not used), no `ws`
//    (Node.js 22's WebSocket, or none: skipped as not supported, with the official error),
//    require() from CommonJS, an app bundled into one CommonJS file by esbuild, and a child
//    process that starts, calls, stops and must then end by itself (nothing left holding the
//    event loop), over each transport.
// Prints `N passed, N failed`; exits non-zero on any failure. Everything it starts is stopped,
// also after TEST_TIMEOUT_MS (default 240 s).

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawn } from "node:child_process";
import { createServer, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  Results, dist, exitWith, here, installTarball, onCleanup, overallTimeout, relayAdmin, root, startFixture,
} from "./harness.mjs";

overallTimeout(Number(process.env.TEST_TIMEOUT_MS || 240000), "Node.js test");

// How long a child process may take to end after `await connection.stop()` resolved: it takes
// tens of milliseconds; a timer left behind (the WebSocket's 2 s wait for the server's close
// frame, say) makes it longer.
const EXIT_AFTER_STOP_MS = Number(process.env.EXIT_AFTER_STOP_MS || 1500);

function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

// The official client's Node.js build (CommonJS, with its ws, eventsource, fetch-cookie), and its
// MessagePack protocol, from tests/interop's npm install.
function officialClient() {
  const require = createRequire(join(root, "tests/interop/package.json"));
  const signalR = require("@microsoft/signalr");
  const msgpack = require("@microsoft/signalr-protocol-msgpack");
  return { ...signalR, protocols: { msgpack } };
}

// The scenario modules of run.mjs, copied into the app with their import of the package pointed
// at the installed one.
function copyScenarios(app) {
  const dir = join(app, "scenarios");
  mkdirSync(dir, { recursive: true });
  for (const f of ["scenarios.js", "httpclient.js", "protocols.js"]) {
    const text = readFileSync(join(here, f), "utf8");
    if (!text.includes('"/pkg/index.js"')) throw new Error(`${f} no longer imports "/pkg/index.js"`);
    writeFileSync(join(dir, f), text.replaceAll('"/pkg/index.js"', '"talkback-signalr"'));
  }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  return dir;
}

// Runs `node --input-type=<type> -e <code>` in `cwd`; resolves with its output lines, its exit
// code and how long it took to end after it printed `stopped` (null if it did not). Killed after
// `ms`.
function runChild(cwd, code, { ms = 20000, type = "module" } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`--input-type=${type}`, "-e", code], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "", stoppedAt = null;
    child.stdout.on("data", (d) => {
      out += d;
      if (stoppedAt === null && /^stopped$/m.test(out)) stoppedAt = Date.now();
    });
    child.stderr.on("data", (d) => { err += d; });
    const t = setTimeout(() => { child.kill("SIGKILL"); }, ms);
    child.on("error", (e) => { clearTimeout(t); reject(e); });
    child.on("exit", (exitCode, signal) => {
      clearTimeout(t);
      resolve({
        lines: out.split("\n").filter(Boolean), stderr: err, exitCode, signal,
        afterStop: stoppedAt === null ? null : Date.now() - stoppedAt,
      });
    });
  });
}

// Runs a program to its end (killed after `ms`): its exit code and what it printed.
function runProcess(file, args, cwd, ms = 20000) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => { stdout += d; });
    child.stderr.on("data", (d) => { stderr += d; });
    const t = setTimeout(() => { child.kill("SIGKILL"); }, ms);
    child.on("error", (e) => { clearTimeout(t); reject(e); });
    child.on("exit", (exitCode) => { clearTimeout(t); resolve({ stdout, stderr, exitCode }); });
  });
}

// What one connection of `lib` sees of itself at the server, over `transport`, with an access
// token and a header of its own; `extra` adds connection options. The user agent keeps its
// shape: its detailed version (ours `talkback x.y.z`, the official's `10.0.n`) is replaced.
async function seenByServer(lib, hub, transport, extra = {}) {
  const c = new lib.HubConnectionBuilder()
    .withUrl(hub, { transport: lib.HttpTransportType[transport], accessTokenFactory: () => "dave", headers: { "X-App": "a" }, ...extra })
    .configureLogging(lib.LogLevel.None)
    .build();
  await c.start();
  const header = (name) => c.invoke("GetHeader", name);
  const seen = {
    upgrade: await header("upgrade"),
    userAgent: String(await header("user-agent")).replace(/^(Microsoft SignalR\/\d+\.\d+ \()[^;]+;/, "$1<version>;"),
    xApp: await header("x-app"),
    xRequestedWith: await header("x-requested-with"),
    user: await c.invoke("GetUserId"),
  };
  await c.stop();
  return seen;
}

// The cookies of a Cookie header that the proxy below set. (The official client's Node.js
// build puts each cookie's attributes in the header of the WebSocket upgrade and the SSE
// request too, "affinity=node-1; Path=/; HttpOnly": those are not cookies it was given.)
const setCookies = (header) => (header ?? "").split(";").map((c) => c.trim())
  .filter((c) => /^(affinity|elsewhere)=/.test(c)).join("; ") || "(none)";

// A proxy in front of the fixture that sets cookies on the negotiate response, as a load
// balancer sets its affinity cookie (one for another path too), and records the Cookie header
// of every request after it, the WebSocket upgrade included. Resolves with its URL and the
// list it fills.
async function cookieProxy(target) {
  const t = new URL(target);
  const seen = [];
  const server = createServer((req, res) => {
    const negotiate = /\/negotiate(\?|$)/.test(req.url);
    if (!negotiate) seen.push(`${req.method} ${setCookies(req.headers.cookie)}`);
    const upstream = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      const headers = { ...r.headers };
      if (negotiate) headers["set-cookie"] = ["affinity=node-1; Path=/; HttpOnly", "elsewhere=x; Path=/other"];
      res.writeHead(r.statusCode, headers);
      r.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on("upgrade", (req, socket, head) => {
    seen.push(`UPGRADE ${setCookies(req.headers.cookie)}`);
    const upstream = connect(Number(t.port), t.hostname, () => {
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${text}\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  onCleanup(() => { server.closeAllConnections?.(); server.close(); });
  return { url: `http://127.0.0.1:${server.address().port}`, seen };
}

// A `WebSocket` option that records how it is called, over the `ws` package's class.
function recordingWebSocket(WS) {
  const calls = [];
  class Recording extends WS {
    constructor(url, protocols, options) {
      super(url, protocols, options);
      calls.push({
        url: url.replace(/id=[^&]+/, "id=<id>"),
        protocols: protocols === undefined ? "undefined" : protocols,
        headers: Object.keys(options?.headers || {}).sort(),
      });
    }
  }
  return { Recording, calls };
}

async function main() {
  if (!existsSync(join(dist, "index.js"))) throw new Error("the package is not built: run scripts/build-npm.sh");
  const results = new Results();
  const base = await startFixture(["--stateful-reconnect"]);
  const hub = `${base}/hubs/test`;
  const only = process.env.SCENARIOS;

  let app;
  const installed = await results.check("npm pack's tarball installs into a fresh app, with its ws dependency", async () => {
    ({ app } = await installTarball("talkback-signalr-node-app-"));
    if (!existsSync(join(app, "node_modules/ws/package.json"))) throw new Error("node_modules/ws is missing after the install");
  }, 120000);
  if (!installed) return results.report();
  const talkback = await import(pathToFileURL(join(app, "node_modules/talkback-signalr/index.js")).href);
  const official = officialClient();

  // ---- 2. the scenarios of run.mjs, in Node.js
  globalThis.window = globalThis;
  globalThis.signalR = official;
  // The fixture's admin routes: the scenarios ask as they ask run.mjs (see scenarios.js, admin()).
  globalThis.talkbackAdmin = (payload) => {
    relayAdmin(base, payload).then(({ id, status }) => globalThis.talkbackAdminDone(id, status));
  };
  const dir = copyScenarios(app);
  for (const [module, run] of [["scenarios.js", "runAll"], ["httpclient.js", "runHttpClient"], ["protocols.js", "runProtocols"]]) {
    if (only && !module.includes(only)) continue;
    try {
      const m = await import(pathToFileURL(join(dir, module)).href);
      for (const t of await m[run](base)) results.add(`node: ${t.name}`, t.ok, t.error);
    } catch (e) {
      results.add(`node: ${module} runs`, false, e && e.stack || e);
    }
  }
  if (only && only !== "node") return results.report();

  // ---- 3. the Node.js behaviours, as the official client's
  await results.check("node: WebSockets go through the ws package by default, with the official client's Node.js headers on the upgrade", async () => {
    const ours = await seenByServer(talkback, hub, "WebSockets");
    assertEq(ours, {
      upgrade: "websocket", userAgent: `Microsoft SignalR/10.0 (<version>; ${{ linux: "Linux", darwin: "macOS", win32: "Windows NT" }[process.platform] ?? process.platform}; NodeJS; ${process.versions.node})`,
      xApp: "a", xRequestedWith: null, user: "dave",
    }, "talkback-signalr");
    assertEq(ours, await seenByServer(official, hub, "WebSockets"), "as official");
  });

  await results.check("node: the WebSocket option's constructor makes the sockets, called as the official client calls it", async () => {
    const WS = (await import(pathToFileURL(join(app, "node_modules/ws/wrapper.mjs")).href)).default;
    const mine = recordingWebSocket(WS);
    const theirs = recordingWebSocket(WS);
    const ours = await seenByServer(talkback, hub, "WebSockets", { WebSocket: mine.Recording });
    const them = await seenByServer(official, hub, "WebSockets", { WebSocket: theirs.Recording });
    assertEq(mine.calls.length, 1, "one socket made by the option");
    assertEq(mine.calls[0].headers, ["Authorization", "User-Agent", "X-App"], "the upgrade's headers");
    assertEq([ours, mine.calls], [them, theirs.calls], "as official");
  });

  await results.check("node: Server-Sent Events carry the user agent and the app's headers, as the official client's", async () => {
    const ours = await seenByServer(talkback, hub, "ServerSentEvents");
    assertEq([ours.upgrade, ours.xApp, ours.user], [null, "a", "dave"], "talkback-signalr");
    assertEq(ours, await seenByServer(official, hub, "ServerSentEvents"), "as official");
  });

  const proxy = await cookieProxy(base);
  for (const [transport, client] of [["WebSockets"], ["ServerSentEvents"], ["LongPolling"],
    ["WebSockets", "DefaultHttpClient"], ["ServerSentEvents", "DefaultHttpClient"]]) {
    const how = client ? `, a ${client} as httpClient` : "";
    await results.check(`node: cookies set by the negotiate response go back on every later request of the connection (${transport}${how}), as the official client's`, async () => {
      const cookiesSeen = async (lib) => {
        proxy.seen.length = 0;
        const httpClient = client ? new lib[client](lib.NullLogger.instance) : undefined;
        const c = new lib.HubConnectionBuilder().withUrl(`${proxy.url}/hubs/test`, { transport: lib.HttpTransportType[transport], httpClient })
          .configureLogging(lib.LogLevel.None).build();
        await c.start();
        await c.invoke("Add", 1, 2);
        await c.stop();
        await new Promise((r) => setTimeout(r, 50));
        return [...new Set(proxy.seen)].sort();
      };
      const ours = await cookiesSeen(talkback);
      const expected = { WebSockets: ["UPGRADE affinity=node-1"], ServerSentEvents: ["GET affinity=node-1", "POST affinity=node-1"],
        LongPolling: ["DELETE affinity=node-1", "GET affinity=node-1", "POST affinity=node-1"] }[transport];
      assertEq(ours, expected, "talkback-signalr");
      assertEq(ours, await cookiesSeen(official), "as official");
    });
  }

  await results.check("node: the EventSource option is accepted and not used (the stream is read with fetch)", async () => {
    let made = 0;
    const EventSource = class { constructor() { made++; throw new Error("not expected"); } };
    const ours = await seenByServer(talkback, hub, "ServerSentEvents", { EventSource });
    assertEq([ours.xApp, ours.user, made], ["a", "dave", 0], "SSE without the EventSource option's class");
  });

  await results.check("node: a relative hub URL fails build() with the official error", async () => {
    const build = (lib) => { try { new lib.HubConnectionBuilder().withUrl("hubs/test").build(); return "built"; } catch (e) { return e.message; } };
    assertEq(build(talkback), "Cannot resolve 'hubs/test'.", "talkback-signalr");
    assertEq(build(talkback), build(official), "as official");
  });

  // A copy of the installed package with no `ws` beside it or above it, in a process with no
  // global WebSocket (Node.js 22 has one; it is removed).
  const bare = mkdtempSync(join(tmpdir(), "talkback-signalr-no-ws-"));
  onCleanup(() => rmSync(bare, { recursive: true, force: true }));
  cpSync(join(app, "node_modules/talkback-signalr"), join(bare, "node_modules/talkback-signalr"), { recursive: true });
  writeFileSync(join(bare, "package.json"), JSON.stringify({ type: "module", private: true }));
  await results.check("node: with no ws and no global WebSocket, WebSockets is skipped as not supported and the client falls back, with the official error when it is the only transport", async () => {
    const { lines, stderr, exitCode } = await runChild(bare, `
      delete globalThis.WebSocket;
      const s = await import("talkback-signalr");
      const hub = ${JSON.stringify(hub)};
      const c = new s.HubConnectionBuilder().withUrl(hub).configureLogging(s.LogLevel.None).build();
      await c.start();
      console.log(JSON.stringify(["fallback", await c.invoke("GetHeader", "upgrade"), await c.invoke("Add", 1, 2)]));
      await c.stop();
      const only = new s.HubConnectionBuilder().withUrl(hub, s.HttpTransportType.WebSockets).configureLogging(s.LogLevel.None).build();
      const e = await only.start().then(() => undefined, (e) => e);
      console.log(JSON.stringify(["only", e && e.message, e && e.innerErrors && e.innerErrors[1].errorType]));
    `);
    assertEq([exitCode, stderr], [0, ""], "the child ran");
    assertEq(JSON.parse(lines[0]), ["fallback", null, 3], "fell back from WebSockets");
    assertEq(JSON.parse(lines[1]), ["only",
      "Unable to connect to the server with any of the available transports. WebSockets failed: Error: 'WebSockets' is not supported in your environment. ServerSentEvents failed: Error: 'ServerSentEvents' is disabled by the client. LongPolling failed: Error: 'LongPolling' is disabled by the client.",
      "UnsupportedTransportError"], "WebSockets only");
  });

  await results.check("node: with no ws, the global WebSocket (Node.js 22's) makes the sockets, with the access token in the query since it takes no headers", async () => {
    const wsModule = pathToFileURL(join(app, "node_modules/ws/wrapper.mjs")).href;
    const { lines, stderr, exitCode } = await runChild(bare, `
      const WS = (await import(${JSON.stringify(wsModule)})).default;
      const calls = [];
      // A global WebSocket as Node.js 22's: it takes a URL (and protocols) only.
      globalThis.WebSocket = class extends WS {
        constructor(url, ...rest) { super(url); calls.push(rest.length); }
      };
      const s = await import("talkback-signalr");
      const c = new s.HubConnectionBuilder().withUrl(${JSON.stringify(hub)}, { transport: s.HttpTransportType.WebSockets, accessTokenFactory: () => "eve" })
        .configureLogging(s.LogLevel.None).build();
      await c.start();
      const q = await c.invoke("GetQuery");
      console.log(JSON.stringify([await c.invoke("GetHeader", "upgrade"), q.access_token, await c.invoke("GetUserId"), calls]));
      await c.stop();
    `);
    assertEq([exitCode, stderr], [0, ""], "the child ran");
    assertEq(JSON.parse(lines[0]), ["websocket", "eve", "eve", [0]], "upgrade, token in the query, user, constructor arguments after the URL");
  });

  await results.check("node: a CommonJS script require()s the package as it requires @microsoft/signalr", async () => {
    const { lines, exitCode } = await runChild(app, `
      const signalR = require("talkback-signalr");
      (async () => {
        const c = new signalR.HubConnectionBuilder().withUrl(${JSON.stringify(hub)}).configureLogging(signalR.LogLevel.None).build();
        await c.start();
        console.log(JSON.stringify([await c.invoke("Add", 1, 2), await c.invoke("GetHeader", "upgrade")]));
        await c.stop();
      })();
    `, { type: "commonjs" });
    assertEq([exitCode, JSON.parse(lines[0] ?? "null")], [0, [3, "websocket"]], "the script's result");
  });

  await results.check("node: an app bundled into one CommonJS file (esbuild, as for a serverless function) finds the wasm module next to it", async () => {
    // esbuild turns `import.meta.url` into nothing in a CommonJS bundle: the package must find
    // its wasm module (copied next to the bundle) and `ws` (left out of the bundle, as the
    // official client leaves it) from the bundle's own file.
    const out = join(app, "bundled");
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out);
    writeFileSync(join(app, "bundle-entry.cjs"), `
      const signalR = require("talkback-signalr");
      (async () => {
        const c = new signalR.HubConnectionBuilder().withUrl(${JSON.stringify(hub)}).configureLogging(signalR.LogLevel.None).build();
        await c.start();
        console.log(JSON.stringify([await c.invoke("Add", 1, 2), await c.invoke("GetHeader", "upgrade")]));
        await c.stop();
      })();
    `);
    const esbuild = join(here, "node_modules/.bin/esbuild");
    const built = await runProcess(esbuild, [join(app, "bundle-entry.cjs"), "--bundle", "--platform=node", "--format=cjs",
      "--external:ws", "--log-level=error", `--outfile=${join(out, "app.js")}`], app);
    assertEq([built.exitCode, built.stderr], [0, ""], "esbuild bundled the app");
    cpSync(join(app, "node_modules/talkback-signalr/talkback_wasm_bg.wasm"), join(out, "talkback_wasm_bg.wasm"));
    const { stdout, stderr, exitCode } = await runProcess(process.execPath, [join(out, "app.js")], out);
    assertEq([exitCode, stderr, JSON.parse(stdout.trim() || "null")], [0, "", [3, "websocket"]], "the bundle's result");
  });

  // Each child starts, invokes, streams, stops, prints `stopped`, and must then end by itself.
  for (const [transport, protocol] of [["WebSockets", "json"], ["WebSockets", "messagepack"], ["ServerSentEvents", "json"], ["LongPolling", "json"]]) {
    await results.check(`node: a process ends by itself within ${EXIT_AFTER_STOP_MS} ms of await connection.stop() (${transport}/${protocol})`, async () => {
      const { lines, stderr, exitCode, signal, afterStop } = await runChild(app, `
        const s = await import("talkback-signalr");
        let b = new s.HubConnectionBuilder().withUrl(${JSON.stringify(hub)}, s.HttpTransportType.${transport})
          .withAutomaticReconnect().configureLogging(s.LogLevel.None);
        if (${JSON.stringify(protocol)} === "messagepack") b = b.withHubProtocol(new s.MessagePackHubProtocol());
        const c = b.build();
        await c.start();
        const sum = await c.invoke("Add", 20, 22);
        const items = await new Promise((resolve, reject) => {
          const got = [];
          c.stream("Counter", 3, 10).subscribe({ next: (v) => got.push(v), error: reject, complete: () => resolve(got) });
        });
        await c.send("EchoToCaller", "bye");
        await c.stop();
        console.log(JSON.stringify([sum, items, c.state]));
        console.log("stopped");
      `);
      assertEq([exitCode, signal, stderr], [0, null, ""], "the child ended normally");
      assertEq(JSON.parse(lines[0]), [42, [0, 1, 2], "Disconnected"], "the calls");
      if (afterStop === null || afterStop > EXIT_AFTER_STOP_MS) throw new Error(`the process ended ${afterStop} ms after stop()`);
      console.log(`     (ended ${afterStop} ms after stop())`);
    });
  }
  return results.report();
}

await exitWith(main, "Node.js test");
