// The scenarios of the package test: run in the page (test.html) through the public API of
// talkback-signalr, against the fixture's test hub (docs/test-hub.md).
import * as signalR from "/pkg/index.js";

const { HubConnectionBuilder, HttpTransportType, HubConnectionState, Subject } = signalR;
// In a page, or in Node.js (node.mjs runs these modules there, with `window` as the global
// object): where the official client behaves differently, the scenarios check each
// environment's behaviour.
const inBrowser = typeof document !== "undefined";

const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
function assert(cond, what) {
  if (!cond) throw new Error(what);
}
function collect(stream, n) {
  return new Promise((resolve, reject) => {
    const items = [];
    const sub = stream.subscribe({
      next: (v) => { items.push(v); if (n && items.length === n) { sub.dispose(); resolve(items); } },
      error: reject,
      complete: () => resolve(items),
    });
  });
}

// The fixture's admin routes, through run.mjs (a DevTools binding): resolves with the status.
const adminWaiters = new Map();
let adminSeq = 0;
window.talkbackAdminDone = (id, status) => { adminWaiters.get(id)?.(status); adminWaiters.delete(id); };
function admin(path) {
  if (typeof window.talkbackAdmin !== "function") return Promise.reject(new Error("no admin binding (run by run.mjs?)"));
  return new Promise((resolve) => {
    const id = ++adminSeq;
    adminWaiters.set(id, resolve);
    window.talkbackAdmin(JSON.stringify({ id, path }));
  });
}

function build(hub, transport, protocol, configure) {
  let b = new HubConnectionBuilder()
    .withUrl(hub, { transport })
    .configureLogging(signalR.LogLevel.Warning);
  if (protocol === "messagepack") b = b.withHubProtocol(new signalR.MessagePackHubProtocol());
  if (configure) b = configure(b);
  return b.build();
}

export async function runAll(base) {
  const hub = `${base}/hubs/test`;
  const results = [];
  const combos = [
    ["WebSockets", "json"], ["WebSockets", "messagepack"],
    ["ServerSentEvents", "json"],
    ["LongPolling", "json"], ["LongPolling", "messagepack"],
  ];
  async function scenario(name, f) {
    try {
      await withTimeout(f(), 20000, name);
      results.push({ name, ok: true });
    } catch (e) {
      results.push({ name, ok: false, error: String(e && e.stack || e) });
    }
  }
  for (const [t, p] of combos) {
    const transport = HttpTransportType[t];
    const tag = `${t}/${p}`;
    await scenario(`${tag}: start, invoke, send, stream, cancel, upload, client result, errors, stop`, async () => {
      const c = build(hub, transport, p);
      assertEq(c.state, HubConnectionState.Disconnected, "state before start");
      let closed = "not called";
      c.onclose((e) => { closed = e; });
      await c.start();
      assertEq(c.state, "Connected", "state after start");
      assert(typeof c.connectionId === "string" && c.connectionId.length > 0, "connectionId");
      assertEq(await c.invoke("Add", 1, 2), 3, "Add");
      assertEq(await c.invoke("Add", 0.5, 2), 2.5, "Add float");
      assertEq(await c.invoke("Echo", { a: [1, "x", null, true], b: "é✓" }), { a: [1, "x", null, true], b: "é✓" }, "Echo object");
      assertEq(await c.invoke("DoNothing"), p === "json" ? undefined : undefined, "void result");
      if (p === "messagepack") {
        const bytes = await c.invoke("Echo", new Uint8Array([1, 2, 255]));
        assert(bytes instanceof Uint8Array, "bin comes back as Uint8Array");
        assertEq(Array.from(bytes), [1, 2, 255], "bin bytes");
        const d = new Date(Date.UTC(2024, 1, 2, 3, 4, 5, 678));
        const back = await c.invoke("Echo", d);
        assert(back instanceof Date && back.getTime() === d.getTime(), `Date round trip: ${back}`);
      }
      // send + on
      const echoed = new Promise((resolve) => c.on("Echoed", resolve));
      await c.send("EchoToCaller", "hello");
      assertEq(await echoed, "hello", "Echoed");
      const multi = new Promise((resolve) => c.on("multi", (...args) => resolve(args)));
      await c.send("Multi", 1, "two", [3]);
      assertEq(await multi, [1, "two", [3], { k: "v" }, null], "Multi arguments");
      // off
      let offCalls = 0;
      const counted = () => { offCalls++; };
      c.on("Echoed", counted);
      c.off("Echoed", counted);
      c.off("Echoed");
      await c.send("EchoToCaller", "ignored");
      await c.invoke("Add", 1, 1);
      assertEq(offCalls, 0, "off removes handlers");
      // stream
      assertEq(await collect(c.stream("Counter", 3, 10)), [0, 1, 2], "Counter stream");
      // stream error
      let streamError;
      try { await collect(c.stream("StreamThenFail", 2)); } catch (e) { streamError = e; }
      assert(streamError instanceof Error && streamError.message === "stream failed on purpose", `stream error: ${streamError}`);
      // cancel via dispose
      const seen = [];
      await new Promise((resolve, reject) => {
        const sub = c.stream("InfiniteCounter", 10).subscribe({
          next: (v) => { seen.push(v); if (seen.length === 3) { sub.dispose(); resolve(); } },
          error: reject,
          complete: () => reject(new Error("infinite stream completed")),
        });
      });
      await sleep(100);
      assertEq(seen, [0, 1, 2], "no items after dispose");
      // upload with a Subject
      const subject = new Subject();
      const sum = c.invoke("UploadSum", subject);
      subject.next(1); subject.next(2);
      await sleep(20);
      subject.next(3);
      subject.complete();
      assertEq(await sum, 6, "UploadSum");
      const s2 = new Subject();
      const echoedStream = collect(c.stream("UploadEcho", s2));
      s2.next("a"); s2.next({ b: 1 }); s2.complete();
      assertEq(await echoedStream, ["a", { b: 1 }], "UploadEcho stream");
      // client results: a value, a Promise, an exception, no handler
      c.on("Double", (x) => x * 2);
      assertEq(await c.invoke("AskClient", "Double", 21), 42, "client result value");
      c.on("Later", async (x) => { await sleep(10); return `later ${x}`; });
      assertEq(await c.invoke("AskClient", "Later", "x"), "later x", "client result promise");
      c.on("Fails", () => { throw new Error("nope"); });
      let clientError;
      try { await c.invoke("AskClient", "Fails", 1); } catch (e) { clientError = e; }
      assertEq(clientError && clientError.message, "Error: nope", "client result error");
      let noResult;
      try { await c.invoke("AskClient", "Missing", 1); } catch (e) { noResult = e; }
      assertEq(noResult && noResult.message, "Client didn't provide a result.", "no client result");
      // hub errors
      let thrown;
      try { await c.invoke("Throw", "boom"); } catch (e) { thrown = e; }
      assert(thrown instanceof Error && thrown.message === "boom", `Throw: ${thrown}`);
      await c.stop();
      assertEq(c.state, "Disconnected", "state after stop");
      await sleep(10);
      assertEq(closed, undefined, "onclose after stop");
      let notConnected;
      try { await c.invoke("Add", 1, 2); } catch (e) { notConnected = e; }
      assert(notConnected instanceof Error, "invoke while disconnected rejects");
    });
    await scenario(`${tag}: automatic reconnect after a Close with allowReconnect`, async () => {
      const c = build(hub, transport, p, (b) => b.withAutomaticReconnect([0, 100, 1000]));
      const events = [];
      const reconnected = new Promise((resolve) => c.onreconnected((id) => { events.push("reconnected"); resolve(id); }));
      c.onreconnecting((e) => events.push(`reconnecting: ${e && e.message}`));
      await c.start();
      const first = c.connectionId;
      await c.send("CloseWithMessage", "bye", true);
      const id = await reconnected;
      assertEq(events, ["reconnecting: Server returned an error on close: bye", "reconnected"], "events");
      assertEq(c.state, "Connected", "state after reconnect");
      assert(id && id !== first, `new connection id (${first} -> ${id})`);
      assertEq(await c.invoke("Add", 2, 3), 5, "invoke after reconnect");
      await c.stop();
    });
  }
  await scenario("policy object, closing without reconnect", async () => {
    const contexts = [];
    const c = build(hub, HttpTransportType.WebSockets, "json", (b) => b.withAutomaticReconnect({
      nextRetryDelayInMilliseconds: (ctx) => { contexts.push(ctx); return null; },
    }));
    const closed = new Promise((resolve) => c.onclose(resolve));
    let reconnecting = 0;
    c.onreconnecting(() => reconnecting++);
    await c.start();
    await c.send("CloseWithMessage", "done", true);
    const e = await closed;
    assertEq(contexts.length, 1, "policy asked once");
    assertEq(contexts[0].previousRetryCount, 0, "previousRetryCount");
    assert(contexts[0].retryReason instanceof Error, "retryReason is an Error");
    assertEq(reconnecting, 0, "no onreconnecting when the policy gives up at once");
    assert(e instanceof Error, `onclose error: ${e}`);
    assertEq(c.state, "Disconnected", "state");
  });
  await scenario("access token in the query, headers option, stateful reconnect", async () => {
    const c = new HubConnectionBuilder()
      .withUrl(hub, { accessTokenFactory: () => Promise.resolve("alice"), transport: HttpTransportType.WebSockets })
      .withStatefulReconnect()
      .withServerTimeout(30000)
      .withKeepAliveInterval(10000)
      .build();
    await c.start();
    assertEq(await c.invoke("GetUserId"), "alice", "user from token");
    const q = await c.invoke("GetQuery");
    if (inBrowser) {
      assertEq(q.access_token, "alice", "token in query");
    } else {
      // Node.js can set headers on the upgrade: the official client sends the token there.
      assertEq([q.access_token, await c.invoke("GetHeader", "authorization")], [undefined, "Bearer alice"], "token in the Authorization header");
    }
    await c.stop();
  });
  await scenario("builder errors have the official messages", async () => {
    let e;
    try { new HubConnectionBuilder().build(); } catch (x) { e = x; }
    assertEq(e && e.message, "The 'HubConnectionBuilder.withUrl' method must be called before building the connection.", "no url");
    e = undefined;
    try { new HubConnectionBuilder().withAutomaticReconnect().withAutomaticReconnect(); } catch (x) { e = x; }
    assertEq(e && e.message, "A reconnectPolicy has already been set.", "two policies");
    let c;
    if (inBrowser) {
      c = new HubConnectionBuilder().withUrl("/hubs/test").build();
      // In a page the official client resolves a relative URL against the document at build().
      assertEq(c.baseUrl, new URL("/hubs/test", document.baseURI).href, "baseUrl getter");
    } else {
      // In Node.js there is no document: the official client refuses a relative URL at build().
      let relative;
      try { new HubConnectionBuilder().withUrl("/hubs/test").build(); } catch (x) { relative = x; }
      assertEq(relative && relative.message, "Cannot resolve '/hubs/test'.", "a relative URL in Node.js");
      c = new HubConnectionBuilder().withUrl(`${base}/hubs/other`).build();
      assertEq(c.baseUrl, `${base}/hubs/other`, "baseUrl getter");
    }
    c.baseUrl = hub;
    assertEq(c.baseUrl, hub, "baseUrl setter");
    await c.start();
    let twice;
    try { await c.start(); } catch (x) { twice = x; }
    assertEq(twice && twice.message, "Cannot start a HubConnection that is not in the 'Disconnected' state.", "start twice");
    await c.stop();
  });
  // ---- the official surface, defaults and error objects (issue #11, section 2) ----
  const errorOf = async (p) => { try { await p; } catch (e) { return e; } throw new Error("expected a rejection"); };
  const describe = (e) => e && { message: e.message, name: e.name, string: String(e) };
  await scenario("every export of @microsoft/signalr is there, with the official values", async () => {
    const official = ["AbortError", "DefaultHttpClient", "HttpClient", "HttpError", "HttpResponse", "HttpTransportType",
      "HubConnection", "HubConnectionBuilder", "HubConnectionState", "JsonHubProtocol", "LogLevel", "MessageType",
      "NullLogger", "Subject", "TimeoutError", "TransferFormat", "VERSION"];
    assertEq(official.filter((k) => !(k in signalR)), [], "missing exports");
    assert(typeof signalR.VERSION === "string" && /^\d+\.\d+\.\d+/.test(signalR.VERSION), "VERSION");
    assertEq([signalR.LogLevel.Information, signalR.LogLevel[2], HttpTransportType.LongPolling, HttpTransportType[4],
      signalR.TransferFormat.Binary, signalR.MessageType.Sequence, HubConnectionState.Reconnecting],
    [2, "Information", 4, "LongPolling", 2, 9, "Reconnecting"], "enum values");
    // The official errors keep Error's `name`: String(e) reads "Error: ...".
    const h = new signalR.HttpError("Not Found", 404);
    assert(h instanceof signalR.HttpError && h instanceof Error, "HttpError instanceof");
    assertEq([h.statusCode, h.message, h.name, String(h)], [404, "Not Found: Status code '404'", "Error", "Error: Not Found: Status code '404'"], "HttpError");
    assertEq(describe(new signalR.TimeoutError()), { message: "A timeout occurred.", name: "Error", string: "Error: A timeout occurred." }, "TimeoutError");
    assertEq(describe(new signalR.AbortError()), { message: "An abort occurred.", name: "Error", string: "Error: An abort occurred." }, "AbortError");
    assertEq(new signalR.FailedToNegotiateWithServerError("x").errorType, "FailedToNegotiateWithServerError", "errorType");
    const r = new signalR.HttpResponse(200, "OK", "body");
    assertEq([r.statusCode, r.statusText, r.content], [200, "OK", "body"], "HttpResponse");
    assert(new signalR.DefaultHttpClient(signalR.NullLogger.instance) instanceof signalR.HttpClient, "DefaultHttpClient extends HttpClient");
    const c = new HubConnectionBuilder().withUrl(hub).build();
    assert(c instanceof signalR.HubConnection, "build() gives a HubConnection");
    assertEq([c.serverTimeoutInMilliseconds, c.keepAliveIntervalInMilliseconds, c.state, c.connectionId, c.baseUrl],
      [30000, 15000, "Disconnected", null, hub], "HubConnection defaults");
    const s = c.stream("Counter", 1, 0);
    assert(s instanceof Subject && typeof s.subscribe === "function", "stream() gives a Subject");
    const streamError = await new Promise((resolve) => s.subscribe({ next() {}, complete() {}, error: resolve }));
    assertEq(describe(streamError), describe(new Error("Cannot send data if the connection is not in the 'Connected' State.")), "stream before start");
  });
  await scenario("JsonHubProtocol frames and checks messages as the official one does", async () => {
    const p = new signalR.JsonHubProtocol();
    assertEq(p.writeMessage({ type: 6 }), '{"type":6}\x1e', "writeMessage");
    const logged = [];
    const parsed = p.parseMessages('{"type":1,"target":"a","arguments":[1]}\x1e{"type":42}\x1e{"type":6}\x1e', { log: (l, m) => logged.push([l, m]) });
    assertEq(parsed, [{ type: 1, target: "a", arguments: [1] }, { type: 6 }], "parseMessages");
    assertEq(logged, [[signalR.LogLevel.Information, "Unknown message type '42' ignored."]], "unknown type logged");
    assertEq(p.parseMessages("", null), [], "empty input");
    const bad = [["{\"type\":6}", "Message is incomplete."], ['{"type":2,"invocationId":"1"}\x1e', "Invalid payload for StreamItem message."],
      ['{"type":"x"}\x1e', "Invalid payload."], ['{"type":8}\x1e', "Invalid SequenceId for Ack message."]];
    for (const [input, message] of bad) {
      let e;
      try { p.parseMessages(input, null); } catch (x) { e = x; }
      assertEq(e && e.message, message, `parseMessages(${JSON.stringify(input)})`);
    }
  });
  await scenario("DefaultHttpClient sends requests as the official one does: HttpResponse, HttpError with statusCode", async () => {
    const client = new signalR.DefaultHttpClient(signalR.NullLogger.instance);
    const ok = await client.post(`${hub}/negotiate?negotiateVersion=1`, { withCredentials: true });
    assert(ok instanceof signalR.HttpResponse, "an HttpResponse");
    assertEq(ok.statusCode, 200, "statusCode");
    assert(typeof JSON.parse(ok.content).connectionToken === "string", `negotiate content: ${ok.content}`);
    const e = await errorOf(client.post(`${base}/hubs/nope/negotiate`));
    assert(e instanceof signalR.HttpError, `HttpError: ${e}`);
    assertEq(e.statusCode, 404, "statusCode of the HttpError");
    const t = await errorOf(client.post(`${hub}/negotiate?negotiateVersion=1`, { timeout: 1, abortSignal: { aborted: true } }));
    assert(t instanceof signalR.AbortError, `an aborted request gives AbortError: ${t}`);
  });
  await scenario("start() errors: the official classes and messages", async () => {
    const ws = HttpTransportType.WebSockets;
    const missing = new HubConnectionBuilder().withUrl(`${base}/hubs/nope`, ws).build();
    let closes = 0;
    missing.onclose(() => closes++);
    const notFound = await errorOf(missing.start());
    await sleep(50);
    assertEq(closes, 0, "no onclose for a start() that failed");
    assert(notFound instanceof signalR.FailedToNegotiateWithServerError, `404: ${notFound && notFound.constructor.name}`);
    assertEq(describe(notFound), describe(new Error("Failed to complete negotiation with the server: Error: Not Found: Status code '404' Either this is not a SignalR endpoint or there is a proxy blocking the connection.")), "404 negotiate");
    assertEq(notFound.errorType, "FailedToNegotiateWithServerError", "errorType");
    const token = await errorOf(new HubConnectionBuilder().withUrl(hub, { transport: ws, accessTokenFactory: () => { throw new Error("no token"); } }).build().start());
    assert(token instanceof signalR.FailedToNegotiateWithServerError, `token factory: ${token && token.constructor.name}`);
    assertEq(describe(token), describe(new Error("Failed to complete negotiation with the server: Error: no token")), "token factory");
    const c = new HubConnectionBuilder().withUrl(hub, ws).build();
    const starting = errorOf(c.start());
    await withTimeout(c.stop(), 5000, "stop() during start()");
    const aborted = await withTimeout(starting, 5000, "start() after stop()");
    assert(aborted instanceof signalR.AbortError, `stop during start: ${aborted && aborted.constructor.name} ${aborted}`);
    assertEq(describe(aborted), describe(new Error("The connection was stopped during negotiation.")), "stop during start");
    assertEq(c.state, "Disconnected", "state after stop during start");
    const skip = await errorOf(new HubConnectionBuilder().withUrl(hub, { transport: HttpTransportType.LongPolling, skipNegotiation: true }).build().start());
    assertEq(describe(skip), describe(new Error("Negotiation can only be skipped when using the WebSocket transport directly.")), "skipNegotiation without WebSockets");
    // No transport left: AggregateErrors (not exported by the official index either), with the
    // official text and its innerErrors: for each transport, "<name> failed:" and then the error.
    const none = await errorOf(new HubConnectionBuilder().withUrl(hub, HttpTransportType.ServerSentEvents)
      .withHubProtocol(new signalR.MessagePackHubProtocol()).build().start());
    assertEq(describe(none), describe(new Error("Unable to connect to the server with any of the available transports. WebSockets failed: Error: 'WebSockets' is disabled by the client. ServerSentEvents failed: Error: 'ServerSentEvents' does not support Binary. LongPolling failed: Error: 'LongPolling' is disabled by the client.")), "no transport left");
    assert(none instanceof signalR.AggregateErrors, `AggregateErrors: ${none && none.constructor.name}`);
    assertEq(none.innerErrors.map((x) => (typeof x === "string" ? x : [x.constructor.name, x.message, x.transport])), [
      "WebSockets failed:", ["DisabledTransportError", "'WebSockets' is disabled by the client.", 1],
      "ServerSentEvents failed:", ["Error", "'ServerSentEvents' does not support Binary.", undefined],
      "LongPolling failed:", ["DisabledTransportError", "'LongPolling' is disabled by the client.", 4],
    ], "innerErrors");
  });
  await scenario("call errors: not connected, cancelled by stop(), closed by the server", async () => {
    const c = new HubConnectionBuilder().withUrl(hub, HttpTransportType.WebSockets).build();
    const notConnected = describe(new Error("Cannot send data if the connection is not in the 'Connected' State."));
    assertEq(describe(await errorOf(c.invoke("Add", 1, 2))), notConnected, "invoke before start");
    assertEq(describe(await errorOf(c.send("Add", 1, 2))), notConnected, "send before start");
    await c.start();
    const pending = errorOf(c.invoke("Delay", 5000));
    await c.stop();
    assertEq(describe(await pending), describe(new Error("Invocation canceled due to the underlying connection being closed.")), "pending invoke on stop");
    assertEq(describe(await errorOf(c.invoke("Add", 1, 2))), notConnected, "invoke after stop");
    assertEq(c.connectionId, null, "connectionId after stop");
    // An invoke made just before stop(), in the same turn: written before the Close, then
    // cancelled by it (not refused as made while not connected).
    await c.start();
    const justBefore = errorOf(c.invoke("Delay", 5000));
    await c.stop();
    assertEq(describe(await justBefore), describe(new Error("Invocation canceled due to the underlying connection being closed.")), "invoke just before stop()");
    await c.start();
    const closed = new Promise((resolve) => c.onclose(resolve));
    const pending2 = errorOf(c.invoke("Delay", 5000));
    await c.send("CloseWithMessage", "bye", false);
    assertEq(describe(await pending2), describe(new Error("Server returned an error on close: bye")), "pending invoke on a server Close");
    assertEq(describe(await closed), describe(new Error("Server returned an error on close: bye")), "onclose error");
  });
  await scenario("uploads: Subject.error() reaches the server; several Subjects in one call", async () => {
    for (const p of ["json", "messagepack"]) {
      const c = build(hub, HttpTransportType.WebSockets, p);
      await c.start();
      const failing = new Subject();
      const sum = errorOf(c.invoke("UploadSum", failing));
      failing.next(1);
      failing.error(new Error("the subject failed"));
      const e = await sum;
      assert(e instanceof Error, `${p}: UploadSum with an erroring Subject rejects: ${e}`);
      assertEq(e.message, "the subject failed", `${p}: the server got the Subject's error`);
      const first = new Subject(), second = new Subject();
      const collected = c.invoke("UploadCollect", first, second);
      first.next("a"); second.next("z"); first.next("b");
      first.complete(); second.complete();
      // The test hub reads the invocation's first upload; the second went with it.
      assertEq(await collected, ["a", "b"], `${p}: two Subjects in one invoke`);
      const echo = new Subject(), other = new Subject();
      const streamed = collect(c.stream("UploadEcho", echo, other));
      echo.next(1); other.complete(); echo.complete();
      assertEq(await streamed, [1], `${p}: two Subjects in one stream`);
      assertEq(await c.invoke("Add", 1, 2), 3, `${p}: the connection is fine`);
      await c.stop();
    }
  });
  await scenario("a server invocation with no handler logs the official Warning through the configured logger", async () => {
    const lines = [];
    const logger = { log: (level, message) => lines.push([level, message]) };
    const c = new HubConnectionBuilder().withUrl(hub, HttpTransportType.WebSockets).configureLogging(logger).build();
    await c.start();
    await c.send("EchoToCaller", "nobody listens");
    await c.invoke("Add", 1, 1);
    const noResult = await errorOf(c.invoke("AskClient", "Missing", 1));
    assertEq(noResult && noResult.message, "Client didn't provide a result.", "no client result");
    await c.stop();
    const warnings = lines.filter(([l]) => l === signalR.LogLevel.Warning).map(([, m]) => m);
    assert(warnings.includes("No client method with the name 'echoed' found."), `Warning lines: ${JSON.stringify(warnings)}`);
    assert(warnings.includes("No client method with the name 'missing' found."), `Warning lines: ${JSON.stringify(warnings)}`);
    assert(warnings.some((w) => /^No result given for 'missing' method and invocation ID '[^']+'\.$/.test(w)), `Warning lines: ${JSON.stringify(warnings)}`);
  });
  await scenario("serverTimeoutInMilliseconds and keepAliveIntervalInMilliseconds are settable after build()", async () => {
    const c = new HubConnectionBuilder().withUrl(hub, HttpTransportType.WebSockets).build();
    c.keepAliveIntervalInMilliseconds = 10000;
    c.serverTimeoutInMilliseconds = 300;
    assertEq([c.serverTimeoutInMilliseconds, c.keepAliveIntervalInMilliseconds], [300, 10000], "read back");
    const closed = new Promise((resolve) => c.onclose(resolve));
    await c.start();
    const started = Date.now();
    const e = await withTimeout(closed, 5000, "the server timeout");
    assertEq(describe(e), describe(new Error("Server timeout elapsed without receiving a message from the server.")), "timeout error");
    assert(Date.now() - started < 3000, `closed after ${Date.now() - started} ms`);
    assertEq(c.state, "Disconnected", "state");
  });
  await scenario("configureLogging: an ILogger gets log(level, message) calls; level strings; logger option as a LogLevel", async () => {
    const lines = [];
    const logger = { log: (level, message) => lines.push([level, message]) };
    const c = new HubConnectionBuilder().withUrl(hub, HttpTransportType.LongPolling).configureLogging(logger).build();
    await c.start();
    await c.stop();
    const info = lines.filter(([l]) => l === signalR.LogLevel.Information).map(([, m]) => m);
    assert(info.includes("Using HubProtocol 'json'."), `Information lines: ${JSON.stringify(info)}`);
    assert(info.includes("Connection disconnected."), `Information lines: ${JSON.stringify(info)}`);
    assert(lines.some(([l, m]) => l === signalR.LogLevel.Debug && m === "Starting HubConnection."), "Debug lines");
    for (const level of ["trace", "Debug", "information", "info", "warn", "warning", "error", "critical", "none"]) {
      new HubConnectionBuilder().withUrl(hub).configureLogging(level).build();
    }
    let unknown;
    try { new HubConnectionBuilder().configureLogging("loud"); } catch (x) { unknown = x; }
    assertEq(unknown && unknown.message, "Unknown log level: loud", "unknown level");
    const quiet = new HubConnectionBuilder().withUrl(hub, { transport: HttpTransportType.WebSockets, logger: signalR.LogLevel.None }).build();
    await quiet.start();
    assertEq(await quiet.invoke("Add", 2, 2), 4, "a connection with a LogLevel as its logger option works");
    await quiet.stop();
  });
  await scenario("a transport refused at connect: fallback, then AggregateErrors with a FailedToStartTransportError", async () => {
    assertEq(await admin("/admin/faults/refuse-transport?transport=WebSockets&at=connect"), 204, "refuse WebSockets");
    try {
      const fallback = new HubConnectionBuilder().withUrl(hub).build();
      await fallback.start();
      assertEq(await fallback.invoke("GetHeader", "upgrade"), null, "fell back from WebSockets");
      await fallback.stop();
      const e = await errorOf(new HubConnectionBuilder().withUrl(hub, HttpTransportType.WebSockets).build().start());
      const wsFailed = "WebSockets failed: Error: WebSocket failed to connect. The connection could not be found on the server, either the endpoint may not be a SignalR endpoint, the connection ID is not present on the server, or there is a proxy blocking WebSockets. If you have multiple servers check that sticky sessions are enabled.";
      assertEq(e && e.message, `Unable to connect to the server with any of the available transports. Error: ${wsFailed} ServerSentEvents failed: Error: 'ServerSentEvents' is disabled by the client. LongPolling failed: Error: 'LongPolling' is disabled by the client.`, "message");
      const first = e.innerErrors[0];
      assert(first instanceof signalR.FailedToStartTransportError, `first inner error: ${first && first.constructor.name}`);
      assertEq([first.message, first.transport, first.errorType], [wsFailed, HttpTransportType.WebSockets, "FailedToStartTransportError"], "FailedToStartTransportError");
    } finally {
      await admin("/admin/faults/reset");
    }
  });
  await scenario("a dropped WebSocket: onreconnecting gets the official error, then onreconnected", async () => {
    const c = new HubConnectionBuilder().withUrl(hub, HttpTransportType.WebSockets).withAutomaticReconnect([0]).build();
    const reconnecting = new Promise((resolve) => c.onreconnecting(resolve));
    const reconnected = new Promise((resolve) => c.onreconnected(resolve));
    await c.start();
    const pending = errorOf(c.invoke("Delay", 5000));
    await c.send("CloseMe", "drop");
    const e = await reconnecting;
    assertEq(describe(await pending), describe(new Error("WebSocket closed with status code: 1006 (no reason given).")), "a pending invoke gets the same error");
    assertEq(c.state, "Reconnecting", "state while reconnecting");
    assertEq(describe(e), describe(new Error("WebSocket closed with status code: 1006 (no reason given).")), "reconnect reason");
    assertEq(await reconnected, c.connectionId, "onreconnected gets the new connection id");
    await c.stop();
  });
  await scenario("withUrl(url, HttpTransportType.None) lets the client choose, as the official client does", async () => {
    const c = new HubConnectionBuilder().withUrl(hub, HttpTransportType.None).build();
    await c.start();
    assertEq(await c.invoke("GetHeader", "upgrade"), "websocket", "WebSockets chosen");
    await c.stop();
  });
  await scenario("withUrl(url, transportType) and a retry policy's context", async () => {
    const contexts = [];
    const c = new HubConnectionBuilder().withUrl(hub, HttpTransportType.LongPolling)
      .withAutomaticReconnect({ nextRetryDelayInMilliseconds: (ctx) => { contexts.push(ctx); return ctx.previousRetryCount === 0 ? 0 : null; } })
      .build();
    await c.start();
    assertEq(await c.invoke("GetHeader", "upgrade"), null, "long polling, not WebSockets");
    const reconnected = new Promise((resolve) => c.onreconnected(resolve));
    await c.send("CloseWithMessage", "again", true);
    await reconnected;
    assertEq(contexts.length, 1, "asked once");
    assertEq(Object.keys(contexts[0]).sort(), ["elapsedMilliseconds", "previousRetryCount", "retryReason"], "context fields");
    assertEq(describe(contexts[0].retryReason), describe(new Error("Server returned an error on close: again")), "retryReason");
    assert(typeof contexts[0].elapsedMilliseconds === "number", "elapsedMilliseconds");
    await c.stop();
  });
  return results;
}

window.runAll = runAll;
window.ready = true;
