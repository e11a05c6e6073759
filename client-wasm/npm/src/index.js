// talkback-signalr: the API of @microsoft/signalr over Talkback's WebAssembly engine.
//
// The wasm module (talkback_wasm_bg.wasm, built by scripts/build-npm.sh) exposes one low-level
// `RawConnection` that takes and gives encoded values: JSON text, or MessagePack bytes. The
// classes below give them the names, defaults, conversions and error messages of the official
// client. The package initialises the wasm itself, lazily: importing it does nothing, and the
// first HubConnection built starts fetching and compiling the module, which `start()` (and any
// call made before the module is ready) awaits. No init() call, and no top-level await, so the
// package also goes into classic scripts and workers (Vite's default worker format, esbuild's
// iife).

import init, { RawConnection } from "./talkback_wasm.js";
import { encode as mpEncode, decode as mpDecode } from "./msgpack.js";

// Where this module was loaded from when `import.meta.url` is not there (an iife bundle, such as
// browser/talkback-signalr.js, or a CommonJS bundle for Node.js): in a page, the classic script
// being run; elsewhere (a worker has no `currentScript`), the script a stack trace taken now
// names (the one `importScripts()` is running, the worker's own script when the package is
// bundled into it, the bundle's file in Node.js). Read while the script runs; wasmUrl() falls
// back to the worker's own address.
const scriptUrl = import.meta.url ? undefined : globalThis.document ? globalThis.document.currentScript?.src : runningScriptUrl();

// The URL in the first frame of a stack trace: `at f (https://host/a.js:1:2)` in Chromium,
// `f@https://host/a.js:1:2` in Firefox and Safari; in Node.js, whose CommonJS frames hold paths
// (`at f (/app/dist/a.js:1:2)`), the path's file: URL. Undefined when there is none (an
// `eval`-ed script has no URL of its own).
function runningScriptUrl() {
  try {
    const stack = String(new Error().stack);
    const frame = /((?:https?|blob|file):[^\s()@]+?):\d+:\d+/.exec(stack);
    if (frame) return frame[1];
    const path = nodeVersion() && /(?:\(|at )((?:\/|[A-Za-z]:\\)[^()\n]+?):\d+:\d+\)?$/m.exec(stack);
    return path ? nodeModule("url")?.pathToFileURL(path[1]).href : undefined;
  } catch {
    return undefined;
  }
}

function wasmUrl() {
  // The literal `new URL("...", import.meta.url)` is what bundlers (Vite, webpack, Parcel) look
  // for to emit the module as an asset and rewrite its address.
  if (import.meta.url) return new URL("./talkback_wasm_bg.wasm", import.meta.url);
  const base = scriptUrl || globalThis.location?.href;
  if (!base) throw new Error("talkback-signalr cannot tell where talkback_wasm_bg.wasm is.");
  return new URL("talkback_wasm_bg.wasm", base);
}

// Node.js, told as the official client tells it (Platform.isNode). Read from `globalThis`, so
// that nothing here needs Node.js.
function nodeVersion() {
  const p = globalThis.process;
  return p && p.release && p.release.name === "node" && p.versions ? [String(p.platform || ""), String(p.versions.node || "")] : undefined;
}

// A module of Node.js's own, from `process.getBuiltinModule` (Node.js 20.16 and later), or
// undefined elsewhere. No `import()` of a computed name: bundlers (webpack above all) warn
// about those, and a browser bundle must hold and ask for no Node.js module.
function nodeModule(name) {
  const p = globalThis.process;
  return p && typeof p.getBuiltinModule === "function" ? p.getBuiltinModule(name) : undefined;
}

let wasmReady;
// Fetches and instantiates the wasm module once; a failure is forgotten so a later start()
// tries again (e.g. after the network comes back). Node.js's fetch does not read file: URLs,
// so there (the package loaded from node_modules, or a bundle for Node.js) the bytes are read
// from the file.
function loadWasm() {
  if (!wasmReady) {
    let url;
    wasmReady = Promise.resolve()
      .then(async () => {
        url = wasmUrl();
        let source = url;
        if (url.protocol === "file:") {
          const fs = nodeModule("fs/promises");
          if (!fs) throw new Error("reading it from a file needs Node.js 20.16 or later");
          source = await fs.readFile(url);
        }
        return init({ module_or_path: source });
      })
      .then(() => undefined, (e) => {
        wasmReady = undefined;
        throw new Error(`talkback-signalr could not load its WebAssembly module${url ? ` from ${url}` : ""}: ${e && e.message || e}`);
      });
  }
  return wasmReady;
}

let wsReady;
// The `ws` package's WebSocket in Node.js (what the official client uses there), or undefined
// where it cannot be loaded; asked once. Resolved from this file, so that `ws` is the
// package's own dependency.
function loadWs() {
  if (!wsReady) {
    let ws;
    try {
      const load = nodeVersion() && nodeModule("module")?.createRequire(import.meta.url || scriptUrl);
      const exported = load && load("ws");
      ws = exported && (exported.WebSocket || exported);
    } catch {
      ws = undefined; // not installed: the global WebSocket, if any, as without `ws`
    }
    wsReady = Promise.resolve(ws);
  }
  return wsReady;
}

const NOT_CONNECTED = "Cannot send data if the connection is not in the 'Connected' State.";

export const VERSION = "0.1.0";

export const LogLevel = { Trace: 0, Debug: 1, Information: 2, Warning: 3, Error: 4, Critical: 5, None: 6 };
for (const k of Object.keys(LogLevel)) LogLevel[LogLevel[k]] = k;

export const HttpTransportType = { None: 0, WebSockets: 1, ServerSentEvents: 2, LongPolling: 4 };
for (const k of Object.keys(HttpTransportType)) HttpTransportType[HttpTransportType[k]] = k;

export const TransferFormat = { Text: 1, Binary: 2 };
for (const k of Object.keys(TransferFormat)) TransferFormat[TransferFormat[k]] = k;

export const MessageType = {
  Invocation: 1, StreamItem: 2, Completion: 3, StreamInvocation: 4, CancelInvocation: 5,
  Ping: 6, Close: 7, Ack: 8, Sequence: 9,
};
for (const k of Object.keys(MessageType)) MessageType[MessageType[k]] = k;

export const HubConnectionState = {
  Disconnected: "Disconnected",
  Connecting: "Connecting",
  Connected: "Connected",
  Disconnecting: "Disconnecting",
  Reconnecting: "Reconnecting",
};

// ---- errors (the official classes and messages) ----

export class HttpError extends Error {
  constructor(errorMessage, statusCode) {
    super(`${errorMessage}: Status code '${statusCode}'`);
    this.statusCode = statusCode;
  }
}
export class TimeoutError extends Error {
  constructor(errorMessage = "A timeout occurred.") { super(errorMessage); }
}
export class AbortError extends Error {
  constructor(errorMessage = "An abort occurred.") { super(errorMessage); }
}
export class UnsupportedTransportError extends Error {
  constructor(message, transport) { super(message); this.transport = transport; this.errorType = "UnsupportedTransportError"; }
}
export class DisabledTransportError extends Error {
  constructor(message, transport) { super(message); this.transport = transport; this.errorType = "DisabledTransportError"; }
}
export class FailedToStartTransportError extends Error {
  constructor(message, transport) { super(message); this.transport = transport; this.errorType = "FailedToStartTransportError"; }
}
export class FailedToNegotiateWithServerError extends Error {
  constructor(message) { super(message); this.errorType = "FailedToNegotiateWithServerError"; }
}
export class AggregateErrors extends Error {
  constructor(message, innerErrors) { super(message); this.innerErrors = innerErrors; }
}
// Like the official classes, these keep Error's `name` ("Error"), so `String(e)` reads
// "Error: <message>" for every one of them, as apps and their logs see it from @microsoft/signalr.

// The reason phrases browsers give as `statusText` (HTTP/1.1), for the official negotiate text.
const REASONS = {
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
  408: "Request Timeout", 409: "Conflict", 410: "Gone", 413: "Payload Too Large", 429: "Too Many Requests",
  500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};
const NEGOTIATION_FAILED = "Failed to complete negotiation with the server: ";
const NOT_FOUND_HINT = " Either this is not a SignalR endpoint or there is a proxy blocking the connection.";
const UNABLE_TO_CONNECT = "Unable to connect to the server with any of the available transports.";

// The engine's per-transport outcomes (`[{transport, kind, reason}]`) as the official
// AggregateErrors: innerErrors as the official client fills them ("<T> failed:" then the
// error, for a transport it skipped; a FailedToStartTransportError for one that failed to
// start), and the message that joins them.
function aggregate(transports, noWebSocket) {
  const inner = [];
  for (const { transport: name, kind, reason } of transports) {
    const transport = HttpTransportType[name];
    if (noWebSocket && transport === HttpTransportType.WebSockets && kind === "disabled") {
      // Left out by the package (see HubConnection._build), not by the app.
      inner.push(`${name} failed:`, new UnsupportedTransportError("'WebSockets' is not supported in your environment.", transport));
    } else if (kind === "failed") {
      inner.push(new FailedToStartTransportError(`${name} failed: ${kept(reason) ?? new Error(reason)}`, transport));
    } else {
      inner.push(`${name} failed:`, kind === "disabled" ? new DisabledTransportError(reason, transport) : new Error(reason));
    }
  }
  return new AggregateErrors(`${UNABLE_TO_CONNECT} ${inner.join(" ")}`, inner);
}

// An error from the engine (`{message, kind, ...}`, see client-wasm/src/bindings) as the
// official client's error object. `during` is "start" for the errors of start().
function toError(e, during, noWebSocket) {
  if (e instanceof Error) return e;
  if (e === null || typeof e !== "object") return new Error(String(e));
  const text = e.message;
  // An error a custom HttpClient threw (see httpHook): the object itself, or in a negotiation
  // failure, its text.
  const original = kept(text);
  if (original && !(e.kind === "connect" && (e.negotiate || e.transports?.length))) return original;
  switch (e.kind) {
    case "connect":
      if (original && e.negotiate) {
        if (bare.has(original)) return original;
        const hint = original instanceof HttpError && original.statusCode === 404 ? NOT_FOUND_HINT : "";
        return new FailedToNegotiateWithServerError(`${NEGOTIATION_FAILED}${original}${hint}`);
      }
      if (e.status !== undefined) {
        // A 2xx other than 200: the official client rejects with this bare Error.
        if (e.status >= 200 && e.status < 300) return new Error(`Unexpected status code returned from negotiate '${e.status}'`);
        // Otherwise its HTTP client fails first, with an HttpError whose text is the body, or
        // else the status text.
        const http = new HttpError(e.statusText || REASONS[e.status] || "", e.status);
        return new FailedToNegotiateWithServerError(`${NEGOTIATION_FAILED}${http}${e.status === 404 ? NOT_FOUND_HINT : ""}`);
      }
      if (e.transports && e.transports.length > 0) return aggregate(e.transports, noWebSocket);
      if (e.negotiate) return new FailedToNegotiateWithServerError(text);
      return new Error(text);
    case "transport":
      // A request of the transport answered with an error status: an HttpError, as the
      // official transports' (with the engine's text).
      if (e.status !== undefined) {
        const http = new HttpError(e.statusText, e.status);
        http.message = text;
        return http;
      }
      return new Error(text);
    case "access-token":
      // During start() the token is asked for by the negotiate request.
      return during === "start" ? new FailedToNegotiateWithServerError(text) : new Error(text);
    case "closed":
      // A stop() during start().
      return during === "start" ? new AbortError(text) : new Error(text);
    default:
      return new Error(text);
  }
}

// ---- HTTP (the official HttpClient classes) ----
//
// Without an `httpClient` connection option the engine makes its requests (negotiate, long
// polling, SSE) with `fetch` itself. With one, every request the official client sends through
// its HttpClient goes to that client's `send` (see httpHook); these classes are its public HTTP
// client for apps that pass, subclass or call it.

export class HttpResponse {
  constructor(statusCode, statusText, content) {
    this.statusCode = statusCode;
    this.statusText = statusText;
    this.content = content;
  }
}

export class HttpClient {
  get(url, options) { return this.send({ ...options, method: "GET", url }); }
  post(url, options) { return this.send({ ...options, method: "POST", url }); }
  delete(url, options) { return this.send({ ...options, method: "DELETE", url }); }
  // Browsers keep cookies themselves: there is nothing to add to a request.
  getCookieString(_url) { return ""; }
}

const isArrayBuffer = (v) => v instanceof ArrayBuffer || (v && v.constructor && v.constructor.name === "ArrayBuffer");

function readBody(response, responseType) {
  if (responseType === "arraybuffer") return response.arrayBuffer();
  if (responseType === "blob" || responseType === "document" || responseType === "json") {
    throw new Error(`${responseType} is not supported.`);
  }
  return response.text();
}

// A fetch-based client with the official one's behaviour: `X-Requested-With`, credentials only
// when `withCredentials` is true, `timeout` (TimeoutError), `abortSignal` (AbortError), and an
// HttpError carrying the status code for any status outside 200-299.
export class DefaultHttpClient extends HttpClient {
  constructor(logger) {
    super();
    this._logger = createLogger(logger ?? null);
    // In Node.js, its own cookies, as the official client's (see CookieJar).
    if (nodeVersion()) this._jar = new CookieJar();
  }

  // The cookies it keeps for `url` in Node.js (browsers keep cookies themselves: "").
  getCookieString(url) { return this._jar ? this._jar.header(url) : ""; }

  async send(request) {
    if (request.abortSignal && request.abortSignal.aborted) throw new AbortError();
    if (!request.method) throw new Error("No method defined.");
    if (!request.url) throw new Error("No url defined.");
    const controller = new AbortController();
    let error;
    if (request.abortSignal) {
      request.abortSignal.onabort = () => { controller.abort(); error = new AbortError(); };
    }
    let timer;
    if (request.timeout) {
      timer = setTimeout(() => {
        controller.abort();
        this._logger.log(LogLevel.Warning, "Timeout from HTTP request.");
        error = new TimeoutError();
      }, request.timeout);
    }
    const body = request.content === "" ? undefined : request.content;
    const headers = { "X-Requested-With": "XMLHttpRequest", ...request.headers };
    const cookies = this._jar && this._jar.header(request.url);
    if (cookies) headers.Cookie = joinCookies(headers.Cookie, cookies);
    if (body) headers["Content-Type"] = isArrayBuffer(body) ? "application/octet-stream" : "text/plain;charset=UTF-8";
    let response;
    try {
      response = await globalThis.fetch(request.url, {
        body, cache: "no-cache", credentials: request.withCredentials === true ? "include" : "same-origin",
        headers, method: request.method, mode: "cors", redirect: "follow", signal: controller.signal,
      });
    } catch (e) {
      if (error) throw error;
      this._logger.log(LogLevel.Warning, `Error from HTTP request. ${e}.`);
      throw e;
    } finally {
      clearTimeout(timer);
      if (request.abortSignal) request.abortSignal.onabort = null;
    }
    if (this._jar) this._jar.keep(request.url, response);
    if (!response.ok) {
      const text = await readBody(response, "text");
      throw new HttpError(text || response.statusText, response.status);
    }
    return new HttpResponse(response.status, response.statusText, await readBody(response, request.responseType));
  }
}

// The errors a custom HttpClient threw, by number, while the engine carries their number in its
// error text ("httpClient error #<n>"): toError gives the app the very object thrown, as the
// official client does. The last 32 are kept (an error is looked up soon after it is thrown).
const thrown = new Map();
let thrownCount = 0;
// The errors the official client gives as they are, not wrapped in a negotiation failure.
const bare = new WeakSet();
function keep(error) {
  thrown.set(++thrownCount, error);
  if (thrown.size > 32) thrown.delete(thrown.keys().next().value);
  return `httpClient error #${thrownCount}`;
}
function kept(text) {
  const m = /httpClient error #(\d+)/.exec(text);
  return m ? thrown.get(Number(m[1])) : undefined;
}

const utf8 = new TextDecoder();

// The engine's HTTP hook (client-wasm/src/http.rs, `perform_with`) over a custom HttpClient:
// `(method, url, [name, value, ...], body?, timeout?, signal)` => Promise of `[status, content]`,
// or a rejection `[message, timedOut]`. Each request is the one the official client gives its
// HttpClient (through AccessTokenHttpClient, which adds Authorization, as the engine's headers
// do): negotiate `{ content: "", headers, timeout, withCredentials }`; each long poll `{
// abortSignal, headers, timeout: 100000, withCredentials, responseType? }` (arraybuffer for a
// binary protocol); each send of long polling and SSE `{ content, headers, responseType,
// timeout, withCredentials }`; the long polling DELETE `{ headers, timeout, withCredentials }`.
// Outcomes as the official transports read them: a poll's TimeoutError polls again, any other
// throw ends the connection with that error; a send that throws fails its calls with that
// error and the connection goes on, a send's response status is not looked at (but a 401 is
// retried with a new token); a negotiate answered with another status than 200 fails start().
function httpHook(client, options, binary) {
  const own = (name) => Object.keys(options.headers || {}).some((k) => k.toLowerCase() === name);
  const withCredentials = options.withCredentials ?? true;
  const retries401 = (status) => status === 401 && !!options.accessTokenFactory;
  return async (method, url, list, body, timeout, signal) => {
    const headers = {};
    for (let i = 0; i < list.length; i += 2) {
      const lower = list[i].toLowerCase();
      // The official client leaves these to its HttpClient (the default one adds them).
      if ((lower === "x-requested-with" || lower === "content-type") && !own(lower)) continue;
      headers[list[i]] = list[i + 1];
    }
    let request, response;
    if (method === "GET") {
      request = { abortSignal: signal, headers, timeout, withCredentials };
      if (binary) request.responseType = "arraybuffer";
    } else if (method === "DELETE") {
      request = { headers, timeout, withCredentials };
    } else if (body) {
      const content = binary ? body.buffer : utf8.decode(body);
      request = { content, headers, responseType: binary ? "arraybuffer" : "text", timeout, withCredentials };
    } else {
      request = { content: "", headers, timeout, withCredentials };
    }
    request.method = method;
    request.url = url;
    try {
      response = await client.send(request);
    } catch (e) {
      if (method === "POST" && body) return [0, keep(e)];
      throw [keep(e), method === "GET" && e instanceof TimeoutError];
    }
    const status = response.statusCode;
    if (method === "POST" && body) return [retries401(status) ? 401 : 200, ""];
    if (method === "POST" && status !== 200) {
      const e = new Error(`Unexpected status code returned from negotiate '${status}'`);
      bare.add(e);
      throw [keep(e), false];
    }
    if (method === "GET" && status !== 200 && status !== 204 && !retries401(status)) {
      throw [keep(new HttpError(response.statusText || "", status)), false];
    }
    const c = response.content;
    return [status, typeof c === "string" ? c : c instanceof ArrayBuffer ? new Uint8Array(c)
      : ArrayBuffer.isView(c) ? new Uint8Array(c.buffer, c.byteOffset, c.byteLength) : ""];
  };
}

// ---- cookies (Node.js) ----
//
// Node.js's fetch keeps no cookies. The official client keeps them there, one jar per
// connection (its fetch wrapped with fetch-cookie over a tough-cookie jar), and sends them with
// every request, on the WebSocket upgrade and on the SSE request: what sticky sessions behind a
// load balancer need. This jar does the same for what such servers set: host-only and Domain
// cookies, Path, Max-Age and Expires, Secure. Bounded: at most 50 cookies of at most 4096
// bytes each (the oldest goes first).
const MAX_COOKIES = 50;

const domainMatch = (host, domain) => host === domain || (host.endsWith(`.${domain}`) && !/^[\d.]+$|:/.test(host));
const pathMatch = (path, cookiePath) => path === cookiePath ||
  (path.startsWith(cookiePath) && (cookiePath.endsWith("/") || path[cookiePath.length] === "/"));

// A Cookie header of the request's own cookies (if any) and the jar's.
const joinCookies = (own, cookies) => (own ? `${own}; ${cookies}` : cookies);

class CookieJar {
  constructor() { this._cookies = []; }

  // Keeps the cookies a fetch `response` of `url` sets.
  keep(url, response) {
    if (response.headers.getSetCookie) this.store(url, response.headers.getSetCookie());
  }

  // Keeps the cookies of a response of `url` (its Set-Cookie values).
  store(url, setCookies) {
    const u = new URL(url);
    const host = u.hostname.toLowerCase();
    for (const line of setCookies) {
      const [pair, ...attributes] = line.split(";");
      const eq = pair.indexOf("=");
      if (line.length > 4096 || eq < 1) continue;
      const at = u.pathname.lastIndexOf("/");
      const c = { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), domain: host, hostOnly: true,
        path: at > 0 ? u.pathname.slice(0, at) : "/", secure: false, expires: Infinity };
      let maxAge, refused = false;
      for (const attribute of attributes) {
        const i = attribute.indexOf("=");
        const key = (i < 0 ? attribute : attribute.slice(0, i)).trim().toLowerCase();
        const value = i < 0 ? "" : attribute.slice(i + 1).trim();
        if (key === "domain" && value) {
          c.domain = value.replace(/^\./, "").toLowerCase();
          c.hostOnly = false;
          refused = !domainMatch(host, c.domain);
        } else if (key === "path" && value.startsWith("/")) c.path = value;
        else if (key === "max-age" && /^-?\d+$/.test(value)) maxAge = Number(value);
        else if (key === "expires" && !Number.isNaN(Date.parse(value))) c.expires = Date.parse(value);
        else if (key === "secure") c.secure = true;
      }
      if (refused) continue;
      if (maxAge !== undefined) c.expires = Date.now() + maxAge * 1000;
      this._cookies = this._cookies.filter((o) => o.name !== c.name || o.domain !== c.domain || o.path !== c.path);
      if (c.expires > Date.now()) this._cookies.push(c);
      if (this._cookies.length > MAX_COOKIES) this._cookies.shift();
    }
  }

  // The Cookie header for a request to `url` ("" when none).
  header(url) {
    const u = new URL(url);
    const host = u.hostname.toLowerCase();
    const secure = u.protocol === "https:" || u.protocol === "wss:";
    const now = Date.now();
    return this._cookies
      .filter((c) => c.expires > now && (c.hostOnly ? host === c.domain : domainMatch(host, c.domain))
        && pathMatch(u.pathname, c.path) && (secure || !c.secure))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }
}

// `fetch` with cookies, for the engine's requests in Node.js (client-wasm/src/http.rs,
// `perform_using`, which gives `init.headers` as a Headers object): those of `jar`, which
// keeps what the responses set; or, with a custom httpClient (whose requests do not come here
// but for the SSE stream), its getCookieString answer, as the official client gives it to
// its EventSource.
function cookieFetch(jar, client) {
  return async (url, init) => {
    let cookies = "";
    try { cookies = jar ? jar.header(url) : client.getCookieString(url); } catch { /* as no cookies */ }
    if (cookies) init.headers.set("Cookie", joinCookies(init.headers.get("cookie"), cookies));
    const response = await globalThis.fetch(url, init);
    if (jar) jar.keep(url, response);
    return response;
  };
}

// ---- WebSockets ----

// The WebSocket constructor of a connection, as the official client picks it: the `WebSocket`
// connection option in every environment; else in Node.js the `ws` package (loaded by
// `_ensure`), else the global `WebSocket` (a browser's; Node.js 22's). `undefined` when there
// is none: the connection then skips WebSockets as not supported in this environment.
function webSocketClass(options, node, ws) {
  return options.WebSocket || (node && ws) || globalThis.WebSocket;
}

// The engine's WebSocket factory (client-wasm/src/websocket.rs, `open_with`): `(url, [name,
// value, ...])` => a socket. Outside Node.js the socket gets the URL only (browsers cannot set
// headers; the engine puts the access token in the query); without the `WebSocket` option the
// global `WebSocket` is looked up for each socket, so a wrapper installed later is used. In
// Node.js, as the official client gives `ws` its options: `new WebSocket(url, undefined, {
// headers })` with the engine's headers (the user agent, `Authorization`, the user's headers)
// and the cookies (of a custom httpClient, else of the connection's jar). A custom httpClient
// is asked getCookieString for every socket, as the official client asks it.
function webSocketFactory(options, node, ws, jar) {
  const client = options.httpClient;
  return (url, list) => {
    let cookies = "";
    if (client) {
      try { cookies = client.getCookieString(url.replace(/[?&]access_token=[^&]*$/, "")); } catch { /* as no cookies */ }
    } else if (jar) {
      cookies = jar.header(url);
    }
    const Socket = webSocketClass(options, node, ws);
    if (!node) return new Socket(url);
    const headers = {};
    if (cookies) headers.Cookie = cookies;
    for (let i = 0; i < list.length; i += 2) headers[list[i]] = list[i + 1];
    if (Socket === globalThis.WebSocket && !options.WebSocket) {
      // Node.js 22's own WebSocket (no `ws`) takes no headers: the token goes in the query, as
      // in a browser.
      const token = /^Bearer (.+)$/.exec(headers.Authorization || "");
      if (token) url += `${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token[1])}`;
      return new Socket(url);
    }
    return new Socket(url, undefined, { headers });
  };
}

// ---- logging ----

export class NullLogger {
  log() {}
}
NullLogger.instance = new NullLogger();

class ConsoleLogger {
  constructor(minLevel) { this._minLevel = minLevel; }
  log(level, message) {
    if (level < this._minLevel) return;
    const text = `[${new Date().toISOString()}] ${LogLevel[level]}: ${message}`;
    if (level >= LogLevel.Error) console.error(text);
    else if (level === LogLevel.Warning) console.warn(text);
    else if (level === LogLevel.Information) console.info(text);
    else console.log(text);
  }
}

// The logger of a connection option (`logger`): an ILogger, a LogLevel, null (no logging) or
// undefined (the console, from Information).
function createLogger(logger) {
  if (logger === undefined) return new ConsoleLogger(LogLevel.Information);
  if (logger === null) return NullLogger.instance;
  if (logger.log !== undefined) return logger;
  return new ConsoleLogger(logger);
}

const LEVELS = {
  trace: LogLevel.Trace, debug: LogLevel.Debug, info: LogLevel.Information, information: LogLevel.Information,
  warn: LogLevel.Warning, warning: LogLevel.Warning, error: LogLevel.Error, critical: LogLevel.Critical, none: LogLevel.None,
};

// ---- protocols ----

const RS = "\x1e";

// What each message type of the JSON protocol must carry (the official checks and texts).
function checkJsonMessage(m) {
  const text = (v) => typeof v === "string" && v !== "";
  const fail = (what) => { throw new Error(`Invalid payload for ${what} message.`); };
  switch (m.type) {
    case MessageType.Invocation:
      if (!text(m.target) || (m.invocationId !== undefined && !text(m.invocationId))) fail("Invocation");
      return true;
    case MessageType.StreamItem:
      if (!text(m.invocationId) || m.item === undefined) fail("StreamItem");
      return true;
    case MessageType.Completion:
      if ((m.result && m.error) || (!m.result && m.error && !text(m.error)) || !text(m.invocationId)) fail("Completion");
      return true;
    case MessageType.Ping:
    case MessageType.Close:
      return true;
    case MessageType.Ack:
    case MessageType.Sequence:
      if (typeof m.sequenceId !== "number") throw new Error(`Invalid SequenceId for ${MessageType[m.type]} message.`);
      return true;
    default:
      return false;
  }
}

export class JsonHubProtocol {
  constructor() { this.name = "json"; this.version = 2; this.transferFormat = TransferFormat.Text; }

  // The official protocol object's methods, for apps that frame messages themselves (the
  // connection's own messages are framed by the engine).
  parseMessages(input, logger) {
    if (typeof input !== "string") throw new Error("Invalid input for JSON hub protocol. Expected a string.");
    if (!input) return [];
    if (!logger) logger = NullLogger.instance;
    if (input[input.length - 1] !== RS) throw new Error("Message is incomplete.");
    const out = [];
    for (const record of input.split(RS).slice(0, -1)) {
      const m = JSON.parse(record);
      if (typeof m.type !== "number") throw new Error("Invalid payload.");
      if (checkJsonMessage(m)) out.push(m);
      else logger.log(LogLevel.Information, `Unknown message type '${m.type}' ignored.`);
    }
    return out;
  }

  writeMessage(message) { return `${JSON.stringify(message)}${RS}`; }
}

// The MessagePack hub protocol's framing: each message is prefixed by its length, a varint of
// at most 5 bytes (7 bits each, low bits first).
function splitBinary(input) {
  const bytes = new Uint8Array(input);
  const out = [];
  for (let at = 0; at < bytes.length;) {
    let size = 0, n = 0, b;
    do {
      b = bytes[at + n];
      size += (b & 0x7f) * 2 ** (7 * n);
      n++;
    } while (n < Math.min(5, bytes.length - at) && b & 0x80);
    if (b & 0x80 && n < 5) throw new Error("Cannot read message size.");
    if (n === 5 && b > 7) throw new Error("Messages bigger than 2GB are not supported.");
    if (at + n + size > bytes.length) throw new Error("Incomplete message.");
    out.push(bytes.slice(at + n, at + n + size));
    at += n + size;
  }
  return out;
}

function frameBinary(fields) {
  const payload = mpEncode(fields);
  const prefix = [];
  let size = payload.length;
  do {
    prefix.push((size & 0x7f) | (size > 0x7f ? 0x80 : 0));
    size >>>= 7;
  } while (size > 0);
  const out = new Uint8Array(prefix.length + payload.length);
  out.set(prefix);
  out.set(payload, prefix.length);
  return out.buffer;
}

// One MessagePack hub message as the official protocol object gives it (the same fields, in
// the same order), or null for an unknown type.
function parseBinary(payload, logger) {
  if (payload.length === 0) throw new Error("Invalid payload.");
  const p = mpDecode(payload);
  if (!Array.isArray(p) || p.length === 0) throw new Error("Invalid payload.");
  const type = p[0];
  const headers = () => {
    if (typeof p[1] !== "object") throw new Error("Invalid headers.");
    return p[1];
  };
  const least = (n, what) => { if (p.length < n) throw new Error(`Invalid payload for ${what} message.`); };
  switch (type) {
    case MessageType.Invocation: {
      const h = headers();
      least(5, "Invocation");
      return p[2]
        ? { arguments: p[4], headers: h, invocationId: p[2], streamIds: [], target: p[3], type }
        : { arguments: p[4], headers: h, streamIds: [], target: p[3], type };
    }
    case MessageType.StreamItem: {
      const h = headers();
      least(4, "StreamItem");
      return { headers: h, invocationId: p[2], item: p[3], type };
    }
    case MessageType.Completion: {
      const h = headers();
      least(4, "Completion");
      if (p[3] !== 2) least(5, "Completion");
      return { error: p[3] === 1 ? p[4] : undefined, headers: h, invocationId: p[2], result: p[3] === 3 ? p[4] : undefined, type };
    }
    case MessageType.Ping:
      return { type };
    case MessageType.Close:
      least(2, "Close");
      return { allowReconnect: p.length >= 3 ? p[2] : undefined, error: p[1], type };
    case MessageType.Ack:
    case MessageType.Sequence:
      return { sequenceId: p[1], type };
    default:
      logger.log(LogLevel.Information, `Unknown message type '${type}' ignored.`);
      return null;
  }
}

export class MessagePackHubProtocol {
  constructor() { this.name = "messagepack"; this.version = 2; this.transferFormat = TransferFormat.Binary; }

  // The official protocol object's methods (the connection's own messages are framed by the
  // engine), with the official client's value mapping (msgpack.js).
  parseMessages(input, logger) {
    if (!isArrayBuffer(input)) throw new Error("Invalid input for MessagePack hub protocol. Expected an ArrayBuffer.");
    logger = logger || NullLogger.instance;
    const out = [];
    for (const payload of splitBinary(input)) {
      const m = parseBinary(payload, logger);
      if (m) out.push(m);
    }
    return out;
  }

  writeMessage(m) {
    const h = m.headers || {};
    switch (m.type) {
      case MessageType.Invocation:
      case MessageType.StreamInvocation: {
        const id = m.type === MessageType.Invocation ? m.invocationId || null : m.invocationId;
        const fields = [m.type, h, id, m.target, m.arguments];
        if (m.streamIds) fields.push(m.streamIds);
        return frameBinary(fields);
      }
      case MessageType.StreamItem:
        return frameBinary([m.type, h, m.invocationId, m.item]);
      case MessageType.Completion: {
        const kind = m.error ? 1 : m.result !== undefined ? 3 : 2;
        const fields = [m.type, h, m.invocationId, kind];
        if (kind !== 2) fields.push(kind === 1 ? m.error : m.result);
        return frameBinary(fields);
      }
      case MessageType.Ping:
        return frameBinary([m.type]);
      case MessageType.CancelInvocation:
        return frameBinary([m.type, h, m.invocationId]);
      case MessageType.Close:
        return frameBinary([m.type, null]);
      case MessageType.Ack:
      case MessageType.Sequence:
        return frameBinary([m.type, m.sequenceId]);
      default:
        throw new Error("Invalid message type.");
    }
  }
}

const CODECS = {
  json: {
    enc: (v) => { const s = JSON.stringify(v); return s === undefined ? "null" : s; },
    dec: (t) => JSON.parse(t),
    args: (t) => JSON.parse(t),
  },
  messagepack: {
    enc: mpEncode,
    dec: mpDecode,
    args: (list) => list.map(mpDecode),
  },
};

// ---- reconnect ----

const DEFAULT_RETRY_DELAYS = [0, 2000, 10000, 30000, null];

class DefaultReconnectPolicy {
  constructor(retryDelays) { this._retryDelays = retryDelays !== undefined ? [...retryDelays, null] : DEFAULT_RETRY_DELAYS; }
  nextRetryDelayInMilliseconds(retryContext) { return this._retryDelays[retryContext.previousRetryCount]; }
}

// ---- streams ----

class SubjectSubscription {
  constructor(subject, observer) { this._subject = subject; this._observer = observer; }
  dispose() {
    const i = this._subject.observers.indexOf(this._observer);
    if (i > -1) this._subject.observers.splice(i, 1);
    if (this._subject.observers.length === 0 && this._subject.cancelCallback) {
      Promise.resolve().then(this._subject.cancelCallback).catch(() => {});
    }
  }
}

export class Subject {
  constructor() { this.observers = []; }
  next(item) { for (const o of this.observers) o.next(item); }
  error(err) { for (const o of this.observers) if (o.error) o.error(err); }
  complete() { for (const o of this.observers) if (o.complete) o.complete(); }
  subscribe(observer) { this.observers.push(observer); return new SubjectSubscription(this, observer); }
}

const isObservable = (arg) => arg && arg.subscribe && typeof arg.subscribe === "function";

// ---- connection ----

function resolveUrl(url) {
  if (/^(https?|wss?):/i.test(url)) return url;
  const base = globalThis.document?.baseURI ?? globalThis.location?.href;
  if (!base) throw new Error(`Cannot resolve '${url}'.`);
  return new URL(url, base).href;
}

export class HubConnection {
  /** @internal Use HubConnectionBuilder. */
  constructor(url, options, protocol, logger, reconnectPolicy, serverTimeout, keepAlive, stateful) {
    // As in the official client: the hub's messages go to the builder's logger (none without
    // configureLogging), the connection's (HTTP, transport) to the `logger` option, which
    // defaults to the builder's logger and then to the console from Information.
    this._logger = logger || NullLogger.instance;
    this._httpLogger = createLogger(options.logger);
    this._protocol = protocol;
    this._codec = CODECS[protocol.name];
    this._methods = {};
    this._closedCallbacks = [];
    this._reconnectingCallbacks = [];
    this._reconnectedCallbacks = [];
    // As the official client in a page: a URL that is not http(s) is resolved against the
    // document when the connection is built, and `baseUrl` reads back the result. (Elsewhere,
    // a worker say, it is resolved against the script's location at start().)
    this._url = url;
    // In Node.js there is nothing to resolve against: the official client's error, at build().
    if (!/^https?:\/\//.test(url) && nodeVersion()) throw new Error(`Cannot resolve '${url}'.`);
    if (!/^https?:\/\//.test(url) && globalThis.document?.baseURI) {
      this._url = new URL(url, globalThis.document.baseURI).href;
      this._httpLogger.log(LogLevel.Information, `Normalizing '${url}' to '${this._url}'.`);
    }
    this.serverTimeoutInMilliseconds = serverTimeout ?? 30000;
    this.keepAliveIntervalInMilliseconds = keepAlive ?? 15000;
    this._httpOptions = options;
    this._options = {
      protocol: protocol.name,
      // HttpTransportType.None (0) means "any", as in the official client.
      transport: options.transport || undefined,
      skipNegotiation: options.skipNegotiation,
      withCredentials: options.withCredentials ?? true,
      timeout: options.timeout,
      headers: options.headers,
      accessTokenFactory: options.accessTokenFactory,
      serverTimeout: this.serverTimeoutInMilliseconds,
      keepAliveInterval: this.keepAliveIntervalInMilliseconds,
      statefulReconnect: stateful,
      reconnect: reconnectPolicy && ((previousRetryCount, elapsedMilliseconds, reason) => {
        let d;
        try {
          d = reconnectPolicy.nextRetryDelayInMilliseconds({ previousRetryCount, elapsedMilliseconds, retryReason: toError(reason) });
        } catch (e) {
          this._logger.log(LogLevel.Error, `IRetryPolicy.nextRetryDelayInMilliseconds(${previousRetryCount}, ${elapsedMilliseconds}) threw error '${e}'.`);
          return null;
        }
        if (d === null || d === undefined) {
          this._logger.log(LogLevel.Information, `Reconnect retries have been exhausted after ${elapsedMilliseconds} ms and ${previousRetryCount} failed attempts. Connection disconnecting.`);
          return null;
        }
        this._logger.log(LogLevel.Information, `Reconnect attempt number ${previousRetryCount + 1} will start in ${d} ms.`);
        return d;
      }),
      http: options.httpClient && httpHook(options.httpClient, options, protocol.name === "messagepack"),
      events: (kind, value) => this._event(kind, value),
      dispatch: (name, args) => this._dispatch(name, args),
    };
    // The engine's connection exists once the wasm module is ready (see loadWasm).
    this._raw = undefined;
    this._starting = false;
    this._ensure().catch(() => {}); // start() reports a failure (and tries again)
  }

  // Makes the engine's connection once the wasm module (and in Node.js the `ws` package) is
  // ready.
  async _ensure() {
    if (this._raw) return;
    const [, ws] = await Promise.all([loadWasm(), loadWs()]);
    this._ws = ws;
    if (!this._raw) this._raw = this._build();
  }

  // Runs `f` (a call on the engine's connection); resolves or rejects with what it returns or
  // throws. Before the engine's connection exists, the connection cannot be connected (start()
  // waits for it), so the call fails as the official client's does on a connection not started.
  _call(f) {
    if (!this._raw) return Promise.reject(new Error(NOT_CONNECTED));
    try { return Promise.resolve(f()); } catch (e) { return Promise.reject(e); }
  }

  _build() {
    // The timeouts are read when the engine's connection is made: setting them on a
    // disconnected connection makes a new one at the next start() (see start()).
    this._options.serverTimeout = this.serverTimeoutInMilliseconds;
    this._options.keepAliveInterval = this.keepAliveIntervalInMilliseconds;
    // The environment and the WebSocket constructor, looked up when the engine's connection is
    // made (see webSocketClass). With none, WebSockets is left out of the transports, so the
    // engine falls back to the others as the official client does (and its errors say "not
    // supported in your environment").
    const options = this._httpOptions;
    const node = nodeVersion();
    this._options.node = node;
    // In Node.js, cookies: the connection's own (see CookieJar), or a custom httpClient's.
    if (node && !options.httpClient && !this._jar) this._jar = new CookieJar();
    this._options.fetch = node ? cookieFetch(this._jar, options.httpClient) : undefined;
    this._options.webSocket = webSocketFactory(options, node, this._ws, this._jar);
    this._noWebSocket = !webSocketClass(options, node, this._ws);
    this._transports = options.transport || (HttpTransportType.WebSockets | HttpTransportType.ServerSentEvents | HttpTransportType.LongPolling);
    const others = this._transports & ~HttpTransportType.WebSockets;
    this._options.transport = this._noWebSocket && others ? others : options.transport || undefined;
    let raw;
    try {
      raw = new RawConnection(resolveUrl(this._url), this._options);
    } catch (e) {
      throw toError(e);
    }
    for (const name of Object.keys(this._methods)) raw.register(name);
    return raw;
  }

  get state() {
    if (this._raw) return this._raw.state;
    return this._starting ? HubConnectionState.Connecting : HubConnectionState.Disconnected;
  }

  get connectionId() { return this._raw?.connectionId ?? null; }

  get baseUrl() { return this._url || ""; }

  set baseUrl(url) {
    if (this.state !== HubConnectionState.Disconnected && this.state !== HubConnectionState.Reconnecting) {
      throw new Error("The HubConnection must be in the Disconnected or Reconnecting state to change the url.");
    }
    if (!url) throw new Error("The HubConnection url must be a valid url.");
    this._url = url;
    if (this._raw && this.state === HubConnectionState.Disconnected) this._rebuild();
  }

  _rebuild() {
    const old = this._raw;
    this._raw = this._build();
    old.free();
  }

  async start() {
    if (this.state !== HubConnectionState.Disconnected) {
      throw new Error("Cannot start a HubConnection that is not in the 'Disconnected' state.");
    }
    this._logger.log(LogLevel.Debug, "Starting HubConnection.");
    try {
      await this._start();
    } catch (e) {
      this._httpLogger.log(LogLevel.Error, `Failed to start the connection: ${e}`);
      this._logger.log(LogLevel.Debug, `HubConnection failed to start successfully because of error '${e}'.`);
      throw e;
    }
    this._logger.log(LogLevel.Information, `Using HubProtocol '${this._protocol.name}'.`);
    this._logger.log(LogLevel.Debug, "HubConnection connected successfully.");
  }

  async _start() {
    if (!this._raw) {
      // Connecting while the module loads, as the official client is while it negotiates.
      if (this._starting) throw new Error("Cannot start a HubConnection that is not in the 'Disconnected' state.");
      this._starting = true;
      try { await this._ensure(); } finally { this._starting = false; }
    } else if (this._raw.state === HubConnectionState.Disconnected &&
      (this._options.serverTimeout !== this.serverTimeoutInMilliseconds ||
        this._options.keepAliveInterval !== this.keepAliveIntervalInMilliseconds)) {
      this._rebuild();
    }
    if (this._noWebSocket && !(this._transports & ~HttpTransportType.WebSockets)) {
      // WebSockets only, and no WebSocket: the official client's errors.
      if (this._options.skipNegotiation) throw new Error("'WebSocket' is not supported in your environment.");
      throw aggregate(["WebSockets", "ServerSentEvents", "LongPolling"].map((transport) =>
        ({ transport, kind: "disabled", reason: `'${transport}' is disabled by the client.` })), true);
    }
    await this._raw.start().catch((e) => { throw toError(e, "start", this._noWebSocket); });
  }

  async stop() {
    if (this.state === HubConnectionState.Disconnected) {
      this._logger.log(LogLevel.Debug, "Call to HubConnection.stop(undefined) ignored because it is already in the disconnected state.");
    } else {
      this._logger.log(LogLevel.Debug, "Stopping HubConnection.");
    }
    // Before the engine's connection exists nothing can have started. A stop() made while
    // start() waits for the module runs right after that start() begins, so it aborts it as a
    // stop() during negotiation does.
    if (!this._raw) {
      if (!this._starting) return;
      try { await this._ensure(); } catch { return; }
    }
    await this._raw.stop().catch((e) => { throw toError(e); });
  }

  // Splits the arguments into encoded values and upload streams (each Subject or other
  // observable, in order), as the official client does.
  _args(args) {
    const values = [];
    const sources = [];
    for (const a of args) {
      if (isObservable(a)) sources.push(a);
      else values.push(this._codec.enc(a));
    }
    const uploads = sources.map(() => this._raw.newUpload());
    return [values, uploads, sources];
  }

  _ids(uploads) {
    return uploads.length > 0 ? uploads.map((u) => u.id) : undefined;
  }

  _pump(uploads, sources) {
    sources.forEach((source, i) => {
      const upload = uploads[i];
      source.subscribe({
        next: (item) => { try { upload.next(this._codec.enc(item)); } catch (e) { this._logger.log(LogLevel.Error, `${e}`); } },
        // The official client ends the upload with this text as the completion's error.
        error: (err) => {
          const text = err instanceof Error ? err.message : err && err.toString ? err.toString() : "Unknown error";
          upload.error(text);
        },
        complete: () => upload.complete(),
      });
    });
  }

  invoke(methodName, ...args) {
    return this._call(() => {
      const [values, uploads, sources] = this._args(args);
      const p = this._raw.invoke(methodName, values, this._ids(uploads));
      this._pump(uploads, sources);
      return p;
    }).then((r) => (r === undefined ? undefined : this._codec.dec(r)), (e) => { throw toError(e); });
  }

  send(methodName, ...args) {
    return this._call(() => {
      const [values, uploads, sources] = this._args(args);
      const p = this._raw.send(methodName, values, this._ids(uploads));
      this._pump(uploads, sources);
      return p;
    }).then(() => undefined, (e) => { throw toError(e); });
  }

  stream(methodName, ...args) {
    const subject = new Subject();
    let handle, disposed = false;
    this._call(() => {
      if (disposed) return;
      const [values, uploads, sources] = this._args(args);
      handle = this._raw.stream(methodName, values, this._ids(uploads),
        (item) => subject.next(this._codec.dec(item)),
        (error) => (error === undefined ? subject.complete() : subject.error(toError(error))));
      this._pump(uploads, sources);
    }).catch((e) => subject.error(toError(e)));
    subject.cancelCallback = () => {
      disposed = true;
      if (handle) { handle.cancel(); handle.free(); handle = undefined; }
      return Promise.resolve();
    };
    return subject;
  }

  on(methodName, newMethod) {
    if (!methodName || !newMethod) return;
    methodName = methodName.toLowerCase();
    const list = this._methods[methodName];
    if (!list) {
      this._methods[methodName] = [newMethod];
      this._raw?.register(methodName);
    } else if (!list.includes(newMethod)) list.push(newMethod);
  }

  off(methodName, method) {
    if (!methodName) return;
    methodName = methodName.toLowerCase();
    const list = this._methods[methodName];
    if (!list) return;
    if (method) {
      const i = list.indexOf(method);
      if (i !== -1) {
        list.splice(i, 1);
        if (list.length === 0) { delete this._methods[methodName]; this._raw?.unregister(methodName); }
      }
    } else {
      delete this._methods[methodName];
      this._raw?.unregister(methodName);
    }
  }

  onclose(callback) { if (callback) this._closedCallbacks.push(callback); }
  onreconnecting(callback) { if (callback) this._reconnectingCallbacks.push(callback); }
  onreconnected(callback) { if (callback) this._reconnectedCallbacks.push(callback); }

  _event(kind, value) {
    let callbacks, arg, what;
    if (kind === "unhandled") {
      // A server invocation with no handler (the engine answers one that awaits a result with
      // "Client didn't provide a result.").
      const [target, invocationId] = value;
      const name = target.toLowerCase();
      this._logger.log(LogLevel.Warning, `No client method with the name '${name}' found.`);
      if (invocationId) this._logger.log(LogLevel.Warning, `No result given for '${name}' method and invocation ID '${invocationId}'.`);
      return;
    }
    if (kind === "close") {
      callbacks = this._closedCallbacks;
      arg = value === undefined ? undefined : toError(value);
      if (arg) this._httpLogger.log(LogLevel.Error, `Connection disconnected with error '${arg}'.`);
      else this._httpLogger.log(LogLevel.Information, "Connection disconnected.");
      what = `An onclose callback called with error '${arg}'`;
    } else if (kind === "reconnecting") {
      callbacks = this._reconnectingCallbacks;
      arg = toError(value);
      this._logger.log(LogLevel.Information, `Connection reconnecting because of error '${arg}'.`);
      what = `An onreconnecting callback called with error '${arg}'`;
    } else {
      callbacks = this._reconnectedCallbacks;
      arg = value;
      this._logger.log(LogLevel.Information, "HubConnection reconnected successfully.");
      what = `An onreconnected callback called with connectionId '${arg};`;
    }
    for (const c of callbacks.slice()) {
      try { c.call(this, arg); } catch (e) {
        this._logger.log(LogLevel.Error, `${what} threw error '${e}'.`);
      }
    }
  }

  // Runs the handlers of one server invocation; resolves with the encoded result, or rejects
  // with the error text for the server (the engine sends it only when a result is expected).
  async _dispatch(name, encodedArgs) {
    const methods = (this._methods[name.toLowerCase()] || []).slice();
    const args = this._codec.args(encodedArgs);
    let res, exception, multiple = false;
    for (const m of methods) {
      try {
        const prev = res;
        res = await m.apply(this, args);
        if (res && prev) multiple = true;
        exception = undefined;
      } catch (e) {
        exception = e;
        this._logger.log(LogLevel.Error, `A callback for the method '${name}' threw error '${e}'.`);
      }
    }
    if (multiple) {
      this._logger.log(LogLevel.Error, `Multiple results provided for '${name}'. Sending error to server.`);
      throw "Client provided multiple results.";
    }
    if (exception) throw `${exception}`;
    if (res === undefined) throw "Client didn't provide a result.";
    return this._codec.enc(res);
  }
}

// ---- builder ----

export class HubConnectionBuilder {
  withHubProtocol(protocol) {
    if (!protocol) throw new Error("The 'protocol' argument is required.");
    this.protocol = protocol;
    return this;
  }

  configureLogging(logging) {
    if (!logging) throw new Error("The 'logging' argument is required.");
    if (logging.log !== undefined) this.logger = logging;
    else if (typeof logging === "string") {
      const level = LEVELS[logging.toLowerCase()];
      if (level === undefined) throw new Error(`Unknown log level: ${logging}`);
      this.logger = new ConsoleLogger(level);
    } else this.logger = new ConsoleLogger(logging);
    return this;
  }

  withUrl(url, transportTypeOrOptions) {
    if (url === null || url === undefined) throw new Error("The 'url' argument is required.");
    if (!url) throw new Error("The 'url' argument should not be empty.");
    this.url = url;
    if (typeof transportTypeOrOptions === "object") {
      this.httpConnectionOptions = { ...this.httpConnectionOptions, ...transportTypeOrOptions };
    } else {
      this.httpConnectionOptions = { ...this.httpConnectionOptions, transport: transportTypeOrOptions };
    }
    return this;
  }

  withAutomaticReconnect(retryDelaysOrReconnectPolicy) {
    if (this.reconnectPolicy) throw new Error("A reconnectPolicy has already been set.");
    if (!retryDelaysOrReconnectPolicy) this.reconnectPolicy = new DefaultReconnectPolicy();
    else if (Array.isArray(retryDelaysOrReconnectPolicy)) this.reconnectPolicy = new DefaultReconnectPolicy(retryDelaysOrReconnectPolicy);
    else this.reconnectPolicy = retryDelaysOrReconnectPolicy;
    return this;
  }

  withServerTimeout(milliseconds) {
    if (milliseconds === null || milliseconds === undefined) throw new Error("The 'milliseconds' argument is required.");
    this._serverTimeoutInMilliseconds = milliseconds;
    return this;
  }

  withKeepAliveInterval(milliseconds) {
    if (milliseconds === null || milliseconds === undefined) throw new Error("The 'milliseconds' argument is required.");
    this._keepAliveIntervalInMilliseconds = milliseconds;
    return this;
  }

  withStatefulReconnect(options) {
    if (this.httpConnectionOptions === undefined) this.httpConnectionOptions = {};
    this.httpConnectionOptions._useStatefulReconnect = true;
    this._statefulReconnectBufferSize = options?.bufferSize;
    return this;
  }

  build() {
    const options = this.httpConnectionOptions || {};
    if (options.logger === undefined) options.logger = this.logger;
    if (!this.url) throw new Error("The 'HubConnectionBuilder.withUrl' method must be called before building the connection.");
    const protocol = this.protocol || new JsonHubProtocol();
    if (!CODECS[protocol.name]) throw new Error(`talkback-signalr has no hub protocol named '${protocol.name}'.`);
    if (typeof options.transport === "object" && options.transport !== null) {
      throw new Error("talkback-signalr does not take custom ITransport objects.");
    }
    const stateful = options._useStatefulReconnect ? { bufferSize: this._statefulReconnectBufferSize } : undefined;
    return new HubConnection(this.url, options, protocol, this.logger, this.reconnectPolicy,
      this._serverTimeoutInMilliseconds, this._keepAliveIntervalInMilliseconds, stateful);
  }
}
