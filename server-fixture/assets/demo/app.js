// The demo page of talkback-fixture: a chat and a live dashboard, written against the API of
// @microsoft/signalr and run by the npm package talkback-signalr (served under /demo/pkg/).
// Everything shown comes from the fixture: chat messages from the `chat` hub, ticks from the
// `test` hub's InfiniteCounter stream, round trips from its Echo method, counters from /metrics.
// The page's state is mirrored on <body data-chat data-dashboard data-ticks> for tests.

const $ = (id) => document.getElementById(id);
const body = document.body;

let signalR;
try {
  signalR = await import("/demo/pkg/index.js");
} catch (e) {
  $("load-error").hidden = false;
  $("load-error").textContent = `The package talkback-signalr did not load: ${e}. Rebuild it with scripts/build-npm.sh.`;
  body.dataset.chat = body.dataset.dashboard = "Failed";
  throw e;
}
const { HubConnectionBuilder, HubConnectionState, LogLevel, MessagePackHubProtocol } = signalR;

$("origin").textContent = location.origin;
$("cli-hint").textContent =
  `cargo run -p talkback --features cli -- send ${location.origin}/hubs/chat Send '"rust"' '"hello"'`;

function showState(which, badge, state) {
  body.dataset[which] = state;
  badge.textContent = state;
  badge.className = `badge ${state.toLowerCase()}`;
}

// ---------------------------------------------------------------------------------------- chat
const MAX_MESSAGES = 100;
const name = $("chat-name");
name.value = sessionStorage.getItem("talkback-demo-name") || `guest-${Math.floor(1000 + Math.random() * 9000)}`;
name.addEventListener("change", () => sessionStorage.setItem("talkback-demo-name", name.value));
const sendButton = $("chat-form").querySelector("button");

const chat = new HubConnectionBuilder()
  .withUrl("/hubs/chat") // a relative URL, resolved against the page
  .withAutomaticReconnect()
  .configureLogging(LogLevel.Warning)
  .build();

chat.on("ReceiveMessage", (user, message) => {
  const item = document.createElement("li");
  if (user === name.value) item.className = "mine";
  const who = document.createElement("b");
  who.textContent = String(user);
  const text = document.createElement("span");
  text.textContent = String(message);
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(who, text, time);
  const list = $("messages");
  list.append(item);
  while (list.children.length > MAX_MESSAGES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
  $("no-messages").hidden = true;
  body.dataset.messages = String(list.children.length);
});

function chatState() {
  showState("chat", $("chat-state"), chat.state);
  sendButton.disabled = chat.state !== HubConnectionState.Connected;
  $("chat-id").textContent = chat.connectionId ?? "–";
}
chat.onreconnecting(chatState);
chat.onreconnected(chatState);
chat.onclose(chatState);

$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("chat-text");
  if (!text.value.trim()) return;
  try {
    await chat.invoke("Send", name.value, text.value);
    text.value = "";
  } catch (e) {
    $("load-error").hidden = false;
    $("load-error").textContent = `Send failed: ${e.message}`;
  }
});

// ----------------------------------------------------------------------------------- dashboard
const dashboard = new HubConnectionBuilder()
  .withUrl("/hubs/test")
  .withHubProtocol(new MessagePackHubProtocol())
  .withAutomaticReconnect()
  .configureLogging(LogLevel.Warning)
  .build();

const RTT_POINTS = 60;
const rtts = [];
let ticks = 0;
let subscription;

function dashState() {
  showState("dashboard", $("dash-state"), dashboard.state);
  $("dash-id").textContent = dashboard.connectionId ?? "–";
}

// The newest round trip at the right edge; the scale's top is the largest one shown.
function drawChart() {
  const max = Math.max(1, ...rtts);
  const step = 600 / (RTT_POINTS - 1);
  const points = rtts.map((v, i) => `${(600 - (rtts.length - 1 - i) * step).toFixed(1)},${(116 - (v / max) * 108).toFixed(1)}`);
  $("chart-line").setAttribute("points", points.join(" "));
  const first = 600 - (rtts.length - 1) * step;
  $("chart-area").setAttribute("points", `${first.toFixed(1)},120 ${points.join(" ")} 600,120`);
  $("chart-max").textContent = `${max.toFixed(1)} ms`;
}

async function refreshMetrics() {
  const response = await fetch("/metrics", { cache: "no-store" });
  if (!response.ok) return;
  const totals = {};
  for (const line of (await response.text()).split("\n")) {
    const m = /^([a-z_]+)(?:\{[^}]*\})? (\d+)$/.exec(line);
    if (m) totals[m[1]] = (totals[m[1]] ?? 0) + Number(m[2]);
  }
  $("tile-connections").textContent = String(totals.talkback_connections ?? "–");
  $("tile-sent").textContent = (totals.talkback_messages_sent_total ?? 0).toLocaleString("en");
}

async function onTick(n) {
  ticks += 1;
  body.dataset.ticks = String(ticks);
  $("tile-ticks").textContent = String(ticks);
  const t0 = performance.now();
  const echoed = await dashboard.invoke("Echo", n);
  const rtt = performance.now() - t0;
  if (echoed !== n) throw new Error(`Echo returned ${echoed} for ${n}`);
  rtts.push(rtt);
  if (rtts.length > RTT_POINTS) rtts.shift();
  $("tile-rtt").textContent = `${rtt.toFixed(1)} ms`;
  drawChart();
  await refreshMetrics();
}

function subscribeTicks() {
  subscription?.dispose();
  subscription = dashboard.stream("InfiniteCounter", 250).subscribe({
    next: (n) => { onTick(n).catch((e) => console.warn("dashboard tick:", e)); },
    error: (e) => console.warn("dashboard stream ended:", e),
    complete: () => {},
  });
}

dashboard.onreconnecting(dashState);
dashboard.onreconnected(() => { dashState(); subscribeTicks(); });
dashboard.onclose(dashState);

// ------------------------------------------------------------------------------------- start
async function start(connection, update) {
  update();
  try {
    await connection.start();
  } catch (e) {
    $("load-error").hidden = false;
    $("load-error").textContent = `Could not connect: ${e.message}`;
  }
  update();
}
await Promise.all([
  start(chat, chatState),
  start(dashboard, dashState).then(() => {
    if (dashboard.state === HubConnectionState.Connected) subscribeTicks();
  }),
]);
