// A module worker that imports the installed package's ES module directly, with no bundler.
import { publish, runInWorker } from "../shared/scenario.js";

const hub = new URLSearchParams(location.search).get("hub");
publish(runInWorker(() => new Worker(new URL("./worker.js", import.meta.url), { type: "module" }), hub, "module worker (unbundled)"),
  "module worker (unbundled)");
