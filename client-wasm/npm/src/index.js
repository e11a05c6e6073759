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

// Where this module was loaded from when `import.meta.url` is not there (an iife bundle): the
// classic script being run, or the worker's own script. Read while the script runs.
const scriptUrl = globalThis.document?.currentScript?.src;

function wasmUrl() {
  // The literal `new URL("...", import.meta.url)` is what bundlers (Vite, webpack, Parcel) look
  // for to emit the module as an asset and rewrite its address.
  if (import.meta.url) return new URL("./talkback_wasm_bg.wasm", import.meta.url);
  const base = scriptUrl || globalThis.location?.href;
  if (!base) throw new Error("talkback-signalr cannot tell where talkback_wasm_bg.wasm is.");
  return new URL("talkback_wasm_bg.wasm", base);
}

let wasmReady;
// Fetches and instantiates the wasm module once; a failure is forgotten so a later start()
// tries again (e.g. after the network comes back).
function loadWasm() {
  if (!wasmReady) {
    let url;
    wasmReady = Promise.resolve()
      .then(() => { url = wasmUrl(); return init({ module_or_path: url }); })
      .then(() => undefined, (e) => {
        wasmReady = undefined;
        throw new Error(`talkback-signalr could not load its WebAssembly module${url ? ` from ${url}` : ""}: ${e && e.message || e}`);
      });
  }
  return wasmReady;
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
for (const E of [HttpError, TimeoutError, AbortError, UnsupportedTransportError, DisabledTransportError,
  FailedToStartTransportError, FailedToNegotiateWithServerError, AggregateErrors]) {
  Object.defineProperty(E.prototype, "name", { value: E.name });
}

// The engine's error text as the official client's error object.
function toError(e) {
  if (e instanceof Error) return e;
  const text = String(e);
  if (text.startsWith("Failed to complete negotiation with the server")) return new FailedToNegotiateWithServerError(text);
  if (text.startsWith("Unable to connect to the server with any of the available transports.")) return new AggregateErrors(text, []);
  const status = /^(.*): Status code '(\d+)'$/s.exec(text);
  if (status) return new HttpError(status[1], Number(status[2]));
  if (text === "A timeout occurred." || /timed out/i.test(text)) return new TimeoutError(text);
  if (text === "An abort occurred." || text.startsWith("The connection was stopped")) return new AbortError(text);
  return new Error(text);
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

const LEVELS = {
  trace: LogLevel.Trace, debug: LogLevel.Debug, info: LogLevel.Information, information: LogLevel.Information,
  warn: LogLevel.Warning, warning: LogLevel.Warning, error: LogLevel.Error, critical: LogLevel.Critical, none: LogLevel.None,
};

// ---- protocols ----

export class JsonHubProtocol {
  constructor() { this.name = "json"; this.version = 2; this.transferFormat = TransferFormat.Text; }
}

export class MessagePackHubProtocol {
  constructor() { this.name = "messagepack"; this.version = 2; this.transferFormat = TransferFormat.Binary; }
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
    this._logger = logger;
    this._protocol = protocol;
    this._codec = CODECS[protocol.name];
    this._methods = {};
    this._closedCallbacks = [];
    this._reconnectingCallbacks = [];
    this._reconnectedCallbacks = [];
    this._url = url;
    this.serverTimeoutInMilliseconds = serverTimeout ?? 30000;
    this.keepAliveIntervalInMilliseconds = keepAlive ?? 15000;
    this._options = {
      protocol: protocol.name,
      transport: options.transport,
      skipNegotiation: options.skipNegotiation,
      withCredentials: options.withCredentials ?? true,
      timeout: options.timeout,
      headers: options.headers,
      accessTokenFactory: options.accessTokenFactory,
      serverTimeout: this.serverTimeoutInMilliseconds,
      keepAliveInterval: this.keepAliveIntervalInMilliseconds,
      statefulReconnect: stateful,
      reconnect: reconnectPolicy && ((previousRetryCount, elapsedMilliseconds, reason) => {
        try {
          const d = reconnectPolicy.nextRetryDelayInMilliseconds({ previousRetryCount, elapsedMilliseconds, retryReason: toError(reason) });
          return d === null || d === undefined ? null : d;
        } catch (e) {
          this._logger.log(LogLevel.Error, `IRetryPolicy.nextRetryDelayInMilliseconds threw error '${e}'.`);
          return null;
        }
      }),
      events: (kind, value) => this._event(kind, value),
      dispatch: (name, args) => this._dispatch(name, args),
    };
    // The engine's connection exists once the wasm module is ready (see loadWasm).
    this._raw = undefined;
    this._starting = false;
    this._ensure().catch(() => {}); // start() reports a failure (and tries again)
  }

  // Makes the engine's connection once the wasm module is ready.
  async _ensure() {
    if (this._raw) return;
    await loadWasm();
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
    const raw = new RawConnection(resolveUrl(this._url), this._options);
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
    if (this._raw && this.state === HubConnectionState.Disconnected) {
      const old = this._raw;
      this._raw = this._build();
      old.free();
    }
  }

  async start() {
    if (!this._raw) {
      // Connecting while the module loads, as the official client is while it negotiates.
      if (this._starting) throw new Error("Cannot start a HubConnection that is not in the 'Disconnected' state.");
      this._starting = true;
      try { await this._ensure(); } finally { this._starting = false; }
    }
    await this._raw.start().catch((e) => { throw toError(e); });
  }

  async stop() {
    // Before the engine's connection exists nothing can have started. A stop() made while
    // start() waits for the module runs right after that start() begins, so it aborts it as a
    // stop() during negotiation does.
    if (!this._raw) {
      if (!this._starting) return;
      try { await this._ensure(); } catch { return; }
    }
    await this._raw.stop().catch((e) => { throw toError(e); });
  }

  // Splits the arguments into encoded values and at most one upload stream.
  _args(args) {
    const values = [];
    let upload;
    let source;
    for (const a of args) {
      if (isObservable(a)) {
        if (source) throw new Error("talkback-signalr supports one streaming argument per call.");
        source = a;
      } else values.push(this._codec.enc(a));
    }
    if (source) upload = this._raw.newUpload();
    return [values, upload, source];
  }

  _pump(upload, source) {
    if (!source) return;
    source.subscribe({
      next: (item) => { try { upload.next(this._codec.enc(item)); } catch (e) { this._logger.log(LogLevel.Error, `${e}`); } },
      error: (err) => {
        this._logger.log(LogLevel.Warning, `Upload stream error (sent as completion): ${err}`);
        upload.complete();
      },
      complete: () => upload.complete(),
    });
  }

  invoke(methodName, ...args) {
    return this._call(() => {
      const [values, upload, source] = this._args(args);
      const p = this._raw.invoke(methodName, values, upload?.id);
      this._pump(upload, source);
      return p;
    }).then((r) => (r === undefined ? undefined : this._codec.dec(r)), (e) => { throw toError(e); });
  }

  send(methodName, ...args) {
    return this._call(() => {
      const [values, upload, source] = this._args(args);
      const p = this._raw.send(methodName, values, upload?.id);
      this._pump(upload, source);
      return p;
    }).then(() => undefined, (e) => { throw toError(e); });
  }

  stream(methodName, ...args) {
    const subject = new Subject();
    let handle, disposed = false;
    this._call(() => {
      if (disposed) return;
      const [values, upload, source] = this._args(args);
      handle = this._raw.stream(methodName, values, upload?.id,
        (item) => subject.next(this._codec.dec(item)),
        (error) => (error === undefined ? subject.complete() : subject.error(toError(error))));
      this._pump(upload, source);
    }).catch((e) => subject.error(e));
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
    const [callbacks, arg] = kind === "close"
      ? [this._closedCallbacks, value === undefined ? undefined : toError(value)]
      : kind === "reconnecting" ? [this._reconnectingCallbacks, toError(value)] : [this._reconnectedCallbacks, value];
    for (const c of callbacks.slice()) {
      try { c.call(this, arg); } catch (e) {
        this._logger.log(LogLevel.Error, `An ${kind === "close" ? "onclose" : "on" + kind} callback called with error '${arg}' threw error '${e}'.`);
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
    if (multiple) throw "Client provided multiple results.";
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
    const logger = options.logger || new ConsoleLogger(LogLevel.Information);
    const stateful = options._useStatefulReconnect ? { bufferSize: this._statefulReconnectBufferSize } : undefined;
    return new HubConnection(this.url, options, protocol, logger, this.reconnectPolicy,
      this._serverTimeoutInMilliseconds, this._keepAliveIntervalInMilliseconds, stateful);
  }
}
