import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ManagedIdentityClient,
  type ManagedIdentityLogEvent,
  SystemAssignedManagedIdentity,
} from "../src/index.ts";
import { startServer, type TestServer } from "./helpers/server.ts";

const SECRET = "identity-header-secret-value";
const TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL3IifQ.signature-part";

let server: TestServer;
beforeAll(async () => {
  let calls = 0;
  server = await startServer(() =>
    ++calls === 1
      ? { status: 503, body: { message: `echo ${SECRET} ${TOKEN}` } }
      : { body: { access_token: TOKEN, expires_in: 3600 } },
  );
});
afterAll(() => server.close());

describe("logger", () => {
  it("receives structured events with durations, and never a token or a secret", async () => {
    const events: ManagedIdentityLogEvent[] = [];
    const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: { IDENTITY_ENDPOINT: `${server.url}/token`, IDENTITY_HEADER: SECRET },
      retry: { delayMs: 1 },
      logger: (event) => events.push(event),
    });
    await client.acquireTokenForClient({ resource: "https://r.example" });
    await client.acquireTokenForClient({ resource: "https://r.example" });
    expect(events.map((event) => event.type)).toEqual([
      "cache_miss",
      "request",
      "retry",
      "request",
      "cache_hit",
    ]);
    expect(events[1]).toMatchObject({ source: "app-service", attempt: 1, status: 503 });
    expect(events[1]?.durationMs).toBeGreaterThanOrEqual(0);
    expect(events[2]).toMatchObject({ attempt: 2, delayMs: 1 });
    const logged = JSON.stringify(events);
    expect(logged).not.toContain(SECRET);
    expect(logged).not.toContain("eyJ");
  });

  it("a throwing logger does not fail the call", async () => {
    const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: { IDENTITY_ENDPOINT: `${server.url}/token`, IDENTITY_HEADER: SECRET },
      logger: () => {
        throw new Error("logger down");
      },
    });
    expect(
      (await client.acquireTokenForClient({ resource: "https://r2.example" })).accessToken,
    ).toBe(TOKEN);
  });
});
