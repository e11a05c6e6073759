import * as signalR from "talkback-signalr";
import { serveInWorker } from "../shared/scenario.js";

serveInWorker(signalR);
