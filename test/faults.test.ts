/**
 * The fault matrix of issue 8: every back-end against every fault the emulator injects. Each cell
 * must end in a token after bounded retries or in a typed ManagedIdentityError within the
 * deadline, leave no bad token in the cache, and send nothing to a redirect's target.
 *
 * Cells run concurrently against one served emulator: each asks for its own resource and its
 * faults are scoped to that resource and back-end, so no cell sees another's faults.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createLocalJWKSet, jwtVerify } from "jose";
import { createStorage } from "unstorage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANSWER_FAULTS } from "../src/emulator/faults.ts";
import {
  EMULATOR_SOURCES,
  type EmulatorFault,
  type EmulatorSource,
  type RunningEmulator,
  serveEmulator,
} from "../src/emulator/index.ts";
import {
  type AccessTokenResult,
  isManagedIdentityError,
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  type ManagedIdentityErrorCode,
  SystemAssignedManagedIdentity,
} from "../src/index.ts";
import { defaultPlatform } from "../src/platform/index.ts";

/** Small everything, so that the whole matrix takes seconds. */
const TIMEOUT_MS = 500;
const DEADLINE_MS = 3000;
const RETRY = { delayMs: 1, goneDelayMs: 1 };
/** Scheduling slack on a busy 2-core machine, on top of a bound the client promises. */
const SLACK_MS = 400;

/** What a cell must end in. */
interface Expectation {
  /** A token, or the code of the ManagedIdentityError. */
  outcome: "token" | ManagedIdentityErrorCode;
  /** Attempts at the token request (Arc's challenge round trip not counted): exact or [min, max]. */
  tries: number | [number, number];
  /** At least this long (a wait the client had to honour). */
  minMs?: number;
  /** At most this long (a wait the client had to refuse), slack included. */
  maxMs?: number;
  /** The token is already expired: handed to the caller, but never cached. */
  expired?: boolean;
}

/** One row of the matrix: a fault and what each back-end must make of it. */
interface FaultCase {
  name: string;
  /** The back-ends it applies to. @default every back-end */
  only?: readonly EmulatorSource[];
  /** The faults, scoped by the matrix to the cell's resource and back-end. */
  faults?: EmulatorFault[];
  /** Point the client at a port nothing listens on. */
  refused?: boolean;
  /** Client options for this row. */
  client?: Partial<ManagedIdentityClientOptions>;
  expect(source: EmulatorSource): Expectation;
}

/** The statuses each back-end retries, as PROTOCOL.md gives them (not read from the client). */
function retries(source: EmulatorSource, status: number): boolean {
  if (source === "imds") return [404, 408, 410, 429].includes(status) || status >= 500;
  if (source === "service-fabric") return status === 429 || status === 503;
  return [404, 408, 429, 500, 503, 504].includes(status);
}

const REDIRECT_TARGET = "redirect target";
const fail = (outcome: ManagedIdentityErrorCode, tries = 1): Expectation => ({ outcome, tries });

const FAULTS: readonly FaultCase[] = [
  {
    name: "429, Retry-After: 1 (seconds), once",
    faults: [{ kind: "status", status: 429, retryAfter: 1, times: 1 }],
    // IMDS backs off on its own schedule; the others must wait the second they were told to.
    expect: (source) =>
      source === "imds"
        ? { outcome: "token", tries: 2 }
        : { outcome: "token", tries: 2, minMs: 1000 },
  },
  {
    name: "429, Retry-After: HTTP date in 30 s",
    faults: [{ kind: "status", status: 429, retryAfterDateIn: 30, times: 1 }],
    // Waiting 30 s would overrun the deadline: give up at once, without retrying early.
    expect: (source) =>
      source === "imds" ? { outcome: "token", tries: 2 } : { ...fail("throttled"), maxMs: 1000 },
  },
  {
    name: "500 ×2",
    faults: [{ kind: "status", status: 500, times: 2 }],
    expect: (source) =>
      retries(source, 500) ? { outcome: "token", tries: 3 } : fail("service_unavailable"),
  },
  {
    name: "503 ×2",
    faults: [{ kind: "status", status: 503, times: 2 }],
    expect: () => ({ outcome: "token", tries: 3 }),
  },
  {
    name: "500 persistent",
    faults: [{ kind: "status", status: 500 }],
    // Three retries at most, then the service's error.
    expect: (source) => fail("service_unavailable", retries(source, 500) ? 4 : 1),
  },
  {
    name: "503, Retry-After: 1, persistent; deadline 1.5 s",
    faults: [{ kind: "status", status: 503, retryAfter: 1 }],
    client: { deadline: 1500 },
    // A second wait would end past the deadline, so the client stops after one.
    expect: (source) =>
      source === "imds"
        ? fail("service_unavailable", 4)
        : { ...fail("service_unavailable", 2), minMs: 1000, maxMs: 1500 + SLACK_MS },
  },
  {
    name: "IMDS 410 for 150 ms",
    only: ["imds"],
    faults: [{ kind: "imds-410", seconds: 0.15 }],
    // Seven retries 30 ms apart outlast the upgrade window.
    client: { retry: { ...RETRY, goneDelayMs: 30 } },
    expect: () => ({ outcome: "token", tries: [2, 8], minMs: 150 }),
  },
  {
    name: "IMDS 410 past every retry",
    only: ["imds"],
    faults: [{ kind: "imds-410", seconds: 60 }],
    // A first 410 gets seven retries (not three), and then the caller hears of it, as a
    // temporary unavailability.
    expect: () => fail("service_unavailable", 8),
  },
  {
    name: "connection refused",
    refused: true,
    expect: () => ({ ...fail("network_error", 0), maxMs: 1000 }),
  },
  {
    name: "connection dropped, no answer",
    faults: [{ kind: "drop", times: 1 }],
    expect: () => fail("network_error"),
  },
  {
    name: "connection reset mid-body",
    faults: [{ kind: "reset", times: 1 }],
    expect: () => fail("network_error"),
  },
  {
    name: "hang past the timeout",
    faults: [{ kind: "hang", times: 1 }],
    expect: () => ({ ...fail("timeout"), minMs: TIMEOUT_MS, maxMs: TIMEOUT_MS + SLACK_MS }),
  },
  {
    name: "malformed JSON",
    faults: [{ kind: "malformed", times: 1 }],
    expect: () => fail("invalid_response"),
  },
  {
    name: "HTML error page (502)",
    faults: [{ kind: "html", status: 502, times: 1 }],
    expect: (source) =>
      retries(source, 502) ? { outcome: "token", tries: 2 } : fail("service_unavailable"),
  },
  {
    name: "HTML page with 200",
    faults: [{ kind: "html", status: 200, times: 1 }],
    expect: () => fail("invalid_response"),
  },
  {
    name: "empty body",
    faults: [{ kind: "empty", times: 1 }],
    expect: () => fail("invalid_response"),
  },
  {
    name: "no access_token",
    faults: [{ kind: "no-access-token", times: 1 }],
    expect: () => fail("invalid_response"),
  },
  {
    name: "expiry missing",
    faults: [{ kind: "expiry", expiry: "missing", times: 1 }],
    expect: () => fail("invalid_response"),
  },
  {
    name: "expiry garbage",
    faults: [{ kind: "expiry", expiry: "garbage", times: 1 }],
    expect: () => fail("invalid_response"),
  },
  {
    name: "lifetime already past",
    faults: [{ kind: "expiry", expiry: "past", times: 1 }],
    // PROTOCOL.md: a past expiry is not an error, but such a token is never cached.
    expect: () => ({ outcome: "token", tries: 1, expired: true }),
  },
  {
    name: "10 MB body",
    faults: [{ kind: "large-body", bytes: 10 * 1024 * 1024, times: 1 }],
    expect: () => ({ ...fail("invalid_response"), maxMs: 1500 }),
  },
  {
    name: "redirect to another host",
    faults: [{ kind: "redirect", location: REDIRECT_TARGET, times: 1 }],
    expect: () => fail("redirect_refused"),
  },
];

let running: RunningEmulator;
let keys: ReturnType<typeof createLocalJWKSet>;
/** A second server on another loopback address: the redirect target, which must see nothing. */
let target: Server;
let targetUrl: string;
const targetRequests: string[] = [];
/** A port nothing listens on. */
let closedPort: number;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
/** back-end → fault → printed cell. */
const table = new Map<string, Map<EmulatorSource, string>>();

async function listen(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  running = await serveEmulator();
  keys = createLocalJWKSet(running.emulator.jwks);
  target = createServer((request, response) => {
    targetRequests.push(`${request.method} ${request.url}`);
    response.end("stolen");
  });
  // Another host, not only another port; 127.0.0.2 is loopback too on Linux.
  let host = "127.0.0.2";
  const port = await listen(target, host).catch(() => {
    host = "127.0.0.1";
    return listen(target, host);
  });
  targetUrl = `http://${host}:${port}/collect`;
  const probe = createServer();
  closedPort = await listen(probe, "127.0.0.1");
  await new Promise((resolve) => probe.close(resolve));
});

afterAll(async () => {
  process.off("unhandledRejection", onUnhandled);
  await running?.close();
  await new Promise((resolve) => target?.close(resolve));
  printTable();
});

function printTable(): void {
  const header = ["fault \\ back-end", ...EMULATOR_SOURCES];
  const rows = FAULTS.map((fault) => [
    fault.name,
    ...EMULATOR_SOURCES.map((source) => table.get(fault.name)?.get(source) ?? "n/a"),
  ]);
  const widths = header.map((_, column) =>
    Math.max(...[header, ...rows].map((row) => (row[column] ?? "").length)),
  );
  const line = (row: string[]) =>
    row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(" | ");
  console.log(
    [
      "Fault matrix: outcome (token or error code), requests the endpoint saw, time",
      line(header),
      widths.map((width) => "-".repeat(width)).join("-|-"),
      ...rows.map(line),
    ].join("\n"),
  );
}

function scoped(fault: EmulatorFault, source: EmulatorSource, resource: string): EmulatorFault {
  const located =
    fault.kind === "redirect" && fault.location === REDIRECT_TARGET
      ? { ...fault, location: targetUrl }
      : { ...fault };
  // Arc answers a first request with its challenge: let that through, so the fault hits the
  // request that carries the key (the answer-shaping faults only ever touch token answers).
  const arcSkip = source === "azure-arc" && !ANSWER_FAULTS.includes(fault.kind) ? { skip: 1 } : {};
  return { ...located, ...arcSkip, source, resource };
}

function refusedEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [
      name,
      value
        .replace(running.http, `http://127.0.0.1:${closedPort}`)
        .replace(running.https, `https://127.0.0.1:${closedPort}`),
    ]),
  );
}

async function verified(token: AccessTokenResult, resource: string): Promise<void> {
  const { payload } = await jwtVerify(token.accessToken, keys, {
    audience: resource,
    issuer: running.emulator.issuer,
  });
  expect(payload.aud).toBe(resource);
}

const cells = FAULTS.flatMap((fault) =>
  EMULATOR_SOURCES.filter((source) => !fault.only || fault.only.includes(source)).map(
    (source) => [fault.name, source, fault] as const,
  ),
);

describe.concurrent("fault matrix", () => {
  it.for(cells)("%s → %s", async ([name, source, fault], { expect }) => {
    const resource = `https://${FAULTS.indexOf(fault)}.${source}.faults.test`;
    const wanted = fault.expect(source);
    const deadline = fault.client?.deadline ?? DEADLINE_MS;
    const httpCache = createStorage();
    const baseOptions: ManagedIdentityClientOptions = {
      fetch: running.fetch,
      platform: { ...defaultPlatform(), azureArc: { tokensFolder: `${running.arcKeyDirectory}/` } },
      storage: createStorage(),
      httpCache,
      timeout: TIMEOUT_MS,
      deadline: DEADLINE_MS,
      retry: RETRY,
    };
    const env = running.env(source);
    const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      ...baseOptions,
      ...fault.client,
      env: fault.refused ? refusedEnv(env) : env,
    });
    const injected = (fault.faults ?? []).map((one) => scoped(one, source, resource));
    for (const one of injected) running.emulator.addFault(one);
    const seen = () =>
      running.emulator.requests.filter((request) => request.resource === resource).length;
    // Arc's challenge is one more request before the one that carries the key.
    const handshake = source === "azure-arc" && !fault.refused ? 1 : 0;

    const started = performance.now();
    const first = await client.acquireTokenForClient({ resource }).then(
      (token) => ({ token }),
      (error: unknown) => ({ error }),
    );
    const elapsed = Math.round(performance.now() - started);
    const requests = seen();
    const outcome =
      "token" in first
        ? first.token.expiresIn === 0
          ? "expired token"
          : "token"
        : isManagedIdentityError(first.error)
          ? first.error.code
          : `UNTYPED ${String(first.error)}`;
    const row = table.get(name) ?? new Map<EmulatorSource, string>();
    table.set(name, row);
    row.set(source, `${outcome} ${requests}× ${elapsed}ms`);

    // The outcome, typed, within the deadline, after the expected number of attempts.
    if ("error" in first) {
      expect(isManagedIdentityError(first.error), String(first.error)).toBe(true);
      expect(first.error).toMatchObject({ code: wanted.outcome, source });
    } else {
      expect(wanted.outcome).toBe("token");
      await verified(first.token, resource);
      if (wanted.expired) expect(first.token.expiresIn).toBe(0);
      else expect(first.token.expiresIn).toBeGreaterThan(300);
    }
    expect(elapsed).toBeLessThanOrEqual(deadline + SLACK_MS);
    if (wanted.minMs !== undefined) expect(elapsed).toBeGreaterThanOrEqual(wanted.minMs - 5);
    if (wanted.maxMs !== undefined) expect(elapsed).toBeLessThanOrEqual(wanted.maxMs);
    const [fewest, most] = Array.isArray(wanted.tries)
      ? wanted.tries
      : [wanted.tries, wanted.tries];
    expect(requests).toBeGreaterThanOrEqual(fewest + (fewest > 0 ? handshake : 0));
    expect(requests).toBeLessThanOrEqual(most + (most > 0 ? handshake : 0));

    // An answer that asked for a pause is remembered: the same request at once is answered
    // from memory, without touching the network.
    if ("error" in first && isManagedIdentityError(first.error)) {
      const status = first.error.status ?? 0;
      if (status === 429 || status >= 500) {
        await expect(client.acquireTokenForClient({ resource })).rejects.toMatchObject({
          code: first.error.code,
        });
        expect(seen()).toBe(requests);
      }
    }

    // The fault clears: the next call gets a valid token, from the endpoint unless the first
    // call cached a good one. A bad token in the cache would come back here.
    for (const one of injected) running.emulator.removeFault(one);
    await httpCache.clear();
    const healthy = fault.refused
      ? new ManagedIdentityClient(new SystemAssignedManagedIdentity(), { ...baseOptions, env })
      : client;
    const again = await healthy.acquireTokenForClient({ resource });
    await verified(again, resource);
    expect(again.expiresIn).toBeGreaterThan(300);
    if ("token" in first && !wanted.expired) {
      expect(again.tokenSource).toBe("cache");
      expect(again.accessToken).toBe(first.token.accessToken);
    } else {
      expect(again.tokenSource).toBe("identity_provider");
      expect(seen()).toBeGreaterThan(requests);
    }
    expect(targetRequests).toEqual([]);
  });
});

describe("a fetch that does not honour the abort signal", () => {
  // A fetch that ignores `init.signal` (a custom fetch; or on Node 20 a wrapper doing
  // `fetch(new Request(input, init))`, whose abort is lost after a garbage collection) must not
  // hang the call, every caller sharing it, and every later refresh: send() races the signal.
  it("still ends in a timeout error within the deadline (imds, hanging endpoint)", async () => {
    const resource = "https://ignores-abort.imds.faults.test";
    const hang: EmulatorFault = { kind: "hang", times: 1, source: "imds", resource };
    running.emulator.addFault(hang);
    const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: running.env("imds"),
      fetch: (input, init) => globalThis.fetch(input, { ...init, signal: null }),
      timeout: TIMEOUT_MS,
      deadline: 1000,
      retry: RETRY,
      httpCache: false,
    });
    const pending = client.acquireTokenForClient({ resource });
    // Settles only when the emulator closes and releases the hanging request.
    pending.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<"still pending">((resolve) => {
      timer = setTimeout(() => resolve("still pending"), 1000 + SLACK_MS);
    });
    const outcome = await Promise.race([
      pending.then(
        () => "token",
        (error) => error,
      ),
      bound,
    ]);
    clearTimeout(timer);
    running.emulator.removeFault(hang);
    expect(outcome).toMatchObject({ code: "timeout", source: "imds" });
  });
});

describe("after the matrix", () => {
  it("covered every back-end and fault, with no unhandled rejection and nothing sent to the redirect target", async () => {
    // Let any rejection still in flight surface before looking.
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
    expect(targetRequests).toEqual([]);
    expect([...table.values()].reduce((sum, row) => sum + row.size, 0)).toBe(cells.length);
  });
});
