// The app of classic.html and classic-worker.js: code written for the official client's browser
// bundles, using only the global `signalR` they define (and `signalR.protocols.msgpack`), loaded
// as a classic script (a <script> tag, or importScripts() in a worker). No DOM.
//
// runClassicApp(hubUrl) connects to the fixture's test hub over WebSockets with JSON and with
// MessagePack, and over long polling with JSON, and resolves with `[{ name, ok, error }]`.

/** Runs the app against the hub at `hubUrl`; resolves with one result per transport and protocol. */
function runClassicApp(hubUrl) {
  "use strict";

  function assertEq(actual, expected, what) {
    var a = JSON.stringify(actual), e = JSON.stringify(expected);
    if (a !== e) throw new Error(what + ": expected " + e + ", got " + a);
  }

  function randomInt(n) { return Math.floor(Math.random() * n); }

  function withTimeout(promise, ms, what) {
    var timer;
    var late = new Promise(function (_, reject) {
      timer = setTimeout(function () { reject(new Error("timed out after " + ms + " ms: " + what)); }, ms);
    });
    return Promise.race([promise, late]).finally(function () { clearTimeout(timer); });
  }

  function collect(stream) {
    return new Promise(function (resolve, reject) {
      var items = [];
      stream.subscribe({
        next: function (item) { items.push(item); },
        error: reject,
        complete: function () { resolve(items); },
      });
    });
  }

  // One connection: invoke (the fixture's id for it, a sum, an echoed value that tells the
  // protocol apart), a stream, and a handler registered with on(). Every expected value is made
  // here and can only come back from the fixture.
  async function scenario(transport, protocol) {
    var builder = new signalR.HubConnectionBuilder()
      .withUrl(hubUrl, { transport: signalR.HttpTransportType[transport] })
      .configureLogging(signalR.LogLevel.Warning);
    if (protocol === "messagepack") {
      builder = builder.withHubProtocol(new signalR.protocols.msgpack.MessagePackHubProtocol());
    }
    var connection = builder.build();
    await connection.start();
    try {
      assertEq(connection.state, signalR.HubConnectionState.Connected, "state after start()");
      assertEq(await connection.invoke("GetConnectionId"), connection.connectionId, "GetConnectionId");
      var a = randomInt(1e6), b = randomInt(1e6);
      assertEq(await connection.invoke("Add", a, b), a + b, "Add(" + a + ", " + b + ")");
      assertEq(await connection.invoke("GetHeader", "upgrade"), transport === "WebSockets" ? "websocket" : null,
        "the Upgrade header of the request that opened the transport");
      if (protocol === "messagepack") {
        // Binary data is a MessagePack bin and comes back a Uint8Array; JSON would make it an object.
        var bytes = new Uint8Array([randomInt(256), 0, 255, randomInt(256)]);
        var echoed = await connection.invoke("Echo", bytes);
        if (!(echoed instanceof Uint8Array)) throw new Error("Echo(Uint8Array) gave " + Object.prototype.toString.call(echoed));
        assertEq(Array.from(echoed), Array.from(bytes), "Echo(Uint8Array)");
      } else {
        var value = { text: "caf\u00e9 " + randomInt(1e6), list: [1, 2.5, null, true] };
        assertEq(await connection.invoke("Echo", value), value, "Echo(object)");
      }
      var count = 2 + randomInt(6);
      var expected = [];
      for (var i = 0; i < count; i++) expected.push(i);
      assertEq(await collect(connection.stream("Counter", count, 0)), expected, "Counter(" + count + ", 0)");
      var token = "token-" + randomInt(1e9);
      var received = new Promise(function (resolve) { connection.on("Echoed", resolve); });
      await connection.send("EchoToCaller", token);
      assertEq(await withTimeout(received, 5000, "Echoed"), token, "Echoed");
    } finally {
      await connection.stop();
    }
    assertEq(connection.state, signalR.HubConnectionState.Disconnected, "state after stop()");
  }

  async function main() {
    var results = [];
    var combos = [["WebSockets", "json"], ["WebSockets", "messagepack"], ["LongPolling", "json"]];
    for (var i = 0; i < combos.length; i++) {
      var name = combos[i][0] + "/" + combos[i][1] + ": invoke, stream and on() against the fixture";
      try {
        await withTimeout(scenario(combos[i][0], combos[i][1]), 15000, name);
        results.push({ name: name, ok: true });
      } catch (e) {
        results.push({ name: name, ok: false, error: String((e && e.stack) || e) });
      }
    }
    return results;
  }

  return main().catch(function (e) {
    return [{ name: "the app ran", ok: false, error: String((e && e.stack) || e) }];
  });
}
