import * as signalR from "../node_modules/talkback-signalr/index.js";
import { serveInWorker } from "../shared/scenario.js";

serveInWorker(signalR);
