// The custom `httpClient` scenarios of the package test (run by run.mjs in the page, after the
// scenarios of scenarios.js): each runs the same app code against talkback-signalr and against
// the official @microsoft/signalr browser bundle (served by run.mjs at /official/), and checks
// that ours behaves as the official one does, request by request, and error by error.
import * as talkback from "/pkg/index.js";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))]);
function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
function assert(cond, what) {
  if (!cond) throw new Error(what);
}

// The official client, as a classic script that sets `window.signalR` (in Node.js, node.mjs
// sets it to the official client's Node.js build).
function loadOfficial() {
  if (window.signalR) return Promise.resolve(window.signalR);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/official/signalr.js";
    script.onload = () => (window.signalR ? resolve(window.signalR) : reject(new Error("no window.signalR")));
    script.onerror = () => reject(new Error("the official client did not load from /official/signalr.js"));
    document.head.append(script);
  });
}

const kindOf = (r) => (r.method === "GET" ? "poll" : r.method === "DELETE" ? "delete" : /\/negotiate\?/.test(r.url) ? "negotiate" : "send");

// What an app sees of one request, without the values that differ from run to run.
function shape(r) {
  const c = r.content;
  return {
    kind: kindOf(r),
    keys: Object.keys(r).sort(),
    headers: Object.keys(r.headers || {}).sort(),
    content: c === undefined ? "none" : typeof c === "string" ? (c === "" ? "empty string" : "string") : c instanceof ArrayBuffer ? "ArrayBuffer" : typeof c,
    responseType: r.responseType,
    timeout: r.timeout,
    withCredentials: r.withCredentials,
    abortSignal: r.abortSignal ? "yes" : "no",
    cacheBuster: r.method === "GET" ? /[?&]id=[^&]+&_=\d+$/.test(r.url) : undefined,
  };
}

// A DefaultHttpClient subclass (of `lib`'s) that records each request and adds a header, as
// apps and test suites write them; `fail(request)` may return an error to throw instead.
function recorder(lib, fail) {
  return new (class extends lib.DefaultHttpClient {
    constructor() {
      super(lib.NullLogger.instance);
      this.requests = [];
      this.shapes = [];
      this.cookieUrls = [];
    }
    send(request) {
      // What it was given, before the default client's own changes (fetch's "" -> undefined).
      this.requests.push(request);
      this.shapes.push(shape(request));
      const error = fail && fail(request);
      if (error) return Promise.reject(error);
      request.headers = { ...request.headers, "X-Custom-Client": "recorded" };
      return super.send(request);
    }
    getCookieString(url) {
      this.cookieUrls.push(url);
      return super.getCookieString(url);
    }
  })();
}

function connect(lib, base, transport, client, configure) {
  let b = new lib.HubConnectionBuilder()
    .withUrl(`${base}/hubs/test`, { transport: lib.HttpTransportType[transport], httpClient: client })
    .configureLogging(lib.LogLevel.None);
  if (configure) b = configure(b);
  return b.build();
}

// The first request of each kind, in the order the kinds came.
function firstOfEachKind(shapes) {
  const seen = new Map();
  for (const s of shapes) if (!seen.has(s.kind)) seen.set(s.kind, s);
  return [...seen.values()];
}

// Starts, calls, stops over `transport`; what the client saw, for comparison.
async function roundTrip(lib, base, transport, configure) {
  const client = recorder(lib);
  const c = connect(lib, base, transport, client, configure);
  await c.start();
  const header = await c.invoke("GetHeader", "x-custom-client");
  const sum = await c.invoke("Add", 1, 2);
  const polls = client.requests.filter((r) => r.method === "GET");
  await c.stop();
  await sleep(50);
  return {
    client,
    header,
    sum,
    kinds: [...new Set(client.requests.map(kindOf))],
    first: firstOfEachKind(client.shapes),
    lastPollAborted: polls.length > 0 ? polls[polls.length - 1].abortSignal.aborted : undefined,
    deleteLast: client.requests.length > 0 && kindOf(client.requests[client.requests.length - 1]) === "delete",
    cookieUrls: client.cookieUrls.map((u) => (/^wss?:\/\/[^?]+\?id=[^&]+$/.test(u) ? "ws URL with id" : u)),
  };
}

export async function runHttpClient(base) {
  const results = [];
  async function scenario(name, f) {
    try {
      await withTimeout(f(), 30000, name);
      results.push({ name, ok: true });
    } catch (e) {
      results.push({ name, ok: false, error: String((e && e.stack) || e) });
    }
  }
  let official;
  try { official = await loadOfficial(); } catch (e) { official = undefined; results.push({ name: "httpClient: the official client loads", ok: false, error: String(e) }); }
  if (!official) return results;

  await scenario("httpClient: a custom HttpClient makes negotiate, every long poll, each send and the DELETE, with its header reaching the server, as the official client's", async () => {
    const ours = await roundTrip(talkback, base, "LongPolling");
    const theirs = await roundTrip(official, base, "LongPolling");
    assertEq(ours.kinds, ["negotiate", "poll", "send", "delete"], "kinds of request through the client");
    assertEq(ours.header, "recorded", "the header the client added, on the request that opened the transport");
    assertEq(ours.sum, 3, "Add");
    assert(ours.deleteLast, "the DELETE is the last request");
    assertEq(ours.lastPollAborted, true, "the poll in flight at stop() has its abortSignal aborted");
    assertEq(ours.first, theirs.first, "the requests as the official client gives them to its HttpClient");
    assertEq([ours.header, ours.lastPollAborted, ours.deleteLast], [theirs.header, theirs.lastPollAborted, theirs.deleteLast], "as official");
  });

  await scenario("httpClient: with MessagePack over long polling, polls ask for an arraybuffer and sends carry an ArrayBuffer", async () => {
    const ours = await roundTrip(talkback, base, "LongPolling", (b) => b.withHubProtocol(new talkback.MessagePackHubProtocol()));
    assertEq(ours.sum, 3, "Add");
    const poll = ours.first.find((s) => s.kind === "poll");
    const send = ours.first.find((s) => s.kind === "send");
    assertEq([poll.responseType, send.content, send.responseType], ["arraybuffer", "ArrayBuffer", "arraybuffer"], "binary requests");
  });

  await scenario("httpClient: over Server-Sent Events the custom HttpClient makes negotiate and the sends, and the stream stays on the browser's, as the official client's", async () => {
    const ours = await roundTrip(talkback, base, "ServerSentEvents");
    const theirs = await roundTrip(official, base, "ServerSentEvents");
    assertEq(ours.kinds, ["negotiate", "send"], "kinds of request through the client");
    assertEq(ours.sum, 3, "Add");
    assertEq(ours.first, theirs.first, "the requests as the official client gives them to its HttpClient");
  });

  await scenario("httpClient: over WebSockets the custom HttpClient makes only negotiate and is asked getCookieString for the socket, as the official client's", async () => {
    const ours = await roundTrip(talkback, base, "WebSockets");
    const theirs = await roundTrip(official, base, "WebSockets");
    assertEq(ours.kinds, ["negotiate"], "kinds of request through the client");
    assertEq(ours.sum, 3, "Add");
    assertEq(ours.cookieUrls, ["ws URL with id"], "getCookieString calls");
    assertEq([ours.first, ours.cookieUrls], [theirs.first, theirs.cookieUrls], "as official");
  });

  await scenario("httpClient: with an access token the custom HttpClient sees the Authorization header, as the official client's", async () => {
    const token = (b) => b.withUrl(`${base}/hubs/test`, { accessTokenFactory: () => "carol" });
    const ours = await roundTrip(talkback, base, "LongPolling", token);
    const theirs = await roundTrip(official, base, "LongPolling", token);
    assert(ours.first.every((s) => s.headers.includes("Authorization")), `Authorization on every request: ${JSON.stringify(ours.first)}`);
    assertEq(ours.first, theirs.first, "as official");
  });

  await scenario("httpClient: an automatic reconnect negotiates again through the custom HttpClient, as the official client does", async () => {
    const run = async (lib) => {
      const client = recorder(lib);
      const c = connect(lib, base, "LongPolling", client, (b) => b.withAutomaticReconnect([0]));
      const reconnected = new Promise((resolve) => c.onreconnected(resolve));
      await c.start();
      await c.send("CloseWithMessage", "again", true);
      await withTimeout(reconnected, 10000, "onreconnected");
      const sum = await c.invoke("Add", 2, 2);
      await c.stop();
      return { negotiates: client.requests.filter((r) => kindOf(r) === "negotiate").length, sum, last: kindOf(client.requests[client.requests.length - 1]) };
    };
    const ours = await run(talkback);
    assertEq(ours, { negotiates: 2, sum: 4, last: "delete" }, "talkback-signalr");
    assertEq(ours, await run(official), "as official");
  });

  // A send the client fails: that call fails with the very error, and the connection goes on.
  async function failedSend(lib, transport) {
    let failNext = false;
    const refused = new lib.HttpError("refused by the custom client", 503);
    const client = recorder(lib, (r) => {
      if (failNext && kindOf(r) === "send") { failNext = false; return refused; }
      return undefined;
    });
    const c = connect(lib, base, transport, client);
    await c.start();
    failNext = true;
    let error;
    try { await c.invoke("Add", 1, 2); } catch (e) { error = e; }
    const state = c.state;
    const after = await c.invoke("Add", 2, 3);
    await c.stop();
    return { same: error === refused, message: error && error.message, state, after };
  }
  for (const transport of ["LongPolling", "ServerSentEvents"]) {
    await scenario(`httpClient: a send the custom HttpClient fails with an HttpError over ${transport} fails that call with the same error, and the connection goes on, as the official client's`, async () => {
      const ours = await failedSend(talkback, transport);
      const theirs = await failedSend(official, transport);
      assertEq(ours, { same: true, message: "refused by the custom client: Status code '503'", state: "Connected", after: 5 }, "talkback-signalr");
      assertEq(ours, theirs, "as official");
    });
  }

  // A negotiate the client fails: start() fails with the official error and text.
  async function failedNegotiate(lib, error) {
    const client = recorder(lib, (r) => (kindOf(r) === "negotiate" ? error(lib) : undefined));
    const c = connect(lib, base, "WebSockets", client);
    try { await c.start(); } catch (e) { return { type: e.errorType, message: e.message, state: c.state }; }
    return { type: "started" };
  }
  await scenario("httpClient: a negotiate the custom HttpClient fails with a 404 HttpError fails start() with the official error and text", async () => {
    const error = (lib) => new lib.HttpError("Not Found", 404);
    const ours = await failedNegotiate(talkback, error);
    const theirs = await failedNegotiate(official, error);
    assertEq(ours, {
      type: "FailedToNegotiateWithServerError",
      message: "Failed to complete negotiation with the server: Error: Not Found: Status code '404' Either this is not a SignalR endpoint or there is a proxy blocking the connection.",
      state: "Disconnected",
    }, "talkback-signalr");
    assertEq(ours, theirs, "as official");
  });
  await scenario("httpClient: a negotiate answered with a status other than 200 fails start() with the official error", async () => {
    const answer = (lib) => new (class extends lib.HttpClient {
      send() { return Promise.resolve(new lib.HttpResponse(202, "Accepted", "{}")); }
    })();
    const run = async (lib) => {
      const c = connect(lib, base, "WebSockets", answer(lib));
      try { await c.start(); } catch (e) { return { type: e.errorType ?? e.constructor.name, message: e.message }; }
      return { type: "started" };
    };
    const ours = await run(talkback);
    assertEq(ours, { type: "Error", message: "Unexpected status code returned from negotiate '202'" }, "talkback-signalr");
    assertEq(ours, await run(official), "as official");
  });

  // A poll the client fails: the connection closes with that very error.
  // The first poll made after start() has resolved fails (an earlier one would fail start()
  // itself, sooner or later depending on timing); a call makes the server answer the poll in
  // flight, so that the next one is made.
  async function failedPoll(lib) {
    let started = false;
    let failed = false;
    const broken = new Error("the poll broke");
    const client = recorder(lib, (r) => {
      if (kindOf(r) !== "poll" || !started || failed) return undefined;
      failed = true;
      return broken;
    });
    const c = connect(lib, base, "LongPolling", client);
    const closed = new Promise((resolve) => c.onclose(resolve));
    await c.start();
    started = true;
    c.invoke("Add", 1, 2).catch(() => {});
    const error = await withTimeout(closed, 10000, "onclose");
    return { same: error === broken, state: c.state, failed };
  }
  await scenario("httpClient: a long poll the custom HttpClient fails closes the connection with the same error, as the official client's", async () => {
    const ours = await failedPoll(talkback);
    assertEq(ours, { same: true, state: "Disconnected", failed: true }, "talkback-signalr");
    assertEq(ours, await failedPoll(official), "as official");
  });

  // A poll timeout: the client's TimeoutError makes a new poll; the connection goes on.
  await scenario("httpClient: a long poll the custom HttpClient ends with a TimeoutError is made again, and the connection goes on", async () => {
    let polls = 0;
    const client = recorder(talkback, (r) => (kindOf(r) === "poll" && ++polls === 2 ? new talkback.TimeoutError() : undefined));
    const c = connect(talkback, base, "LongPolling", client);
    let closed = false;
    c.onclose(() => { closed = true; });
    await c.start();
    await sleep(100);
    assert(polls >= 3, `a poll after the timed out one (${polls} polls)`);
    assertEq(await c.invoke("Add", 4, 5), 9, "Add after the timeout");
    assertEq([closed, c.state], [false, "Connected"], "still connected");
    await c.stop();
  });
  return results;
}
