// Interop suite: the official @microsoft/signalr client (Node) against the talkback fixture.
//
// Usage: node run.mjs [name-filter-regex]
// Environment: TALKBACK_FIXTURE_BIN (default target/debug/talkback-fixture), INTEROP_LOG=debug|trace
// for client logs, INTEROP_STRICT=1 to count tests for missing fixture features as failures.
// The last line is exactly `N passed, N failed`; the exit code is non-zero on any failure.

import { startFixture, killAllFixtures } from "./fixture.mjs";
import { signalR, MessagePackHubProtocol, logLevel, TRANSPORTS, COMBOS } from "./official.mjs";
import { Suite, Missing, deferred, sleep, within, eq, ok, rejects } from "./harness.mjs";
import { Admin, fixtureArgs, userToken } from "./fixture-api.mjs";



// ---------------------------------------------------------------------------------------------
// Fixtures: one per configuration, started on first use and stopped at the end.

const fixtures = new Map();
/** The fixture for configuration `name` (see fixture-api.mjs), started on first use. */
async function fixture(name = "default") {
  if (!fixtures.has(name)) {
    const started = startFixture(fixtureArgs(name));
    fixtures.set(name, started);
    started.catch(() => {});
  }
  let fx;
  try {
    fx = await fixtures.get(name);
  } catch (error) {
    if (/unexpected argument|unrecognized|unknown (option|flag|argument)/i.test(error.message)) {
      throw new Missing(`the fixture does not accept the options for configuration "${name}" (${fixtureArgs(name).join(" ")})`);
    }
    if (!error.reported) {
      error.reported = true;
      throw error;
    }
    throw new Error(`the fixture for configuration "${name}" did not start (see the first failure above)`);
  }
  if (!fx.admin) fx.admin = new Admin(fx.url);
  return fx;
}

// ---------------------------------------------------------------------------------------------
// Connections



/**
 * Builds (does not start) a HubConnection and registers its stop() as cleanup of test `t`.
 * Options: transport, protocol, fixture, hub, query, headers, accessTokenFactory, skipNegotiation,
 * reconnect (delays array or true), stateful, serverTimeoutMs, keepAliveMs.
 */
async function build(t, options = {}) {
  const fx = await fixture(options.fixture);
  const hub = options.hub ?? "test";
  let url = `${fx.url}/hubs/${hub}`;
  if (options.query) url += `?${options.query}`;
  const httpOptions = {
    transport: TRANSPORTS[options.transport ?? "WebSockets"],
    skipNegotiation: options.skipNegotiation ?? false,
  };
  if (options.headers) httpOptions.headers = options.headers;
  if (options.accessTokenFactory) httpOptions.accessTokenFactory = options.accessTokenFactory;
  let builder = new signalR.HubConnectionBuilder().withUrl(url, httpOptions).configureLogging(logLevel);
  if ((options.protocol ?? "json") === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  if (options.reconnect === true) builder = builder.withAutomaticReconnect();
  else if (Array.isArray(options.reconnect)) builder = builder.withAutomaticReconnect(options.reconnect);
  if (options.stateful) builder = builder.withStatefulReconnect();
  if (options.serverTimeoutMs) builder = builder.withServerTimeout(options.serverTimeoutMs);
  if (options.keepAliveMs) builder = builder.withKeepAliveInterval(options.keepAliveMs);
  const connection = builder.build();
  t.defer(() => connection.stop());
  return connection;
}

/** Builds and starts a connection. */
async function connect(t, options = {}) {
  const connection = await build(t, options);
  await within(10_000, connection.start(), "start()");
  eq(connection.state, signalR.HubConnectionState.Connected, "state after start()");
  return connection;
}

/** Resolves with the arguments of the next call of client method `name`. */
function nextCall(connection, name) {
  const d = deferred();
  const handler = (...args) => {
    connection.off(name, handler);
    d.resolve(args);
  };
  connection.on(name, handler);
  return d.promise;
}

/** Records every call of client method `name`; returns the (live) list of argument arrays. */
function record(connection, name) {
  const calls = [];
  connection.on(name, (...args) => calls.push(args));
  return calls;
}

/** Collects a stream until it completes; rejects with its error. */
function collect(streamResult) {
  const items = [];
  const d = deferred();
  streamResult.subscribe({
    next: (item) => items.push(item),
    complete: () => d.resolve(items),
    error: (err) => {
      err.items = items;
      d.reject(err);
    },
  });
  return d.promise;
}

/** The underlying `ws` WebSocket of a connection on the WebSockets transport (client internals). */
function rawWebSocket(connection) {
  const ws = connection.connection?.transport?._webSocket;
  ok(ws, "could not reach the client's WebSocket (the official client's internals changed?)");
  return ws;
}

const unique = (prefix) => `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
const label = ({ transport, protocol }) => `${transport}/${protocol}`;

// ---------------------------------------------------------------------------------------------
// Tests

const suite = new Suite();

for (const combo of COMBOS) {
  const L = label(combo);

  suite.test(`${L}: start connects and the server greets with Welcome(connectionId)`, async (t) => {
    const connection = await build(t, combo);
    const welcome = nextCall(connection, "Welcome");
    await connection.start();
    const [id] = await within(5_000, welcome, "Welcome");
    ok(typeof connection.connectionId === "string" && connection.connectionId.length > 0, "connectionId is set");
    eq(id, connection.connectionId, "Welcome argument");
    eq(await connection.invoke("GetConnectionId"), connection.connectionId, "GetConnectionId()");
  });

  suite.test(`${L}: Echo returns nested values unchanged`, async (t) => {
    const connection = await connect(t, combo);
    const value = {
      text: "héllo ✓ \"quoted\" \u001e",
      int: 42,
      negative: -7,
      float: 1.5,
      yes: true,
      no: false,
      nothing: null,
      list: [1, "two", [3, { four: 4 }], []],
      object: { nested: { deep: "x" }, empty: {} },
    };
    eq(await connection.invoke("Echo", value), value, "Echo(object)");
    eq(await connection.invoke("Echo", "x".repeat(10_000)), "x".repeat(10_000), "Echo(10 kB string)");
    eq(await connection.invoke("Echo", null), null, "Echo(null)");
  });

  suite.test(`${L}: Add adds numbers and matches the method name case-insensitively`, async (t) => {
    const connection = await connect(t, combo);
    eq(await connection.invoke("Add", 2, 40), 42, "Add(2, 40)");
    eq(await connection.invoke("add", 1.5, 2.25), 3.75, "add(1.5, 2.25)");
  });

  suite.test(`${L}: Throw rejects the invocation with the error text verbatim`, async (t) => {
    const connection = await connect(t, combo);
    const error = await rejects(connection.invoke("Throw", "it went wrong: ✗"), "Throw");
    eq(error.message, "it went wrong: ✗", "error message");
    eq(await connection.invoke("Echo", 1), 1, "the connection still works");
  });

  suite.test(`${L}: a void method resolves with no result`, async (t) => {
    const connection = await connect(t, combo);
    eq(await connection.invoke("DoNothing"), undefined, "DoNothing()");
  });

  suite.test(`${L}: Delay completes after the delay`, async (t) => {
    const connection = await connect(t, combo);
    const started = performance.now();
    eq(await connection.invoke("Delay", 200), 200, "Delay(200)");
    ok(performance.now() - started >= 190, "Delay(200) took at least 200 ms");
  });

  suite.test(`${L}: concurrent invocations each get their own result`, async (t) => {
    const connection = await connect(t, combo);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => connection.invoke("Add", i, 1000)));
    eq(results, Array.from({ length: 50 }, (_, i) => i + 1000), "results");
  });

  suite.test(`${L}: send EchoToCaller makes the server call Echoed`, async (t) => {
    const connection = await connect(t, combo);
    const echoed = nextCall(connection, "Echoed");
    await connection.send("EchoToCaller", "ping ✓");
    eq(await within(5_000, echoed, "Echoed"), ["ping ✓"], "Echoed arguments");
  });

  suite.test(`${L}: Multi delivers five arguments including an object and null`, async (t) => {
    const connection = await connect(t, combo);
    const multi = nextCall(connection, "Multi");
    await connection.send("Multi", 1, "b", [true]);
    eq(await within(5_000, multi, "Multi"), [1, "b", [true], { k: "v" }, null], "Multi arguments");
  });

  suite.test(`${L}: Counter streams every item in order, then completes`, async (t) => {
    const connection = await connect(t, combo);
    eq(await within(10_000, collect(connection.stream("Counter", 10, 5)), "Counter"), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "items");
    eq(await within(10_000, collect(connection.stream("DelayedCounter", 3, 5)), "DelayedCounter"), [0, 1, 2], "items");
  });

  suite.test(`${L}: StreamThenFail delivers the items, then the stream error`, async (t) => {
    const connection = await connect(t, combo);
    const error = await rejects(within(10_000, collect(connection.stream("StreamThenFail", 3)), "StreamThenFail"), "stream");
    eq(error.message, "stream failed on purpose", "stream error");
    eq(error.items?.length, 3, "items before the error");
  });

  suite.test(`${L}: disposing an InfiniteCounter subscription cancels the stream`, async (t) => {
    const connection = await connect(t, combo);
    const items = [];
    const three = deferred();
    const subscription = connection.stream("InfiniteCounter", 10).subscribe({
      next: (item) => {
        items.push(item);
        if (items.length === 3) three.resolve();
      },
      complete: () => three.reject(new Error("an infinite stream completed")),
      error: (err) => three.reject(err),
    });
    await within(5_000, three.promise, "three items");
    subscription.dispose();
    eq(items.slice(0, 3), [0, 1, 2], "first items");
    // The connection stays usable and further streams get fresh ids.
    eq(await connection.invoke("Echo", "after cancel"), "after cancel", "Echo after cancel");
    eq(await within(5_000, collect(connection.stream("Counter", 2, 0)), "Counter"), [0, 1], "a new stream");
  });

  suite.test(`${L}: UploadSum sums numbers uploaded through a Subject`, async (t) => {
    const connection = await connect(t, combo);
    const subject = new signalR.Subject();
    const result = connection.invoke("UploadSum", subject);
    for (const n of [1, 2, 3, 4]) {
      subject.next(n);
      await sleep(5);
    }
    subject.complete();
    eq(await within(5_000, result, "UploadSum"), 10, "sum");
  });

  suite.test(`${L}: UploadCollect returns every uploaded item in order`, async (t) => {
    const connection = await connect(t, combo);
    const subject = new signalR.Subject();
    const result = connection.invoke("UploadCollect", subject);
    const items = ["a", 1, { x: [true] }, null];
    for (const item of items) subject.next(item);
    subject.complete();
    eq(await within(5_000, result, "UploadCollect"), items, "collected items");
  });

  suite.test(`${L}: UploadEcho streams each uploaded item back`, async (t) => {
    const connection = await connect(t, combo);
    const subject = new signalR.Subject();
    const echoed = collect(connection.stream("UploadEcho", subject));
    for (const item of [5, "six", 7]) {
      subject.next(item);
      await sleep(5);
    }
    subject.complete();
    eq(await within(5_000, echoed, "UploadEcho"), [5, "six", 7], "echoed items");
  });

  suite.test(`${L}: client results: AskClient returns the value of the client's handler`, async (t) => {
    const connection = await connect(t, combo);
    connection.on("GetAnswer", (x) => x * 2);
    connection.on("Fail", () => {
      throw new Error("client refused");
    });
    connection.on("Later", async (x) => {
      await sleep(20);
      return { later: x };
    });
    eq(await connection.invoke("AskClient", "GetAnswer", 21), 42, "AskClient(GetAnswer, 21)");
    eq(await connection.invoke("AskClient", "Later", "y"), { later: "y" }, "AskClient(Later) with an async handler");
    const failed = await rejects(connection.invoke("AskClient", "Fail", 0), "AskClient(Fail)");
    ok(failed.message.includes("client refused"), `error carries the handler's error, got: ${failed.message}`);
    const missing = await rejects(connection.invoke("AskClient", "NoSuchHandler", 0), "AskClient(NoSuchHandler)");
    ok(missing.message.includes("Client didn't provide a result."), `got: ${missing.message}`);
  });

  suite.test(`${L}: the headers option reaches the hub (GetHeader)`, async (t) => {
    const connection = await connect(t, { ...combo, headers: { "X-Interop-Test": "yes-ok" } });
    eq(await connection.invoke("GetHeader", "x-interop-test"), "yes-ok", "GetHeader(x-interop-test)");
    eq(await connection.invoke("GetHeader", "x-not-sent"), null, "GetHeader(x-not-sent)");
  });

  suite.test(`${L}: the query string of the URL reaches the hub (GetQuery)`, async (t) => {
    const connection = await connect(t, { ...combo, query: "flavour=mint&n=1" });
    const query = await connection.invoke("GetQuery");
    eq(query?.flavour, "mint", "query.flavour");
    eq(query?.n, "1", "query.n");
  });

  suite.test(`${L}: accessTokenFactory identifies the user (GetUserId)`, async (t) => {
    const fx = await fixture();
    const user = unique("user");
    const token = await userToken(fx, user);
    let calls = 0;
    const connection = await connect(t, {
      ...combo,
      accessTokenFactory: () => {
        calls++;
        return token;
      },
    });
    eq(await connection.invoke("GetUserId"), user, "GetUserId()");
    ok(calls >= 1, "the token factory was called");
    const anonymous = await connect(t, combo);
    eq(await anonymous.invoke("GetUserId"), null, "GetUserId() without a token");
  });

  suite.test(`${L}: groups: SendToGroup reaches members only, LeaveGroup stops it`, async (t) => {
    const group = unique("group");
    const member = await connect(t, combo);
    const outsider = await connect(t, combo);
    const sender = await connect(t, combo);
    const outsiderCalls = record(outsider, "GroupMessage");
    await member.invoke("JoinGroup", group);
    const received = nextCall(member, "GroupMessage");
    await sender.send("SendToGroup", group, "hello group");
    eq(await within(5_000, received, "GroupMessage"), [group, "hello group"], "GroupMessage arguments");
    await member.invoke("LeaveGroup", group);
    const memberCalls = record(member, "GroupMessage");
    await sender.send("SendToGroup", group, "after leave");
    await sleep(300);
    eq(memberCalls, [], "messages after LeaveGroup");
    eq(outsiderCalls, [], "messages to a non-member");
  });

  suite.test(`${L}: Broadcast reaches everyone, SendToOthers everyone but the caller`, async (t) => {
    const a = await connect(t, combo);
    const b = await connect(t, combo);
    const tag = unique("b");
    const callsA = record(a, "Broadcast");
    const callsB = record(b, "Broadcast");
    await a.send("Broadcast", tag);
    await a.send("SendToOthers", `${tag}-others`);
    await a.invoke("Echo", 0);
    await sleep(300);
    const mine = (calls) => calls.map(([x]) => x).filter((x) => typeof x === "string" && x.startsWith(tag));
    eq(mine(callsA), [tag], "Broadcast calls on the caller");
    eq(mine(callsB), [tag, `${tag}-others`], "Broadcast calls on the other connection");
  });

  suite.test(`${L}: SendToUser reaches every connection of that user`, async (t) => {
    const fx = await fixture();
    const user = unique("alice");
    const token = await userToken(fx, user);
    const alice = await connect(t, { ...combo, accessTokenFactory: () => token });
    const bob = await connect(t, combo);
    const got = nextCall(alice, "UserMessage");
    await bob.send("SendToUser", user, "for alice");
    eq(await within(5_000, got, "UserMessage"), ["for alice"], "UserMessage arguments");
  });

  suite.test(`${L}: CloseWithMessage without allowReconnect closes with the server's error`, async (t) => {
    const connection = await connect(t, { ...combo, reconnect: [0, 0, 0] });
    const closed = deferred();
    let reconnecting = 0;
    connection.onreconnecting(() => reconnecting++);
    connection.onclose((error) => closed.resolve(error));
    await connection.send("CloseWithMessage", "bye now", false);
    const error = await within(5_000, closed.promise, "onclose");
    eq(error?.message, "Server returned an error on close: bye now", "onclose error");
    eq(reconnecting, 0, "onreconnecting calls");
    eq(connection.state, signalR.HubConnectionState.Disconnected, "state");
  });

  suite.test(`${L}: CloseWithMessage with an empty error closes cleanly`, async (t) => {
    const connection = await connect(t, combo);
    const closed = deferred();
    connection.onclose((error) => closed.resolve(error));
    await connection.send("CloseWithMessage", "", false);
    eq(await within(5_000, closed.promise, "onclose"), undefined, "onclose error");
  });

  suite.test(`${L}: CloseWithMessage with allowReconnect triggers automatic reconnect`, async (t) => {
    const connection = await connect(t, { ...combo, reconnect: [0, 100, 500] });
    const oldId = connection.connectionId;
    const reconnecting = deferred();
    const reconnected = deferred();
    connection.onreconnecting((error) => reconnecting.resolve(error));
    connection.onreconnected((id) => reconnected.resolve(id));
    await connection.send("CloseWithMessage", "come back", true);
    const error = await within(5_000, reconnecting.promise, "onreconnecting");
    eq(error?.message, "Server returned an error on close: come back", "onreconnecting error");
    const newId = await within(10_000, reconnected.promise, "onreconnected");
    ok(newId && newId !== oldId, `a new connection id (old ${oldId}, new ${newId})`);
    eq(await connection.invoke("Echo", "again"), "again", "Echo after reconnect");
  });

  suite.test(`${L}: automatic reconnect after the server drops the transport (CloseMe)`, async (t) => {
    const connection = await connect(t, { ...combo, reconnect: [0, 100, 500] });
    const oldId = connection.connectionId;
    const reconnecting = deferred();
    const reconnected = deferred();
    connection.onreconnecting((error) => reconnecting.resolve(error));
    connection.onreconnected((id) => reconnected.resolve(id));
    await connection.send("CloseMe", "dropped on purpose");
    await within(10_000, reconnecting.promise, "onreconnecting");
    const newId = await within(10_000, reconnected.promise, "onreconnected");
    ok(newId && newId !== oldId, `a new connection id (old ${oldId}, new ${newId})`);
    eq(connection.state, signalR.HubConnectionState.Connected, "state");
    eq(await connection.invoke("Echo", "again"), "again", "Echo after reconnect");
  });

  suite.test(`${L}: without a reconnect policy, CloseMe ends in onclose with an error`, async (t) => {
    const connection = await connect(t, combo);
    const closed = deferred();
    connection.onclose((error) => closed.resolve(error));
    const pending = connection.invoke("Delay", 5_000).then(
      () => "resolved",
      (error) => error,
    );
    await connection.send("CloseMe", "dropped on purpose");
    await within(10_000, closed.promise, "onclose");
    eq(connection.state, signalR.HubConnectionState.Disconnected, "state");
    const outcome = await within(5_000, pending, "the pending invocation to settle");
    ok(outcome instanceof Error, "the pending invocation was rejected");
  });

  suite.test(`${L}: the demo chat hub broadcasts ReceiveMessage`, async (t) => {
    const a = await connect(t, { ...combo, hub: "chat" });
    const b = await connect(t, { ...combo, hub: "chat" });
    const got = nextCall(b, "ReceiveMessage");
    await a.invoke("Send", "ann", "hi chat");
    eq(await within(5_000, got, "ReceiveMessage"), ["ann", "hi chat"], "ReceiveMessage arguments");
  });

  suite.test(`${L}: the admin drop fault triggers automatic reconnect`, async (t) => {
    const fx = await fixture();
    const connection = await connect(t, { ...combo, reconnect: [0, 100, 500] });
    const oldId = connection.connectionId;
    const reconnected = deferred();
    connection.onreconnected((id) => reconnected.resolve(id));
    await fx.admin.dropConnection(oldId);
    const newId = await within(10_000, reconnected.promise, "onreconnected");
    ok(newId !== oldId, "a new connection id");
    eq(await connection.invoke("Echo", 1), 1, "Echo after reconnect");
  });
}

// --- skipNegotiation (WebSockets only)
for (const protocol of ["json", "messagepack"]) {
  suite.test(`WebSockets/${protocol}: skipNegotiation connects directly`, async (t) => {
    const connection = await build(t, { transport: "WebSockets", protocol, skipNegotiation: true });
    const welcome = nextCall(connection, "Welcome");
    await within(10_000, connection.start(), "start()");
    eq(connection.connectionId, null, "connectionId without negotiate");
    const [id] = await within(5_000, welcome, "Welcome");
    ok(typeof id === "string" && id.length > 0, "the server still assigns an id");
    eq(await connection.invoke("GetConnectionId"), id, "GetConnectionId()");
    eq(await connection.invoke("Add", 1, 2), 3, "Add(1, 2)");
  });
}

// --- keep-alive and server timeout
for (const combo of COMBOS.filter((c) => c.transport !== "LongPolling")) {
  const L = label(combo);
  suite.test(`${L}: server pings keep an idle connection alive past the client's server timeout`, async (t) => {
    const connection = await connect(t, { ...combo, fixture: "fast-pings", serverTimeoutMs: 1_500, keepAliveMs: 500 });
    const closed = deferred();
    connection.onclose((error) => closed.resolve(error ?? new Error("closed")));
    const outcome = await Promise.race([closed.promise, sleep(4_000).then(() => "alive")]);
    eq(outcome, "alive", "connection after 4 s idle with a 1.5 s server timeout");
    eq(await connection.invoke("Echo", "still here"), "still here", "Echo");
  });

  suite.test(`${L}: when the server stops pinging, the client's server timeout closes the connection`, async (t) => {
    const fx = await fixture("fast-pings");
    const connection = await connect(t, { ...combo, fixture: "fast-pings", serverTimeoutMs: 1_500, keepAliveMs: 500 });
    const closed = deferred();
    connection.onclose((error) => closed.resolve(error));
    await fx.admin.stopPings(connection.connectionId);
    const error = await within(6_000, closed.promise, "onclose");
    eq(error?.message, "Server timeout elapsed without receiving a message from the server.", "onclose error");
  });
}

// --- stateful reconnect (WebSockets only)
for (const protocol of ["json", "messagepack"]) {
  const L = `WebSockets/${protocol}`;
  const statefulCase = (how, drop) =>
    suite.test(
      `${L}: stateful reconnect survives ${how} mid-stream, every item once and in order`,
      async (t) => {
        const fx = await fixture("stateful");
        const connection = await connect(t, { transport: "WebSockets", protocol, stateful: true, fixture: "stateful" });
        const id = connection.connectionId;
        let reconnecting = 0;
        connection.onreconnecting(() => reconnecting++);
        const closed = deferred();
        connection.onclose((error) => closed.reject(error ?? new Error("closed")));
        const count = 60;
        const items = [];
        const done = deferred();
        const tenth = deferred();
        connection.stream("Counter", count, 20).subscribe({
          next: (item) => {
            items.push(item);
            if (items.length === 10) tenth.resolve();
          },
          complete: () => done.resolve(),
          error: (err) => done.reject(err),
        });
        // An invocation in flight across the drop must complete too.
        const delayed = connection.invoke("Delay", 400);
        delayed.catch(() => {}); // awaited below; a failure before that must not crash the run
        await within(5_000, tenth.promise, "ten items");
        const oldSocket = rawWebSocket(connection);
        await drop(fx, connection);
        await within(15_000, Promise.race([done.promise, closed.promise]), "the stream to complete");
        eq(items, Array.from({ length: count }, (_, i) => i), "items");
        eq(await within(5_000, delayed, "Delay across the drop"), 400, "Delay(400)");
        ok(rawWebSocket(connection) !== oldSocket, "the client opened a new WebSocket");
        eq(connection.connectionId, id, "connectionId after a stateful reconnect");
        eq(reconnecting, 0, "onreconnecting calls (a stateful reconnect is transparent)");
        eq(await connection.invoke("GetConnectionId"), id, "the server kept the same logical connection");
      },
      { timeoutMs: 30_000 },
    );

  statefulCase("the client's socket dying", async (_fx, connection) => rawWebSocket(connection).terminate());
  statefulCase("the server dropping the socket (admin fault)", async (fx, connection) =>
    fx.admin.dropConnection(connection.connectionId),
  );
}

// ---------------------------------------------------------------------------------------------

const filter = process.argv[2] ? new RegExp(process.argv[2]) : undefined;
const wallClock = setTimeout(() => {
  console.log("interop suite: overall time limit (10 min) exceeded");
  killAllFixtures();
  console.log("0 passed, 1 failed");
  process.exit(1);
}, 600_000);
wallClock.unref();

let result;
try {
  result = await suite.run(filter);
} finally {
  for (const started of fixtures.values()) {
    try {
      await (await started).stop();
    } catch {
      // a fixture that failed to start has nothing to stop
    }
  }
}
const strict = process.env.INTEROP_STRICT === "1";
const { counts, failures, missing } = result;
if (failures.length) {
  console.log(`\nfailures:\n${failures.map((f) => `  - ${f}`).join("\n")}`);
}
if (missing.length) {
  console.log(
    `\n${missing.length} test(s) need something the fixture does not offer yet${strict ? " (counted as failed: INTEROP_STRICT=1)" : ""}:\n` +
      missing.map((m) => `  - ${m}`).join("\n"),
  );
}
const failed = counts.failed + (strict ? counts.missing : 0);
if (result.selected === 0) console.log("no test matched the filter");
console.log(`${counts.passed} passed, ${failed} failed`);
process.exit(failed > 0 || result.selected === 0 ? 1 : 0);
