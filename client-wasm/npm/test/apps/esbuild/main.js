// An app bundled by esbuild (packaging.mjs): imports the package by its name, as apps do.
import * as signalR from "talkback-signalr";
import { publish, runScenarios } from "../shared/scenario.js";

const hub = new URLSearchParams(location.search).get("hub");
publish(runScenarios(signalR, hub, "esbuild bundle"), "esbuild bundle");
