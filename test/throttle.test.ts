import { createStorage } from "unstorage";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  ManagedIdentityError,
  type ManagedIdentityLogEvent,
  SystemAssignedManagedIdentity,
  THROTTLE_KEY_PREFIX,
} from "../src/index.ts";
import type { TokenRequest } from "../src/sources/types.ts";
import { ThrottleCache } from "../src/throttle.ts";
import { type Reply, startServer, type TestServer } from "./helpers/server.ts";
import { fakeTime } from "./helpers/time.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());
afterEach(() => {
  vi.useRealTimers();
  server.requests.length = 0;
});

const TOKEN = { access_token: "fresh", expires_in: 3600 };

function client(options: ManagedIdentityClientOptions = {}, secret = "secret-1") {
  const events: ManagedIdentityLogEvent[] = [];
  const mi = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
    env: { IDENTITY_ENDPOINT: `${server.url}/token`, IDENTITY_HEADER: secret },
    retry: false,
    logger: (event) => events.push(event),
    ...options,
  });
  return { mi, events };
}

const attempt = (mi: ManagedIdentityClient, resource = "https://r.example") =>
  mi.acquireTokenForClient({ resource }).then(
    (token) => token.accessToken,
    (error: ManagedIdentityError) => error,
  );

describe("throttling memory (httpCache)", () => {
  it("replays a 429 for Retry-After seconds without touching the network", async () => {
    fakeTime();
    server.handle(() => ({
      status: 429,
      headers: { "retry-after": "30" },
      body: { error: "throttled" },
    }));
    const { mi, events } = client();
    const first = await attempt(mi);
    const second = await attempt(mi);
    expect(first).toMatchObject({ code: "throttled", status: 429 });
    expect(second).toMatchObject({ code: "throttled", status: 429 });
    expect(server.requests).toHaveLength(1);
    expect(
      events.filter((event) => event.type === "throttled").map((event) => event.delayMs),
    ).toEqual([30_000, undefined]);
    server.handle(() => ({ body: TOKEN }));
    vi.advanceTimersByTime(29_000);
    expect(await attempt(mi)).toBeInstanceOf(ManagedIdentityError);
    vi.advanceTimersByTime(1_000);
    expect(await attempt(mi)).toBe("fresh");
    expect(server.requests).toHaveLength(2);
  });

  it.each<[string, Reply, number | undefined]>([
    ["a 500 without Retry-After, for 5 s", { status: 500 }, 5000],
    [
      "a 503 with an unreadable Retry-After, for 5 s",
      { status: 503, headers: { "retry-after": "later" } },
      5000,
    ],
    ["a 400 with Retry-After", { status: 400, headers: { "retry-after": "9" } }, 9000],
    [
      "a Retry-After of a day, for at most an hour",
      { status: 429, headers: { "retry-after": "86400" } },
      3_600_000,
    ],
    ["a 400 without Retry-After: not remembered", { status: 400 }, undefined],
    ["a 404: not remembered", { status: 404 }, undefined],
  ])("remembers %s", async (_name, reply, forMs) => {
    fakeTime();
    server.handle(() => reply);
    const { mi, events } = client();
    await attempt(mi);
    await attempt(mi);
    const remembered = events.find(
      (event) => event.type === "throttled" && event.delayMs !== undefined,
    );
    expect(remembered?.delayMs).toBe(forMs);
    expect(server.requests).toHaveLength(forMs === undefined ? 2 : 1);
  });

  it("keys on method, URL and query, not on headers", async () => {
    server.handle(() => ({ status: 429, headers: { "retry-after": "60" } }));
    const httpCache = createStorage();
    await attempt(client({ httpCache }, "secret-1").mi);
    // Same request with another secret header: replayed. Another resource: sent.
    expect(await attempt(client({ httpCache }, "secret-2").mi)).toMatchObject({ status: 429 });
    expect(server.requests).toHaveLength(1);
    await attempt(client({ httpCache }).mi, "https://other.example");
    expect(server.requests).toHaveLength(2);
  });

  it("never stores successful answers or tokens, nor the secret", async () => {
    const httpCache = createStorage();
    server.handle(() => ({ body: TOKEN }));
    await attempt(client({ httpCache }).mi);
    expect(await httpCache.getKeys()).toEqual([]);
    server.handle((request) => ({
      status: 500,
      body: { message: `echo ${request.headers["x-identity-header"]}` },
    }));
    await attempt(client({ httpCache }).mi, "https://other.example");
    const keys = await httpCache.getKeys();
    expect(keys).toHaveLength(1);
    expect(keys[0]?.startsWith(THROTTLE_KEY_PREFIX)).toBe(true);
    expect(JSON.stringify(await httpCache.getItem(keys[0] as string))).not.toContain("secret-1");
  });

  it("httpCache: false sends every request", async () => {
    server.handle(() => ({ status: 429, headers: { "retry-after": "60" } }));
    const { mi } = client({ httpCache: false });
    await attempt(mi);
    await attempt(mi);
    expect(server.requests).toHaveLength(2);
  });

  it("lets Arc's 401 challenge through, even with Retry-After", async () => {
    const cache = new ThrottleCache(createStorage());
    const request: TokenRequest = {
      method: "GET",
      url: "http://127.0.0.1/x",
      headers: {},
      endpointKind: "local",
      secrets: [],
    };
    const challenge = {
      status: 401,
      headers: new Headers({
        "www-authenticate": "Basic realm=/var/opt/azcmagent/tokens/a.key",
        "retry-after": "10",
      }),
      body: "",
    };
    expect(await cache.remember(request, challenge, Date.now())).toBeUndefined();
    expect(await cache.recall(request, Date.now())).toBeUndefined();
  });
});
