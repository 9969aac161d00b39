import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createEmulator,
  EMULATOR_PATHS,
  type EmulatorFault,
  FaultSpecError,
  parseFault,
  type RunningEmulator,
  serveEmulator,
} from "../../src/emulator/index.ts";
import {
  ManagedIdentityClient,
  type ManagedIdentityError,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../../src/index.ts";
import { defaultPlatform } from "../../src/platform/index.ts";

const RESOURCE = "https://vault.azure.net";
let running: RunningEmulator;

beforeAll(async () => {
  running = await serveEmulator();
});
afterEach(() => {
  running.emulator.clearFaults();
  running.emulator.requests.length = 0;
});
afterAll(() => running.close());

const imdsUrl = () =>
  `${running.http}${EMULATOR_PATHS.imds}?api-version=2018-02-01&resource=${encodeURIComponent(RESOURCE)}`;
const imds = () => fetch(imdsUrl(), { headers: { Metadata: "true" } });

function client(
  source: "imds" | "azure-arc" | "app-service",
  options: { clientId?: string; timeout?: number } = {},
) {
  return new ManagedIdentityClient(
    options.clientId
      ? new UserAssignedManagedIdentity({ clientId: options.clientId })
      : new SystemAssignedManagedIdentity(),
    {
      env: running.env(source),
      platform: { ...defaultPlatform(), azureArc: { tokensFolder: `${running.arcKeyDirectory}/` } },
      ...(options.timeout ? { timeout: options.timeout } : {}),
    },
  );
}

async function failure(promise: Promise<unknown>): Promise<ManagedIdentityError> {
  try {
    await promise;
  } catch (error) {
    return error as ManagedIdentityError;
  }
  return expect.fail("expected the token request to fail");
}

describe("status faults", () => {
  it("answers the status with Retry-After in seconds, for the given number of requests", async () => {
    running.emulator.addFault({ kind: "status", status: 429, retryAfter: 5, times: 1 });
    const throttled = await imds();
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("retry-after")).toBe("5");
    expect(await throttled.json()).toMatchObject({ error: "server_error" });
    expect((await imds()).status).toBe(200);
    expect(running.emulator.requests.map((request) => request.faults)).toEqual([["status"], []]);
  });

  it("sends Retry-After as an HTTP date, relative to the emulator's clock", async () => {
    const now = Date.UTC(2030, 0, 2, 3, 4, 5);
    const emulator = await createEmulator({
      now: () => now,
      faults: [parseFault("status=503,retry-after-date=30")],
    });
    const response = await emulator.fetch(
      new Request(imdsUrl(), { headers: { Metadata: "true" } }),
    );
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("Wed, 02 Jan 2030 03:04:35 GMT");
    const fixed = await createEmulator({
      faults: [{ kind: "status", status: 503, retryAfter: new Date(Date.UTC(2031, 5, 1)) }],
    });
    const dated = await fixed.fetch(new Request(imdsUrl(), { headers: { Metadata: "true" } }));
    expect(dated.headers.get("retry-after")).toBe("Sun, 01 Jun 2031 00:00:00 GMT");
  });

  it("uses each back-end's own error format, and a source scope leaves other back-ends alone", async () => {
    // 403 rather than a 5xx: the client retries those, with real back-off delays.
    running.emulator.addFault({ kind: "status", status: 403, source: "app-service" });
    expect((await imds()).status).toBe(200);
    const error = await failure(
      client("app-service").acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error.code).toBe("unauthorized_client");
    expect(error.status).toBe(403);
    expect(error.correlationId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("timing faults", () => {
  it("delays the answer by the given time (the emulator's sleep is injectable)", async () => {
    const waits: number[] = [];
    const emulator = await createEmulator({
      faults: [{ kind: "delay", ms: 1500 }],
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    const response = await emulator.fetch(
      new Request(imdsUrl(), { headers: { Metadata: "true" } }),
    );
    expect(waits).toEqual([1500]);
    expect(response.status).toBe(200);
    expect(emulator.requests[0]?.faults).toEqual(["delay"]);
  });

  it("a real delay holds the answer back until the client's timeout fires", async () => {
    running.emulator.addFault({ kind: "delay", ms: 60_000 });
    const error = await failure(
      client("imds", { timeout: 150 }).acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error.code).toBe("timeout");
  });

  it("hangs until the client gives up; close() releases the hanging request", async () => {
    running.emulator.addFault({ kind: "hang" });
    const error = await failure(
      client("imds", { timeout: 150 }).acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error.code).toBe("timeout");
    const emulator = await createEmulator({ faults: [{ kind: "hang" }] });
    const pending = emulator.fetch(new Request(imdsUrl(), { headers: { Metadata: "true" } }));
    emulator.close();
    expect((await pending).status).toBe(503);
    expect(emulator.requests[0]).toMatchObject({ faults: ["hang"], status: 0 });
  });

  it("answers IMDS 410 during the upgrade window, then tokens again (fake clock)", async () => {
    let now = Date.now();
    const emulator = await createEmulator({
      now: () => now,
      faults: [{ kind: "imds-410", seconds: 70 }],
    });
    const ask = () => emulator.fetch(new Request(imdsUrl(), { headers: { Metadata: "true" } }));
    expect((await ask()).status).toBe(410);
    now += 69_000;
    expect((await ask()).status).toBe(410);
    now += 1_000;
    expect((await ask()).status).toBe(200);
    // The window is IMDS's only.
    const appService = await emulator.fetch(
      new Request(
        `http://127.0.0.1${EMULATOR_PATHS["app-service"]}?api-version=2019-08-01&resource=x`,
        {
          headers: { "X-IDENTITY-HEADER": emulator.secrets.appService },
        },
      ),
    );
    expect(appService.status).toBe(200);
  });
});

describe("body and connection faults", () => {
  it("malformed and empty bodies are 200s the client cannot read", async () => {
    running.emulator.addFault({ kind: "malformed", times: 1 });
    const malformed = await failure(client("imds").acquireTokenForClient({ resource: RESOURCE }));
    expect(malformed.code).toBe("invalid_response");
    expect(malformed.status).toBe(200);
    running.emulator.addFault({ kind: "empty", times: 1 });
    const raw = await imds();
    expect(raw.status).toBe(200);
    expect(await raw.text()).toBe("");
    running.emulator.addFault({ kind: "empty", times: 1 });
    const empty = await failure(client("imds").acquireTokenForClient({ resource: RESOURCE }));
    expect(empty.code).toBe("invalid_response");
  });

  it("drops the connection without an answer", async () => {
    running.emulator.addFault({ kind: "drop", times: 1 });
    const error = await failure(client("imds").acquireTokenForClient({ resource: RESOURCE }));
    expect(error.code).toBe("network_error");
    expect(running.emulator.requests[0]).toMatchObject({ faults: ["drop"], status: 0 });
    expect((await client("imds").acquireTokenForClient({ resource: RESOURCE })).tokenSource).toBe(
      "identity_provider",
    );
  });

  it("without a server to drop the socket, the body fails mid-stream", async () => {
    const emulator = await createEmulator({ faults: [{ kind: "drop" }] });
    const response = await emulator.fetch(
      new Request(imdsUrl(), { headers: { Metadata: "true" } }),
    );
    await expect(response.text()).rejects.toThrow();
  });
});

describe("wrong-identity", () => {
  it("makes Arc answer as the system identity, which the client's echo check refuses", async () => {
    const clientId = running.emulator.userAssigned[0]?.clientId ?? "";
    const good = await client("azure-arc", { clientId }).acquireTokenForClient({
      resource: RESOURCE,
    });
    expect(good.tokenSource).toBe("identity_provider");
    running.emulator.addFault({ kind: "wrong-identity", source: "azure-arc" });
    const error = await failure(
      client("azure-arc", { clientId }).acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error.code).toBe("identity_mismatch");
    const answered = running.emulator.requests.filter((request) => request.status === 200).at(-1);
    expect(answered?.faults).toEqual(["wrong-identity"]);
  });
});

describe("parseFault (the CLI's --fault)", () => {
  it("reads every fault kind and its options", () => {
    const cases: [string, EmulatorFault][] = [
      [
        "status=429,retry-after=5,times=2,source=imds",
        { kind: "status", status: 429, retryAfter: 5, times: 2, source: "imds" },
      ],
      ["status=503,retry-after-date=30", { kind: "status", status: 503, retryAfterDateIn: 30 }],
      ["delay=250", { kind: "delay", ms: 250 }],
      ["hang", { kind: "hang" }],
      ["malformed", { kind: "malformed" }],
      ["empty,times=1", { kind: "empty", times: 1 }],
      ["drop", { kind: "drop" }],
      ["imds-410=70", { kind: "imds-410", seconds: 70 }],
      ["wrong-identity,source=azure-arc", { kind: "wrong-identity", source: "azure-arc" }],
    ];
    for (const [spec, fault] of cases) expect(parseFault(spec), spec).toEqual(fault);
  });

  it("refuses what it cannot read with a FaultSpecError", () => {
    for (const spec of [
      "",
      "explode",
      "status=99",
      "status=abc",
      "delay",
      "hang=3",
      "drop,source=mars",
      "hang,color=red",
      "delay=10,retry-after=3",
    ]) {
      expect(() => parseFault(spec), spec).toThrow(FaultSpecError);
    }
  });
});
