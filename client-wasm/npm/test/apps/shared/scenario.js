// The scenario every packaged form of talkback-signalr runs (esbuild bundle, Vite bundle, module
// workers): for each transport and protocol, start a connection to the fixture's test hub, then
// invoke (the fixture's own id for this connection, a sum of random numbers, the header that
// opened the transport), stream (Counter), and on() (EchoToCaller with a random token), then
// stop. Every expected value is computed here and can only come back from the fixture.
// Works in a page and in a worker: no DOM.

const COMBOS = [
  ["WebSockets", "json"],
  ["WebSockets", "messagepack"],
  ["LongPolling", "json"],
];

function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

const withTimeout = (p, ms, what) => {
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); })])
    .finally(() => clearTimeout(t));
};

const randomInt = (n) => Math.floor(Math.random() * n);

function collect(stream) {
  return new Promise((resolve, reject) => {
    const items = [];
    stream.subscribe({ next: (v) => items.push(v), error: reject, complete: () => resolve(items) });
  });
}

async function scenario(signalR, hubUrl, transport, protocol) {
  const { HubConnectionBuilder, HttpTransportType, HubConnectionState, LogLevel, MessagePackHubProtocol } = signalR;
  let builder = new HubConnectionBuilder()
    .withUrl(hubUrl, { transport: HttpTransportType[transport] })
    .configureLogging(LogLevel.Warning);
  if (protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  await connection.start();
  try {
    assertEq(connection.state, HubConnectionState.Connected, "state after start");
    assertEq(await connection.invoke("GetConnectionId"), connection.connectionId, "GetConnectionId");
    const a = randomInt(1e6), b = randomInt(1e6);
    assertEq(await connection.invoke("Add", a, b), a + b, `Add(${a}, ${b})`);
    assertEq(await connection.invoke("GetHeader", "upgrade"), transport === "WebSockets" ? "websocket" : null,
      "the Upgrade header of the request that opened the transport");
    const count = 2 + randomInt(6);
    assertEq(await collect(connection.stream("Counter", count, 0)), [...Array(count).keys()], `Counter(${count}, 0)`);
    const token = `token-${randomInt(1e9)}`;
    const echoed = new Promise((resolve) => connection.on("Echoed", resolve));
    await connection.send("EchoToCaller", token);
    assertEq(await echoed, token, "Echoed");
  } finally {
    await connection.stop();
  }
  assertEq(connection.state, HubConnectionState.Disconnected, "state after stop");
}

/** Runs every combination; resolves with `[{ name, ok, error }]`. */
export async function runScenarios(signalR, hubUrl, label) {
  const results = [];
  for (const [transport, protocol] of COMBOS) {
    const name = `${label}: ${transport}/${protocol} invoke, stream and on() against the fixture`;
    try {
      await withTimeout(scenario(signalR, hubUrl, transport, protocol), 15000, name);
      results.push({ name, ok: true });
    } catch (e) {
      results.push({ name, ok: false, error: String((e && e.stack) || e) });
    }
  }
  return results;
}

/** Sets `globalThis.results` when `work` ends, whichever way. */
export function publish(work, label) {
  work.then((r) => { globalThis.results = r; },
    (e) => { globalThis.results = [{ name: `${label}: the app ran`, ok: false, error: String((e && e.stack) || e) }]; });
}

/** Runs the scenarios in a module worker made by `makeWorker`; resolves with its results. */
export function runInWorker(makeWorker, hubUrl, label) {
  return new Promise((resolve, reject) => {
    const worker = makeWorker();
    const t = setTimeout(() => { worker.terminate(); reject(new Error(`${label}: no answer from the worker in 60 s`)); }, 60000);
    worker.onerror = (e) => { clearTimeout(t); worker.terminate(); reject(new Error(`${label}: worker error: ${e.message}`)); };
    worker.onmessage = (e) => {
      if (e.data === "ready") { worker.postMessage({ hubUrl, label }); return; }
      clearTimeout(t);
      worker.terminate();
      resolve(e.data);
    };
  });
}

/** The worker side of `runInWorker`: `signalR` is the package as the worker imported it. */
export function serveInWorker(signalR) {
  self.onmessage = async (e) => {
    self.postMessage(await runScenarios(signalR, e.data.hubUrl, e.data.label));
  };
  self.postMessage("ready");
}
