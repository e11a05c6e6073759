// A classic worker written for the official client: it loads the browser bundle with
// importScripts() (`?bundle=official`: the official signalr.min.js and its MessagePack add-on;
// otherwise the package's browser/talkback-signalr.min.js) and then the app of classic.html
// (classic-app.js). It sits in another folder than the bundle, so the package must find its wasm
// module next to the script importScripts() ran, not next to the worker. Sent the hub's URL, it
// answers `{ results, wasm }`: the app's results and the wasm modules the worker fetched.
"use strict";

if (new URLSearchParams(self.location.search).get("bundle") === "official") {
  importScripts("/official/signalr.min.js", "/official-msgpack/signalr-protocol-msgpack.min.js");
} else {
  importScripts("/pkg/browser/talkback-signalr.min.js");
}
importScripts("/classic-app.js");

self.onmessage = function (event) {
  runClassicApp(event.data.hub).then(function (results) {
    var wasm = performance.getEntriesByType("resource")
      .map(function (entry) { return entry.name; })
      .filter(function (name) { return /\.wasm([?#]|$)/.test(name); });
    self.postMessage({ results: results, wasm: wasm });
  });
};
