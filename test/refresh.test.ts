import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ManagedIdentityClient,
  type ManagedIdentityLogEvent,
  SystemAssignedManagedIdentity,
} from "../src/index.ts";
import { startServer, type TestServer } from "./helpers/server.ts";
import { fakeTime, flush } from "./helpers/time.ts";

let server: TestServer;
let issued = 0;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());
afterEach(() => {
  vi.useRealTimers();
  server.requests.length = 0;
});

function setup() {
  const events: ManagedIdentityLogEvent[] = [];
  const mi = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
    env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: server.url },
    retry: false,
    httpCache: false,
    logger: (event) => events.push(event),
  });
  const get = () => mi.acquireTokenForClient({ resource: "https://r.example" });
  return { get, events };
}

const issue = () => ({
  body: { access_token: `token-${++issued}`, expires_in: 3600, refresh_in: 600 },
});

describe("proactive refresh", () => {
  it("after refreshOn, answers from the cache at once and refreshes once in the background", async () => {
    fakeTime();
    server.handle(issue);
    const { get, events } = setup();
    const first = await get();
    expect(first.refreshOn).toBe(first.expiresOn - 3000);
    vi.advanceTimersByTime(601_000);
    const results = await Promise.all([get(), get(), get()]);
    for (const result of results)
      expect(result).toMatchObject({ tokenSource: "cache", accessToken: first.accessToken });
    await vi.waitFor(() => expect(events.some((event) => event.type === "refresh")).toBe(true));
    expect(server.requests).toHaveLength(2);
    const after = await get();
    expect(after.tokenSource).toBe("cache");
    expect(after.accessToken).not.toBe(first.accessToken);
  });

  it("a failed refresh keeps the old token serving, is reported, and cools down", async () => {
    fakeTime();
    server.handle(issue);
    const { get, events } = setup();
    const first = await get();
    server.handle(() => ({ status: 500, body: { error: "boom" } }));
    vi.advanceTimersByTime(601_000);
    expect((await get()).accessToken).toBe(first.accessToken);
    await vi.waitFor(() =>
      expect(events.some((event) => event.type === "refresh_failed")).toBe(true),
    );
    expect(events.find((event) => event.type === "refresh_failed")).toMatchObject({
      code: "service_unavailable",
      status: 500,
    });
    // Within the cool-down no new refresh is attempted.
    vi.advanceTimersByTime(10_000);
    expect((await get()).accessToken).toBe(first.accessToken);
    await flush();
    expect(server.requests).toHaveLength(2);
    // After it, one more attempt, which now succeeds.
    server.handle(issue);
    vi.advanceTimersByTime(21_000);
    await get();
    await vi.waitFor(() => expect(events.some((event) => event.type === "refresh")).toBe(true));
    expect((await get()).accessToken).not.toBe(first.accessToken);
  });

  it("a token without refresh_in and a lifetime under two hours is not refreshed early", async () => {
    fakeTime();
    server.handle(() => ({ body: { access_token: `t-${++issued}`, expires_in: 3600 } }));
    const { get } = setup();
    const first = await get();
    expect(first.refreshOn).toBeUndefined();
    vi.advanceTimersByTime(3000_000);
    await get();
    await flush();
    expect(server.requests).toHaveLength(1);
  });
});
