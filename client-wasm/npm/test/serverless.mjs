// The serverless dashboard's browser page (issue #13, "An example"):
//
//   node client-wasm/npm/test/serverless.mjs     (after scripts/build-npm.sh and
//                                                 cargo build -p talkback-examples --example serverless_dashboard)
//
// Starts examples/examples/serverless_dashboard.rs with `--serve` (SERVERLESS_DASHBOARD_BIN, else
// target/debug/examples/serverless_dashboard, else $CARGO_TARGET_DIR/debug/examples/...): the
// fixture as Azure SignalR Service in serverless mode, the app's upstream handler, its publisher
// (REST API) and a native dashboard client, and the page, served with the built package
// (client-wasm/npm/dist). Headless Chromium opens the page, which connects through the app's
// /api/negotiate ({url, accessToken}) to the service. The test checks, from the page's DOM and
// the example's output: the upstream hears of the page's connection and its GetSnapshot call
// (whose answer the page shows); the publisher's metrics arrive in its order with its values and
// keep arriving (checked again at the end, so it fails if the publisher stops); group alerts
// arrive in the page and the native client; the page's Acknowledge reaches the upstream, whose
// REST broadcast comes back to the page and the native client. A screenshot goes to $TALKBACK_ARTIFACTS (default
// target/artifacts, or $CARGO_TARGET_DIR/artifacts)/serverless.png. Closing the example's stdin
// ends it. Prints `N passed, N failed`; exits non-zero on failure.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Results, dist, onCleanup, overallTimeout, root, startChromium, withTimeout } from "./harness.mjs";

overallTimeout(Number(process.env.TEST_TIMEOUT_MS || 120000), "serverless dashboard test");
const results = new Results();
const artifacts = process.env.TALKBACK_ARTIFACTS
  || (process.env.CARGO_TARGET_DIR ? join(process.env.CARGO_TARGET_DIR, "artifacts") : join(root, "target/artifacts"));

function assert(cond, what) { if (!cond) throw new Error(what); }

function findExample() {
  const name = "serverless_dashboard";
  const candidates = [process.env.SERVERLESS_DASHBOARD_BIN, join(root, "target/debug/examples", name),
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug/examples", name)];
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) throw new Error(`${name} is not built (cargo build -p talkback-examples --example ${name}, or set SERVERLESS_DASHBOARD_BIN)`);
  return found;
}

/** The example's output, line by line, with a way to wait for a line. */
class Output {
  constructor(stream) {
    this.text = "";
    this.waiters = new Set();
    stream.on("data", (d) => {
      this.text += d;
      if (process.env.VERBOSE) process.stdout.write(`  [example] ${d}`);
      for (const w of [...this.waiters]) w();
    });
  }
  /** Resolves with the first line matching `re` (a line already printed counts). */
  line(re, what, ms = 15000) {
    return withTimeout(new Promise((resolvePromise) => {
      const check = () => {
        const line = this.text.split("\n").find((l) => re.test(l));
        if (line !== undefined) { this.waiters.delete(check); resolvePromise(line); }
      };
      this.waiters.add(check);
      check();
    }), ms, `${what}; the example printed:\n${this.text.split("\n").slice(-30).join("\n")}`);
  }
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

async function main() {
  if (!existsSync(join(dist, "index.js"))) throw new Error("the package is not built: run scripts/build-npm.sh");
  const example = spawn(findExample(), ["--serve", "--port", "0", "--package-dir", dist, "--exit-on-eof"],
    { stdio: ["pipe", "pipe", "pipe"] });
  onCleanup(() => { if (example.exitCode === null) example.kill("SIGKILL"); });
  const exited = new Promise((r) => example.on("exit", (code, signal) => r({ code, signal })));
  const out = new Output(example.stdout);
  let errText = "";
  example.stderr.on("data", (d) => { errText += d; if (process.env.VERBOSE) process.stderr.write(`  [example] ${d}`); });

  const pageLine = await out.line(/^dashboard page: http:\/\/127\.0\.0\.1:\d+\/$/, "the page's address", 60000);
  const pageUrl = pageLine.slice("dashboard page: ".length);
  const page = await startChromium();
  await page.send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 800, deviceScaleFactor: 1, mobile: false });
  const user = `viewer-${Math.random().toString(36).slice(2, 8)}`;
  await page.navigate(`${pageUrl}?user=${user}`);

  let connectionId;
  const up = await results.check("the page connects through the app's /api/negotiate and the service, and the upstream hears of it", async () => {
    await page.waitFor(`document.body.dataset.state === "Connected"`, "the page's connection", 30000);
    connectionId = await page.evaluate(`document.body.dataset.connectionId`);
    assert(connectionId, "the page shows its connection id");
    await out.line(new RegExp(`^upstream  ${escape(connectionId)} of ${escape(user)} connected$`), "the upstream's connected event for the page");
  }, 40000);
  if (!up) return;

  await results.check("the page's GetSnapshot invocation reaches the upstream, whose answer the page shows", async () => {
    await out.line(new RegExp(`^upstream  GetSnapshot from ${escape(user)} \\(${escape(connectionId)}\\)$`), "the upstream's GetSnapshot line");
    const snapshot = JSON.parse(await page.waitFor(`document.body.dataset.snapshot`, "the snapshot in the page"));
    assert(Number.isInteger(snapshot.cpu) && JSON.stringify(snapshot.groups) === '["alerts"]', `snapshot ${JSON.stringify(snapshot)}`);
  });

  await results.check("metrics pushed through the REST API arrive in the publisher's order, with its values, and keep arriving", async () => {
    await page.waitFor(`Number(document.body.dataset.metrics) >= 10`, "ten metrics", 15000);
    const metrics = await page.evaluate(`window.dashboard.metrics`);
    for (let i = 0; i < metrics.length; i++) {
      const m = metrics[i];
      // The publisher's made-up reading for its tick `seq`.
      assert(m.cpu === 40 + (m.seq * 37) % 50, `metric ${JSON.stringify(m)} is not the publisher's`);
      if (i > 0) assert(m.seq === metrics[i - 1].seq + 1, `seq ${metrics[i - 1].seq} then ${m.seq}`);
    }
    // Still live: five more within two seconds (the publisher ticks every 200 ms).
    const [count, seq] = await page.evaluate(`[Number(document.body.dataset.metrics), Number(document.body.dataset.lastSeq)]`);
    await page.waitFor(`Number(document.body.dataset.metrics) >= ${count + 5} && Number(document.body.dataset.lastSeq) >= ${seq + 5}`,
      "five more metrics (is the publisher still running?)", 2000);
    assert(await page.evaluate(`document.body.dataset.fresh`) === "live", "the page says its data is live");
    const points = await page.evaluate(`document.getElementById("chart-line").getAttribute("points").trim().split(" ").length`);
    assert(points >= 10, `${points} chart points`);
  }, 30000);

  await results.check("alerts pushed to the alerts group reach the page and the native client", async () => {
    await page.waitFor(`Number(document.body.dataset.alerts) >= 2`, "two alerts in the page", 10000);
    const alerts = await page.evaluate(`window.dashboard.alerts`);
    for (const a of alerts) assert(a.text === "cpu spike" && a.seq % 3 === 2, `alert ${JSON.stringify(a)}`);
    await out.line(/^native    alert +\{.*"cpu spike".*\}$/, "an alert printed by the native client");
  });

  await results.check("Acknowledge from the page reaches the upstream, and its REST broadcast comes back to the page and the native client", async () => {
    const seq = await page.evaluate(`(() => {
      const li = document.querySelector("#alerts li:not(.acknowledged)");
      if (!li) return null;
      li.querySelector("button").click();
      return Number(li.dataset.seq);
    })()`);
    assert(Number.isInteger(seq), "an alert to acknowledge in the page");
    await out.line(new RegExp(`^upstream  Acknowledge alert ${seq} from ${escape(user)} \\(${escape(connectionId)}\\)$`),
      "the upstream's Acknowledge line");
    const shown = await page.waitFor(`document.querySelector('#alerts li.acknowledged[data-seq="${seq}"]')?.textContent`,
      "the acknowledged alert in the page", 10000);
    assert(shown.includes(`acknowledged by ${user}`), `shown as ${JSON.stringify(shown)}`);
    await out.line(new RegExp(`^native    acknowledged +\\{(?=.*"seq":${seq}\\b)(?=.*"by":"${escape(user)}").*\\}$`),
      "the native client's acknowledged line");
  });

  await results.check("metrics are still arriving at the end, and the page says it is live", async () => {
    const [count, seq] = await page.evaluate(`[Number(document.body.dataset.metrics), Number(document.body.dataset.lastSeq)]`);
    await page.waitFor(`Number(document.body.dataset.metrics) >= ${count + 5} && Number(document.body.dataset.lastSeq) >= ${seq + 5}`,
      "five more metrics (is the publisher still running?)", 2000);
    assert(await page.evaluate(`document.body.dataset.fresh`) === "live", "the page says its data is live");
  });

  await results.check("a screenshot of the serverless dashboard page is saved as an artifact", async () => {
    const shot = await page.send("Page.captureScreenshot", { format: "png" });
    const png = Buffer.from(shot.data, "base64");
    assert(png.subarray(1, 4).toString() === "PNG" && png.length > 10000, `a PNG of ${png.length} bytes`);
    mkdirSync(artifacts, { recursive: true });
    writeFileSync(join(artifacts, "serverless.png"), png);
    console.log(`     screenshot: ${join(artifacts, "serverless.png")} (${png.length} bytes)`);
  });

  await results.check("the example stops by itself when its stdin closes", async () => {
    example.stdin.end();
    const { code, signal } = await exited;
    assert(code === 0, `exit ${code ?? signal}${errText ? `\n${errText}` : ""}`);
    assert(/^stopped$/m.test(out.text), "it printed `stopped`");
  }, 15000);
}

try {
  await main();
} catch (e) {
  results.add("serverless dashboard test setup", false, e && e.stack || e);
}
process.exit(results.report() ? 0 : 1);
