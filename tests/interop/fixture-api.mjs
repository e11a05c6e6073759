// What the interop suite needs to know about the fixture beyond the test-hub contract: command-line
// options per configuration, how to mint an access token for a user, and the admin (fault) API.

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

/**
 * An access token that makes the fixture see `user` as the user id. The fixture reads a JWT's
 * `asrs.s.uid`, `nameid` or `sub` claim without checking the signature, and takes any other token
 * as the user id itself; an unsigned JWT exercises the claim path.
 */
export async function userToken(_fx, user) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part({ sub: user })}.`;
}

/** The fixture's admin endpoint for faults (`POST /admin/connections/{id}/{action}`). */
export class Admin {
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
  }

  async #post(path) {
    // Every admin request carries X-Talkback-Admin (a header a web page cannot send blind).
    const headers = { "X-Talkback-Admin": process.env.TALKBACK_ADMIN_TOKEN || "1" };
    const response = await fetch(`${this.baseUrl}${path}`, { method: "POST", headers });
    if (!response.ok) {
      throw new Error(`admin ${path}: status ${response.status} ${await response.text()}`);
    }
  }

  /** Drops a connection's transport without a Close message. */
  async dropConnection(connectionId) {
    await this.#post(`/admin/connections/${encodeURIComponent(connectionId)}/drop`);
  }

  /** Stops the server's pings to a connection. */
  async stopPings(connectionId) {
    await this.#post(`/admin/connections/${encodeURIComponent(connectionId)}/stop-pings`);
  }
}
