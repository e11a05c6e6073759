// The scenarios of the package test: run in the page (test.html) through the public API of
// talkback-signalr, against the fixture's test hub (docs/test-hub.md).
import * as signalR from "/pkg/index.js";

const { HubConnectionBuilder, HttpTransportType, HubConnectionState, Subject } = signalR;

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
    assertEq(q.access_token, "alice", "token in query");
    await c.stop();
  });
  await scenario("builder errors have the official messages", async () => {
    let e;
    try { new HubConnectionBuilder().build(); } catch (x) { e = x; }
    assertEq(e && e.message, "The 'HubConnectionBuilder.withUrl' method must be called before building the connection.", "no url");
    e = undefined;
    try { new HubConnectionBuilder().withAutomaticReconnect().withAutomaticReconnect(); } catch (x) { e = x; }
    assertEq(e && e.message, "A reconnectPolicy has already been set.", "two policies");
    const c = new HubConnectionBuilder().withUrl("/hubs/test").build();
    assert(c.baseUrl === "/hubs/test", "baseUrl getter");
    c.baseUrl = hub;
    assertEq(c.baseUrl, hub, "baseUrl setter");
    await c.start();
    let twice;
    try { await c.start(); } catch (x) { twice = x; }
    assertEq(twice && twice.message, "Cannot start a HubConnection that is not in the 'Disconnected' state.", "start twice");
    await c.stop();
  });
  return results;
}

window.runAll = runAll;
window.ready = true;
