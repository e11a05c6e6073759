// The demo page test (issue #11, "The demo page"):
//
//   node client-wasm/npm/test/demo.mjs        (after scripts/build-npm.sh)
//
// Starts the fixture serving the built package (client-wasm/npm/dist) and loads its demo page
// at `/` in headless Chromium. Once the page's chat and dashboard connections are up, the native
// client (the `talkback` CLI of the talkback crate: TALKBACK_CLI_BIN, else target/debug/talkback,
// else $CARGO_TARGET_DIR/debug/talkback) sends a chat message with a random token; the test waits
// for it in the page's DOM, checks the dashboard's live values came from the fixture, sends a
// message from the page itself and sees it with a native listener, then saves a screenshot
// (Page.captureScreenshot) to $TALKBACK_ARTIFACTS (default target/artifacts, or
// $CARGO_TARGET_DIR/artifacts)/demo.png. Prints `N passed, N failed`; exits non-zero on failure.

import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Results, dist, findBinary, onCleanup, overallTimeout, root, run, startChromium, startFixture, waitForOutput } from "./harness.mjs";

overallTimeout(Number(process.env.TEST_TIMEOUT_MS || 120000), "demo test");
const results = new Results();
const artifacts = process.env.TALKBACK_ARTIFACTS
  || (process.env.CARGO_TARGET_DIR ? join(process.env.CARGO_TARGET_DIR, "artifacts") : join(root, "target/artifacts"));

function assert(cond, what) { if (!cond) throw new Error(what); }
const token = () => Math.random().toString(36).slice(2, 10);

async function main() {
  const cli = findBinary("talkback", "TALKBACK_CLI_BIN");
  const base = await startFixture(["--demo-package-dir", dist]);
  const page = await startChromium();
  await page.send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 860, deviceScaleFactor: 1, mobile: false });
  await page.navigate(`${base}/`);

  const up = await results.check("the demo page at / connects its chat and its dashboard through the package", async () => {
    await page.waitFor(`document.body.dataset.chat === "Connected" && document.body.dataset.dashboard === "Connected"`,
      "both connections of the page");
  }, 30000);
  if (!up) return;

  const nonce = token();
  const text = `hello from Rust ${nonce}`;
  await results.check("a chat message sent by the native client is rendered in the page", async () => {
    await run(cli, ["send", `${base}/hubs/chat`, "Send", JSON.stringify("native-client"), JSON.stringify(text)], { ms: 20000 });
    const shown = await page.waitFor(
      `[...document.querySelectorAll("#messages li")].map((li) => li.textContent).find((t) => t.includes(${JSON.stringify(nonce)}))`,
      "the native client's message in #messages");
    assert(shown.startsWith("native-client") && shown.includes(text), `rendered as ${JSON.stringify(shown)}`);
  }, 30000);

  await results.check("a chat message typed in the page reaches a native listener", async () => {
    // Only the page's two connections first (the CLI's `send` connection has ended), then the
    // listener's: /metrics counts connections that finished the handshake.
    await waitForConnections(page, "=== 2");
    const listener = spawn(cli, ["listen", `${base}/hubs/chat`, "--on", "ReceiveMessage", "--count", "1", "--timeout", "20"],
      { stdio: ["ignore", "pipe", "pipe"] });
    onCleanup(() => listener.kill("SIGKILL"));
    await waitForConnections(page, "=== 3");
    const typed = `typed in the page ${token()}`;
    const received = waitForOutput(listener, "stdout", /\{.*\}\n/, "the listener's line");
    await page.evaluate(`(() => {
      document.getElementById("chat-name").value = "browser";
      document.getElementById("chat-text").value = ${JSON.stringify(typed)};
      document.querySelector("#chat-form button").click();
    })()`);
    const [line] = await received;
    const message = JSON.parse(line);
    assert(message.target === "ReceiveMessage" && JSON.stringify(message.arguments) === JSON.stringify(["browser", typed]),
      `listener got ${line}`);
    await page.waitFor(`[...document.querySelectorAll("#messages li.mine")].some((li) => li.textContent.includes(${JSON.stringify(typed)}))`,
      "the page's own message, marked as its own");
  }, 40000);

  await results.check("the dashboard shows the fixture's stream, Echo round trips and /metrics counters", async () => {
    await page.waitFor(`Number(document.body.dataset.ticks) >= 10`, "ten stream items", 15000);
    const values = await page.evaluate(`({
      tick: document.getElementById("tile-ticks").textContent,
      rtt: document.getElementById("tile-rtt").textContent,
      connections: document.getElementById("tile-connections").textContent,
      sent: document.getElementById("tile-sent").textContent,
      points: document.getElementById("chart-line").getAttribute("points").trim().split(" ").length,
      chatId: document.getElementById("chat-id").textContent,
      dashId: document.getElementById("dash-id").textContent,
    })`);
    assert(/^\d+$/.test(values.tick) && Number(values.tick) >= 10, `stream items ${values.tick}`);
    assert(/^\d+\.\d ms$/.test(values.rtt), `round trip ${values.rtt}`);
    assert(Number(values.connections) >= 2, `live connections ${values.connections}`);
    assert(Number(values.sent.replace(/,/g, "")) > 0, `messages sent ${values.sent}`);
    assert(values.points >= 2, `chart points ${values.points}`);
    // The ids the page shows are the fixture's: the admin API lists them.
    const listed = await (await fetch(`${base}/admin/connections`, { headers: { "X-Talkback-Admin": "1" } })).json();
    const ids = JSON.stringify(listed);
    assert(ids.includes(values.chatId) && ids.includes(values.dashId), `page ids ${values.chatId}, ${values.dashId} not in ${ids}`);
  }, 30000);

  await results.check("a screenshot of the demo page is saved as an artifact", async () => {
    const shot = await page.send("Page.captureScreenshot", { format: "png" });
    const png = Buffer.from(shot.data, "base64");
    assert(png.subarray(1, 4).toString() === "PNG" && png.length > 10000, `a PNG of ${png.length} bytes`);
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, "demo.png"), png);
    console.log(`     screenshot: ${join(artifacts, "demo.png")} (${png.length} bytes)`);
  });
}

/** Waits until the live connections that the fixture's /metrics counts (read by the page) satisfy `condition`. */
async function waitForConnections(page, condition) {
  await page.waitFor(`fetch("/metrics").then((r) => r.text()).then((t) =>
    t.split("\\n").filter((l) => l.startsWith("talkback_connections{")).reduce((s, l) => s + Number(l.split(" ").pop()), 0) ${condition})`,
  `live connections ${condition}`, 15000);
}

try {
  await main();
} catch (e) {
  results.add("demo test setup", false, e && e.stack || e);
}
process.exit(results.report() ? 0 : 1);
