// The official client as every interop script uses it: the package, the log level from
// INTEROP_LOG, and the transport × protocol pairs it supports.

import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const signalR = require("@microsoft/signalr");
export const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

/** The client's log level: INTEROP_LOG=trace|debug|info, silent otherwise. */
export const logLevel =
  { trace: signalR.LogLevel.Trace, debug: signalR.LogLevel.Debug, info: signalR.LogLevel.Information }[
    process.env.INTEROP_LOG ?? ""
  ] ?? signalR.LogLevel.None;

/** The transports by name. */
export const TRANSPORTS = {
  WebSockets: signalR.HttpTransportType.WebSockets,
  ServerSentEvents: signalR.HttpTransportType.ServerSentEvents,
  LongPolling: signalR.HttpTransportType.LongPolling,
};

/** Every transport × protocol pair the official client supports (no MessagePack over SSE). */
export const COMBOS = [
  { transport: "WebSockets", protocol: "json" },
  { transport: "WebSockets", protocol: "messagepack" },
  { transport: "ServerSentEvents", protocol: "json" },
  { transport: "LongPolling", protocol: "json" },
  { transport: "LongPolling", protocol: "messagepack" },
];
