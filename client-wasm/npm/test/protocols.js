// MessagePackHubProtocol's parseMessages/writeMessage against the official ones (run by run.mjs
// in the page, with the official client and its MessagePack protocol served at /official/ and
// /official-msgpack/): the same bytes written, the same messages parsed, the same errors.
import * as talkback from "/pkg/index.js";

function assertEq(actual, expected, what) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

function script(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`${src} did not load`));
    document.head.append(s);
  });
}

// The official MessagePackHubProtocol (its browser bundle extends `window.signalR`; in Node.js,
// node.mjs sets `window.signalR.protocols.msgpack` to its Node.js build).
async function loadOfficialMsgPack() {
  if (!window.signalR) await script("/official/signalr.js");
  if (!window.signalR.protocols?.msgpack) await script("/official-msgpack/signalr-protocol-msgpack.js");
  return window.signalR.protocols.msgpack.MessagePackHubProtocol;
}

// A value with what JSON loses kept: key order, undefined, bytes, dates.
function canon(v) {
  if (v === undefined) return "<undefined>";
  if (v instanceof Uint8Array) return { bin: Array.from(v) };
  if (v instanceof Date) return { date: v.toISOString() };
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === "object") return Object.entries(v).map(([k, x]) => [k, canon(x)]);
  return v;
}

const bytes = (buffer) => Array.from(new Uint8Array(buffer));
function concat(buffers) {
  const out = new Uint8Array(buffers.reduce((n, b) => n + b.byteLength, 0));
  let at = 0;
  for (const b of buffers) { out.set(new Uint8Array(b), at); at += b.byteLength; }
  return out.buffer;
}
function outcome(f) {
  try { return { value: canon(f()) }; } catch (e) { return { error: String(e && e.message) }; }
}

const MESSAGES = [
  { type: 1, headers: { a: "b" }, invocationId: "3", target: "Send", arguments: [1, -1, 300, -70000, 2 ** 40, 2.5, "x", null, true, { k: [1, "é✓"] }] },
  { type: 1, target: "Fire", arguments: [], streamIds: ["1", "2"] },
  { type: 4, invocationId: "4", target: "Stream", arguments: ["y".repeat(300)] },
  { type: 2, invocationId: "4", item: new Uint8Array([1, 2, 255]) },
  { type: 3, invocationId: "5", result: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)) },
  { type: 3, invocationId: "6", result: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)) },
  { type: 3, invocationId: "7", error: "boom" },
  { type: 3, invocationId: "8" },
  { type: 5, invocationId: "4" },
  { type: 6 },
  { type: 7, error: "ignored when written" },
  { type: 8, sequenceId: 3 },
  { type: 9, sequenceId: 300 },
];

export async function runProtocols() {
  const results = [];
  async function scenario(name, f) {
    try {
      await f();
      results.push({ name, ok: true });
    } catch (e) {
      results.push({ name, ok: false, error: String((e && e.stack) || e) });
    }
  }
  let Official;
  try { Official = await loadOfficialMsgPack(); } catch (e) {
    results.push({ name: "MessagePackHubProtocol: the official protocol loads", ok: false, error: String(e) });
    return results;
  }
  const ours = new talkback.MessagePackHubProtocol();
  const theirs = new Official();

  await scenario("MessagePackHubProtocol.writeMessage writes the bytes the official one writes, for every message type", async () => {
    for (const m of MESSAGES) {
      const w = ours.writeMessage(m);
      if (!(w instanceof ArrayBuffer)) throw new Error(`type ${m.type}: not an ArrayBuffer`);
      assertEq(bytes(w), bytes(theirs.writeMessage(m)), `type ${m.type}`);
    }
    assertEq(outcome(() => ours.writeMessage({ type: 42 })), { error: "Invalid message type." }, "unknown type");
    assertEq(outcome(() => ours.writeMessage({ type: 42 })), outcome(() => theirs.writeMessage({ type: 42 })), "unknown type as official");
  });

  await scenario("MessagePackHubProtocol.parseMessages gives the messages the official one gives, and logs an unknown type as it does", async () => {
    const frame = (payload) => new Uint8Array([payload.length, ...payload]).buffer;
    const input = concat([
      ...MESSAGES.filter((m) => [1, 2, 3, 6].includes(m.type)).map((m) => theirs.writeMessage(m)),
      frame([0x93, 0x07, 0xa3, 0x62, 0x79, 0x65, 0xc3]), // Close "bye", allowReconnect
      frame([0x92, 0x07, 0xc0]), // Close, no error
      frame([0x92, 0x08, 0x05]), // Ack 5
      frame([0x92, 0x09, 0xcd, 0x01, 0x2c]), // Sequence 300
      frame([0x91, 0x63]), // type 99
    ]);
    const logs = (protocol) => {
      const lines = [];
      const messages = protocol.parseMessages(input, { log: (level, text) => lines.push([level, text]) });
      return { messages: canon(messages), lines };
    };
    const mine = logs(ours);
    assertEq(mine.messages.length, 12, "message count");
    assertEq(mine.lines, [[talkback.LogLevel.Information, "Unknown message type '99' ignored."]], "log lines");
    assertEq(mine, logs(theirs), "as official");
  });

  await scenario("MessagePackHubProtocol.parseMessages fails on bad input with the official errors", async () => {
    const cases = [
      "not an ArrayBuffer",
      new Uint8Array([0x05, 0x93]).buffer, // incomplete
      new Uint8Array([0x80]).buffer, // size cut
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f]).buffer, // over 2 GB
      new Uint8Array([0x00]).buffer, // empty payload
      new Uint8Array([0x01, 0x05]).buffer, // not an array
      new Uint8Array([0x03, 0x92, 0x01, 0x05]).buffer, // Invocation with number headers
      new Uint8Array([0x04, 0x93, 0x01, 0x80, 0xc0]).buffer, // Invocation too short
      new Uint8Array([0x06, 0x94, 0x03, 0x80, 0xa1, 0x31, 0x01]).buffer, // Completion error, no error
      new Uint8Array([0x02, 0x91, 0x07]).buffer, // Close too short
    ];
    const mine = cases.map((c) => outcome(() => ours.parseMessages(c, talkback.NullLogger.instance)));
    assertEq(mine.map((o) => o.error), [
      "Invalid input for MessagePack hub protocol. Expected an ArrayBuffer.", "Incomplete message.", "Cannot read message size.",
      "Messages bigger than 2GB are not supported.", "Invalid payload.", "Invalid payload.", "Invalid headers.",
      "Invalid payload for Invocation message.", "Invalid payload for Completion message.", "Invalid payload for Close message.",
    ], "errors");
    assertEq(mine, cases.map((c) => outcome(() => theirs.parseMessages(c, talkback.NullLogger.instance))), "as official");
  });
  return results;
}
