// Interop, Azure service mode: the official @microsoft/signalr client (Node) through the two-step
// negotiate against `talkback-fixture --azure`, on every transport and protocol.
//
// Usage: node azure.mjs [name-filter-regex]   (same environment as run.mjs)
// The last line is exactly `N passed, N failed`; the exit code is non-zero on any failure.
//
// The client is pointed at the fixture's app-server-style negotiate (`/api?hub=H&userId=U`),
// which answers `{url, accessToken}`; the client negotiates again at `/client/negotiate` with
// that token and connects to `/client/?hub=H`. Tokens for the REST API are minted here with
// node:crypto (HS256 over the access key's UTF-8 bytes), and the serverless upstream is a
// node:http server that checks `X-ASRS-Signature` with node:crypto: independent of our Rust code.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { startFixture, killAllFixtures } from "./fixture.mjs";
import { signalR, MessagePackHubProtocol, logLevel, TRANSPORTS, COMBOS } from "./official.mjs";
import { Suite, deferred, within, eq, ok, rejects } from "./harness.mjs";


const KEY = "interop-access-key-0123456789-interop-key-0";
const SECONDARY = "interop-secondary-key-0123456789-secondary";



// ---------------------------------------------------------------------------------------------
// Tokens and REST calls, independent of the fixture's code.

const b64url = (value) => Buffer.from(value).toString("base64url");

/** An HS256 JWT signed with the UTF-8 bytes of `key`. */
function jwt(key, claims, lifetimeSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = b64url(JSON.stringify({ ...claims, iat: now, nbf: now, exp: now + lifetimeSeconds }));
  const signature = createHmac("sha256", Buffer.from(key, "utf8")).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

/** POSTs `{target, arguments}` to a REST path with a token whose `aud` is the URL without query. */
async function restSend(fx, path, target, args) {
  const url = `${fx.url}${path}`;
  const aud = url.split("?")[0];
  const response = await fetch(url, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt(KEY, { aud })}`, "Content-Type": "application/json" },
    body: JSON.stringify({ target, arguments: args }),
  });
  return response.status;
}

// ---------------------------------------------------------------------------------------------
// The upstream of the serverless fixture: answers `Ping(x)` with a framed JSON Completion of
// `pong:<x>`, records every request, and checks every signature.

const upstreamCalls = [];
const upstreamWaiters = [];
function upstreamHandler(request, response) {
  const chunks = [];
  request.on("data", (c) => chunks.push(c));
  request.on("end", () => {
    const body = Buffer.concat(chunks);
    const connectionId = request.headers["x-asrs-connection-id"] ?? "";
    const signatures = String(request.headers["x-asrs-signature"] ?? "").split(",").map((s) => s.trim());
    const expected = [KEY, SECONDARY].map(
      (key) => "sha256=" + createHmac("sha256", Buffer.from(key, "utf8")).update(connectionId).digest("hex"),
    );
    const signed =
      signatures.length === expected.length &&
      signatures.every((s, i) => s.length === expected[i].length && timingSafeEqual(Buffer.from(s.toLowerCase()), Buffer.from(expected[i])));
    const call = { path: request.url, headers: request.headers, body, signed };
    upstreamCalls.push(call);
    for (const waiter of upstreamWaiters.splice(0)) waiter(call);
    if (!signed) {
      response.writeHead(401).end();
      return;
    }
    if (request.headers["x-asrs-category"] === "messages" && request.headers["x-asrs-event"] === "Ping") {
      let invocation;
      if (request.headers["content-type"] === "application/x-msgpack") {
        // The MessagePack invocation is answered through a JSON-free path: echo its id only.
        const protocol = new MessagePackHubProtocol();
        const framed = frameMsgpack(body);
        const buffer = framed.buffer.slice(framed.byteOffset, framed.byteOffset + framed.byteLength);
        const [message] = protocol.parseMessages(buffer, signalR.NullLogger.instance);
        invocation = message;
        const reply = protocol.writeMessage({
          type: signalR.MessageType.Completion,
          invocationId: invocation.invocationId,
          result: `pong:${invocation.arguments[0]}`,
        });
        response.writeHead(200, { "Content-Type": "application/x-msgpack" }).end(Buffer.from(reply));
        return;
      }
      invocation = JSON.parse(body.toString("utf8"));
      const reply = JSON.stringify({ type: 3, invocationId: invocation.invocationId, result: `pong:${invocation.arguments[0]}` });
      response.writeHead(200, { "Content-Type": "application/json" }).end(reply + "\x1e");
      return;
    }
    response.writeHead(200).end();
  });
}

/** Adds the VarInt length prefix to one MessagePack record. */
function frameMsgpack(record) {
  const prefix = [];
  let size = record.length;
  do {
    let byte = size & 0x7f;
    size >>= 7;
    if (size > 0) byte |= 0x80;
    prefix.push(byte);
  } while (size > 0);
  return Buffer.concat([Buffer.from(prefix), record]);
}

/** Resolves with the next upstream call for which `match(call)` holds (including past ones). */
function upstreamCall(match) {
  const seen = upstreamCalls.find(match);
  if (seen) return Promise.resolve(seen);
  const d = deferred();
  const waiter = (call) => (match(call) ? d.resolve(call) : upstreamWaiters.push(waiter));
  upstreamWaiters.push(waiter);
  return d.promise;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

let upstreamServer;
const fixtures = {};
async function fixture(mode) {
  if (!fixtures[mode]) {
    const args = ["--azure", "--azure-access-key", KEY, "--azure-access-key", SECONDARY];
    if (mode === "serverless") {
      if (!upstreamServer) {
        upstreamServer = createServer(upstreamHandler);
        await new Promise((res) => upstreamServer.listen(0, "127.0.0.1", res));
      }
      const { port } = upstreamServer.address();
      args.push("--service-mode", "serverless", "--upstream", `http://127.0.0.1:${port}/api/{hub}/{category}/{event}`);
    }
    fixtures[mode] = startFixture(args);
  }
  return fixtures[mode];
}

async function connect(t, { mode, hub, user, transport, protocol, url }) {
  const fx = await fixture(mode);
  const target = url ?? `${fx.url}/api?hub=${hub}&userId=${encodeURIComponent(user)}`;
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(target, { transport: TRANSPORTS[transport] })
    .configureLogging(logLevel);
  if (protocol === "messagepack") builder = builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  t.defer(() => connection.stop());
  await within(10_000, connection.start(), "start()");
  return { fx, connection };
}

// ---------------------------------------------------------------------------------------------

const suite = new Suite();

for (const { transport, protocol } of COMBOS) {
  const label = `${transport}/${protocol}`;

  suite.test(`azure default mode: ${label}: the two-step negotiate reaches the test hub as the token's user`, async (t) => {
    const welcome = deferred();
    const { fx, connection } = await connect(t, { mode: "default", hub: "test", user: "ann", transport, protocol });
    connection.on("Welcome", (id) => welcome.resolve(id));
    eq(await connection.invoke("GetUserId"), "ann", "user id from the service token");
    const query = await connection.invoke("GetQuery");
    eq(query.hub, "test", "connected through /client/?hub=test");
    eq(await connection.invoke("Echo", { nested: [1, "two", null] }), { nested: [1, "two", null] }, "Echo");
    const notice = deferred();
    connection.on("Notice", (text) => notice.resolve(text));
    eq(await restSend(fx, "/api/v1/hubs/test/users/ann", "Notice", [label]), 202, "REST send to the user");
    eq(await within(5_000, notice.promise, "the REST message"), label, "delivered");
  });

  suite.test(`azure serverless: ${label}: invocations go upstream signed and the upstream answers`, async (t) => {
    const { fx, connection } = await connect(t, { mode: "serverless", hub: "Feed", user: "bob", transport, protocol });
    eq(await connection.invoke("Ping", 7), "pong:7", "the upstream's Completion");
    const id = connection.connectionId;
    const connected = await within(5_000, upstreamCall((c) => c.headers["x-asrs-connection-id"] === id && c.headers["x-asrs-event"] === "connected"), "connected event");
    ok(connected.signed, "the connected event is signed with both keys");
    eq(connected.path, "/api/feed/connections/connected", "template filled");
    eq(connected.headers["x-asrs-user-id"], "bob", "user header");
    const news = deferred();
    connection.on("News", (text) => news.resolve(text));
    eq(await restSend(fx, "/api/hubs/feed/:send?api-version=2022-06-01", "News", ["hello"]), 202, "REST broadcast");
    eq(await within(5_000, news.promise, "the broadcast"), "hello", "delivered");
  });
}

suite.test("azure: the service refuses a client without a token (401 at negotiate)", async (t) => {
  const fx = await fixture("default");
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${fx.url}/client/?hub=test`)
    .configureLogging(logLevel)
    .build();
  t.defer(() => connection.stop());
  const error = await rejects(connection.start(), "start() without a token");
  ok(/401|Unauthorized/i.test(String(error?.message ?? error)), `a 401: ${error}`);
});

const filter = process.argv[2] ? new RegExp(process.argv[2]) : undefined;
let result;
try {
  result = await suite.run(filter);
} finally {
  for (const started of Object.values(fixtures)) {
    try {
      await (await started).stop();
    } catch {
      // nothing to stop
    }
  }
  upstreamServer?.close();
  killAllFixtures();
}
const { counts, failures } = result;
if (failures.length) console.log(`\nfailures:\n${failures.map((f) => `  - ${f}`).join("\n")}`);
console.log(`${counts.passed} passed, ${counts.failed} failed`);
process.exit(counts.failed > 0 || result.selected === 0 ? 1 : 0);
