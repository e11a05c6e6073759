// The browser half of examples/examples/serverless_dashboard.rs: a viewer of the dashboard hub
// on Azure SignalR Service in serverless mode (the fixture plays the service), written against
// the npm package talkback-signalr exactly as it would be against @microsoft/signalr.
//
// 1. `withUrl("/api?user=...")`: the client POSTs the app's /api/negotiate, which answers
//    {url, accessToken} (an Azure Functions `negotiate` function); the client follows it to the
//    service, with the token.
// 2. `metric` comes to everyone, `alert` to the `alerts` group, `acknowledged` to everyone: all
//    pushed by the app through the service's REST API.
// 3. `invoke("GetSnapshot")` and `send("Acknowledge", seq)` go to the app's upstream handler.
//
// What the page shows is also on <body data-*> and in `window.dashboard`, for the test
// (client-wasm/npm/test/serverless.mjs).

const $ = (id) => document.getElementById(id);
const body = document.body;
const view = { metrics: [], alerts: [], acknowledged: [], snapshot: null };
window.dashboard = view;

const MAX_POINTS = 60; // chart
const MAX_ALERTS = 8; // list
const STALE_MS = 1500; // no metric for this long: the badge says "stale"

function setState(state, error) {
  body.dataset.state = state;
  $("state").textContent = state.toLowerCase();
  $("state").className = `badge ${state.toLowerCase()}`;
  if (error !== undefined) $("error").textContent = error ? String(error.message || error) : "";
}

let lastMetricAt = 0;
setInterval(() => {
  const fresh = lastMetricAt && Date.now() - lastMetricAt < STALE_MS ? "live" : lastMetricAt ? "stale" : "waiting";
  body.dataset.fresh = fresh;
  $("freshness").textContent = fresh;
  $("freshness").className = `badge ${fresh}`;
}, 250);

function onMetric(metric) {
  lastMetricAt = Date.now();
  view.metrics.push(metric);
  if (view.metrics.length > 200) view.metrics.shift();
  body.dataset.metrics = String(Number(body.dataset.metrics || 0) + 1);
  body.dataset.lastSeq = String(metric.seq);
  $("tile-cpu").textContent = String(metric.cpu);
  $("tile-seq").textContent = String(metric.seq);
  $("tile-metrics").textContent = body.dataset.metrics;
  drawChart(view.metrics.slice(-MAX_POINTS).map((m) => m.cpu));
}

function drawChart(values) {
  const step = 600 / (MAX_POINTS - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(100 - Math.max(0, Math.min(100, v))).toFixed(1)}`);
  $("chart-line").setAttribute("points", points.join(" "));
  if (points.length > 1) {
    const last = ((values.length - 1) * step).toFixed(1);
    $("chart-area").setAttribute("points", `0,100 ${points.join(" ")} ${last},100`);
  }
}

function onAlert(alert) {
  view.alerts.push(alert);
  body.dataset.alerts = String(view.alerts.length);
  $("tile-alerts").textContent = body.dataset.alerts;
  $("alerts-empty").hidden = true;
  const li = document.createElement("li");
  li.dataset.seq = String(alert.seq);
  const text = document.createElement("b");
  text.textContent = `${alert.text} (seq ${alert.seq})`;
  const button = document.createElement("button");
  button.textContent = "Acknowledge";
  button.addEventListener("click", () => {
    button.disabled = true;
    connection.send("Acknowledge", alert.seq).catch((e) => { button.disabled = false; setState(connection.state, e); });
  });
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  li.append(text, button, time);
  $("alerts").prepend(li);
  while ($("alerts").children.length > MAX_ALERTS) $("alerts").lastElementChild.remove();
}

function onAcknowledged(ack) {
  view.acknowledged.push(ack);
  body.dataset.acknowledged = String(view.acknowledged.length);
  const li = $("alerts").querySelector(`li[data-seq="${Number(ack.seq)}"]`);
  if (!li) return;
  li.classList.add("acknowledged");
  li.querySelector("button").disabled = true;
  li.querySelector("time").textContent = `acknowledged by ${ack.by}`;
}

// The upstream answers GetSnapshot with the latest reading, and puts this connection in the
// alerts group (a new connection after a reconnect needs it again).
async function snapshot() {
  const value = await connection.invoke("GetSnapshot");
  view.snapshot = value;
  body.dataset.snapshot = JSON.stringify(value);
  $("snapshot").textContent = JSON.stringify(value);
}

function showConnection() {
  $("connection-id").textContent = connection.connectionId ?? "–";
  body.dataset.connectionId = connection.connectionId ?? "";
}

const user = new URLSearchParams(location.search).get("user") || `viewer-${Math.random().toString(36).slice(2, 7)}`;
$("user").textContent = user;
body.dataset.user = user;

let signalR;
try {
  signalR = await import("talkback-signalr");
} catch (e) {
  setState("Failed", `talkback-signalr did not load (${e.message}). Build it with scripts/build-npm.sh, then reload.`);
  throw e;
}

const connection = new signalR.HubConnectionBuilder()
  .withUrl(`/api?user=${encodeURIComponent(user)}`)
  .withAutomaticReconnect()
  .configureLogging(signalR.LogLevel.Warning)
  .build();
connection.on("metric", onMetric);
connection.on("alert", onAlert);
connection.on("acknowledged", onAcknowledged);
connection.onreconnecting((e) => setState("Reconnecting", e));
connection.onreconnected(() => { setState("Connected", ""); showConnection(); snapshot().catch((e) => setState(connection.state, e)); });
connection.onclose((e) => setState("Disconnected", e));

setState("Connecting");
try {
  await connection.start();
  showConnection();
  setState("Connected", "");
  await snapshot();
} catch (e) {
  setState(connection.state === "Connected" ? "Connected" : "Failed", e);
}
