import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  type ManagedIdentityError,
  type ManagedIdentityLogEvent,
  SystemAssignedManagedIdentity,
} from "../src/index.ts";
import { parseRetryAfter } from "../src/retry.ts";
import { type Reply, startServer, type TestServer } from "./helpers/server.ts";
import { driveRetries, fakeTime, flush } from "./helpers/time.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());
afterEach(() => {
  vi.useRealTimers();
  server.requests.length = 0;
});

const TOKEN = { access_token: "fresh", expires_in: 3600, token_type: "Bearer" };

/** Answers with `failures` in order, then a token. */
function script(...failures: Reply[]): void {
  let index = 0;
  server.handle(() => failures[index++] ?? { body: TOKEN });
}

function setup(kind: "imds" | "app-service", options: ManagedIdentityClientOptions = {}) {
  const events: ManagedIdentityLogEvent[] = [];
  const env =
    kind === "imds"
      ? { AZURE_POD_IDENTITY_AUTHORITY_HOST: server.url }
      : { IDENTITY_ENDPOINT: `${server.url}/token`, IDENTITY_HEADER: "secret" };
  const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
    env,
    httpCache: false,
    logger: (event) => events.push(event),
    ...options,
  });
  const acquire = (signal?: AbortSignal) =>
    driveRetries(client.acquireTokenForClient({ resource: "https://r.example", signal }), events);
  const delays = () =>
    events.filter((event) => event.type === "retry").map((event) => event.delayMs);
  return { client, events, acquire, delays };
}

const failureOf = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected a failure");
    },
    (error: unknown) => error as ManagedIdentityError,
  );

describe("IMDS retry policy", () => {
  it("backs off 1 s, 2 s, 4 s and then succeeds", async () => {
    fakeTime();
    script({ status: 500 }, { status: 503 }, { status: 429 });
    const { acquire, delays } = setup("imds");
    const started = Date.now();
    expect((await acquire()).accessToken).toBe("fresh");
    expect(delays()).toEqual([1000, 2000, 4000]);
    expect(server.requests).toHaveLength(4);
    expect(Date.now() - started).toBe(7000);
  });

  it("gives up after 3 retries with the last answer's error", async () => {
    fakeTime();
    script(
      { status: 500 },
      { status: 500 },
      { status: 500 },
      { status: 502, body: { error: "bad" } },
    );
    const { acquire, delays } = setup("imds");
    const error = await failureOf(acquire());
    expect(error).toMatchObject({ code: "service_unavailable", status: 502 });
    expect(delays()).toEqual([1000, 2000, 4000]);
    expect(server.requests).toHaveLength(4);
  });

  it.each([404, 408, 410, 429, 500, 504, 599])("retries %i", async (status) => {
    fakeTime();
    script({ status });
    const { acquire } = setup("imds");
    expect((await acquire()).accessToken).toBe("fresh");
    expect(server.requests).toHaveLength(2);
  });

  it.each([400, 401, 403])("does not retry %i", async (status) => {
    fakeTime();
    script({ status });
    const { acquire } = setup("imds");
    await failureOf(acquire());
    expect(server.requests).toHaveLength(1);
  });

  it("waits through the 410 upgrade window: up to 7 retries 10 s apart", async () => {
    fakeTime();
    script(...Array.from({ length: 7 }, () => ({ status: 410 })));
    const { acquire, delays } = setup("imds");
    expect((await acquire()).accessToken).toBe("fresh");
    expect(delays()).toEqual(Array(7).fill(10_000));
    expect(server.requests).toHaveLength(8);
  });

  it("fails after the 410 window", async () => {
    fakeTime();
    script(...Array.from({ length: 8 }, () => ({ status: 410 })));
    const { acquire } = setup("imds");
    expect(await failureOf(acquire())).toMatchObject({ status: 410 });
    expect(server.requests).toHaveLength(8);
  });
});

describe("default retry policy (App Service and others)", () => {
  it("honours Retry-After in seconds", async () => {
    fakeTime();
    script({ status: 429, headers: { "retry-after": "3" } });
    const { acquire, delays } = setup("app-service");
    expect((await acquire()).accessToken).toBe("fresh");
    expect(delays()).toEqual([3000]);
  });

  it("honours Retry-After as an HTTP date", async () => {
    fakeTime("2026-01-01T00:00:00Z");
    script({ status: 503, headers: { "retry-after": "Thu, 01 Jan 2026 00:00:07 GMT" } });
    const { acquire, delays } = setup("app-service");
    await acquire();
    expect(delays()).toEqual([7000]);
  });

  it("waits at least 1 s", async () => {
    fakeTime();
    script({ status: 500, headers: { "retry-after": "0" } }, { status: 500 });
    const { acquire, delays } = setup("app-service");
    await acquire();
    expect(delays()).toEqual([1000, 1000]);
  });

  it("does not retry 410 or 400", async () => {
    for (const status of [410, 400]) {
      fakeTime();
      server.requests.length = 0;
      script({ status });
      await failureOf(setup("app-service").acquire());
      expect(server.requests).toHaveLength(1);
    }
  });

  it("does not wait past the deadline: a long Retry-After fails at once", async () => {
    fakeTime();
    script({ status: 429, headers: { "retry-after": "120" } });
    const { acquire, delays } = setup("app-service", { deadline: 60_000 });
    expect(await failureOf(acquire())).toMatchObject({ code: "throttled", status: 429 });
    expect(delays()).toEqual([]);
    expect(server.requests).toHaveLength(1);
  });
});

describe("deadline", () => {
  it("ends the whole call at the deadline even when each attempt may take longer", async () => {
    fakeTime();
    server.handle(() => new Promise(() => {}));
    const { client } = setup("imds", { timeout: 10_000, deadline: 100 });
    const pending = failureOf(client.acquireTokenForClient({ resource: "https://r.example" }));
    while (server.requests.length === 0) await flush(1);
    // Only the deadline's 100 ms pass on the fake clock, far short of the 10 s attempt timeout.
    await vi.advanceTimersByTimeAsync(100);
    const error = await pending;
    expect(error).toMatchObject({ code: "timeout", source: "imds" });
    expect(error.message).toContain("within the 100 ms deadline");
  });
});

describe("retry options", () => {
  it("retry: false makes every answer final", async () => {
    script({ status: 500 });
    const { acquire } = setup("imds", { retry: false });
    await failureOf(acquire());
    expect(server.requests).toHaveLength(1);
  });

  it("count and delay are configurable", async () => {
    fakeTime();
    script({ status: 500 }, { status: 500 }, { status: 500 });
    const { acquire, delays } = setup("imds", { retry: { maxRetries: 1, delayMs: 10 } });
    await failureOf(acquire());
    expect(delays()).toEqual([10]);
    expect(server.requests).toHaveLength(2);
  });

  it("a caller's signal ends the wait at once", async () => {
    fakeTime();
    script({ status: 410 });
    const { client, events } = setup("imds");
    const controller = new AbortController();
    const pending = client.acquireTokenForClient({
      resource: "https://r.example",
      signal: controller.signal,
    });
    while (!events.some((event) => event.type === "retry")) await flush(1);
    controller.abort();
    // No fake time passes: the 10 s wait is still pending when the caller is released.
    expect(await failureOf(pending)).toMatchObject({ code: "aborted" });
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it.each([
    ["5", 5000],
    [" 12 ", 12_000],
    ["Thu, 01 Jan 2026 00:00:30 GMT", 30_000],
    ["Wed, 31 Dec 2025 23:00:00 GMT", 0],
    ["999999", 3_600_000],
    ["-1", undefined],
    ["1.5", undefined],
    ["soon", undefined],
    ["2026-01-01", undefined],
    [null, undefined],
  ])("%j is %j ms", (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});
