// An app built by Vite (packaging.mjs): imports the package by its name in the page, and again
// in a module worker that Vite bundles (`new Worker(new URL(...), { type: "module" })`).
import * as signalR from "talkback-signalr";
import { publish, runInWorker, runScenarios } from "../shared/scenario.js";

const hub = new URLSearchParams(location.search).get("hub");
publish((async () => {
  const page = await runScenarios(signalR, hub, "Vite bundle (page)");
  const worker = await runInWorker(
    () => new Worker(new URL("./worker.js", import.meta.url), { type: "module" }), hub, "Vite bundle (module worker)");
  return [...page, ...worker];
})(), "Vite bundle");
