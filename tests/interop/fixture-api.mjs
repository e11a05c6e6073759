// What the interop suite needs to know about the fixture beyond the test-hub contract: command-line
// options per configuration, how to mint an access token for a user, and the admin (fault) API.

import { Missing } from "./harness.mjs";

/** Command-line arguments (after `--port 0`) for each fixture configuration the suite uses. */
export function fixtureArgs(name) {
  switch (name) {
    case "default":
      return [];
    case "fast-pings":
      return ["--keep-alive-ms", "300"];
    case "stateful":
      return ["--stateful-reconnect"];
    default:
      throw new Error(`unknown fixture configuration ${name}`);
  }
}

/** An access token that makes the fixture see `user` as the user id. */
export async function userToken(_fx, _user) {
  throw new Missing("how the fixture maps access tokens to user ids is not known yet");
}

/** The fixture's admin endpoint for faults. */
export class Admin {
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
  }

  /** Drops a connection's transport without a Close message. */
  async dropConnection(_connectionId) {
    throw new Missing("the fixture has no admin endpoint to drop a connection yet");
  }

  /** Stops the server's pings to a connection. */
  async stopPings(_connectionId) {
    throw new Missing("the fixture has no admin endpoint to stop pings yet");
  }
}
