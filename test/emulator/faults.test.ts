import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
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

describe("answers that replace the back-end's", () => {
  it("html: an HTML error page with the given status (502 by default)", async () => {
    const emulator = await createEmulator({
      faults: [{ kind: "html" }, { kind: "html", status: 500 }],
    });
    const first = await emulator.fetch(new Request(imdsUrl(), { headers: { Metadata: "true" } }));
    expect(first.status).toBe(502);
    expect(first.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await first.text()).toMatch(/^<!DOCTYPE html>[\s\S]*502 Bad Gateway/);
    // App Service's policy does not retry a 502.
    running.emulator.addFault({ ...parseFault("html=502"), times: 1 });
    const error = await failure(
      client("app-service").acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error).toMatchObject({ code: "service_unavailable", status: 502 });
    expect(error.message).toMatch(/not JSON/);
  });

  it("redirect: a 307 (or the given 3xx) to another host, which the client refuses", async () => {
    const location = "http://127.0.0.2:9/collect";
    const emulator = await createEmulator({
      faults: [{ kind: "redirect", location, status: 302, times: 1 }],
    });
    const redirected = await emulator.fetch(
      new Request(imdsUrl(), { headers: { Metadata: "true" } }),
    );
    expect(redirected.status).toBe(302);
    expect(redirected.headers.get("location")).toBe(location);
    running.emulator.addFault({ kind: "redirect", location, times: 1 });
    const error = await failure(client("imds").acquireTokenForClient({ resource: RESOURCE }));
    expect(error).toMatchObject({ code: "redirect_refused", status: 307 });
    expect(running.emulator.requests[0]?.faults).toEqual(["redirect"]);
  });
});

describe("answers that reshape a token answer", () => {
  async function answerWith(fault: EmulatorFault, options: { refreshIn?: number } = {}) {
    const emulator = await createEmulator({ faults: [fault], ...options });
    const response = await emulator.fetch(
      new Request(imdsUrl(), { headers: { Metadata: "true" } }),
    );
    return { emulator, response };
  }

  it("no-access-token leaves the rest of the answer as it was", async () => {
    const { response, emulator } = await answerWith({ kind: "no-access-token" });
    const body = await response.json();
    expect(body).not.toHaveProperty("access_token");
    expect(body).toMatchObject({ token_type: "Bearer", resource: RESOURCE });
    expect(emulator.requests[0]?.faults).toEqual(["no-access-token"]);
  });

  it("expiry: missing, garbage, or past (in the type the back-end uses)", async () => {
    const now = Date.UTC(2030, 0, 1) / 1000;
    const emulator = await createEmulator({
      now: () => now * 1000,
      refreshIn: 60,
    });
    const ask = async (expiry: "missing" | "garbage" | "past") => {
      emulator.addFault({ kind: "expiry", expiry, times: 1 });
      return (
        await emulator.fetch(new Request(imdsUrl(), { headers: { Metadata: "true" } }))
      ).json();
    };
    const missing = await ask("missing");
    for (const key of ["expires_on", "expires_in", "ext_expires_in", "refresh_in"])
      expect(missing).not.toHaveProperty(key);
    expect(missing.access_token).toEqual(expect.any(String));
    expect(await ask("garbage")).toMatchObject({
      expires_on: "tomorrow-ish",
      expires_in: "a while",
    });
    const past = await ask("past");
    expect(past).toMatchObject({ expires_on: String(now - 600), expires_in: "0" });
    expect(past).not.toHaveProperty("refresh_in");
    // Workload identity's token endpoint sends numbers.
    expect(parseFault("expiry=past,source=workload-identity")).toEqual({
      kind: "expiry",
      expiry: "past",
      source: "workload-identity",
    });
  });

  it("the client refuses an answer without a token or a readable expiry, and caches no expired token", async () => {
    for (const fault of [
      { kind: "no-access-token" },
      { kind: "expiry", expiry: "missing" },
      { kind: "expiry", expiry: "garbage" },
    ] as const) {
      running.emulator.addFault({ ...fault, times: 1 });
      const error = await failure(client("imds").acquireTokenForClient({ resource: RESOURCE }));
      expect(error.code, fault.kind).toBe("invalid_response");
    }
    running.emulator.addFault({ kind: "expiry", expiry: "past", times: 1 });
    const expiring = client("app-service");
    expect((await expiring.acquireTokenForClient({ resource: RESOURCE })).expiresIn).toBe(0);
    expect((await expiring.acquireTokenForClient({ resource: RESOURCE })).tokenSource).toBe(
      "identity_provider",
    );
  });

  it("reset: the headers and half the body arrive, then the connection goes", async () => {
    const { response, emulator } = await answerWith({ kind: "reset" });
    expect(response.status).toBe(200);
    const reader = (response.body ?? expect.fail("no body")).getReader();
    const first = await reader.read();
    const length = Number(response.headers.get("content-length"));
    expect(first.value?.length).toBe(Math.floor(length / 2));
    await expect(reader.read()).rejects.toThrow(/reset/);
    expect(emulator.requests[0]?.faults).toEqual(["reset"]);
    running.emulator.addFault({ kind: "reset", times: 1 });
    const error = await failure(client("imds").acquireTokenForClient({ resource: RESOURCE }));
    expect(error.code).toBe("network_error");
  });

  it("large-body: a valid token answer padded to the size, streamed as it is read", async () => {
    const size = 3 * 1024 * 1024 + 7;
    const { response } = await answerWith({ kind: "large-body", bytes: size });
    expect(response.headers.get("content-length")).toBe(String(size));
    const text = await response.text();
    expect(text.length).toBe(size);
    expect(JSON.parse(text).access_token).toEqual(expect.any(String));
    running.emulator.addFault({ kind: "large-body", bytes: 10 * 1024 * 1024, times: 1 });
    const error = await failure(client("imds").acquireTokenForClient({ resource: RESOURCE }));
    expect(error.code).toBe("invalid_response");
    expect(error.message).toMatch(/larger than/);
  });

  it("only token answers count: Arc's 401 challenge passes through untouched", async () => {
    running.emulator.addFault({ kind: "no-access-token", times: 1, source: "azure-arc" });
    const error = await failure(client("azure-arc").acquireTokenForClient({ resource: RESOURCE }));
    expect(error.code).toBe("invalid_response");
    expect(running.emulator.requests.map((request) => [request.status, request.faults])).toEqual([
      [401, []],
      [200, ["no-access-token"]],
    ]);
    expect(running.emulator.faults[0]?.remaining).toBe(0);
  });

  it("refreshIn adds refresh_in to every token answer, which the client schedules", async () => {
    const { response } = await answerWith({ kind: "delay", ms: 0 }, { refreshIn: 45 });
    expect(await response.json()).toMatchObject({ refresh_in: "45" });
    const served = await serveEmulator({ refreshIn: 120 });
    try {
      const token = await new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: served.env("workload-identity"),
        fetch: served.fetch,
      }).acquireTokenForClient({ resource: RESOURCE });
      expect(token.refreshOn).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 119);
      expect(token.refreshOn).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 120);
    } finally {
      await served.close();
    }
  });
});

describe("fault scope", () => {
  it("resource: only requests for that resource, from the query or the form", async () => {
    const other = "https://storage.azure.com";
    running.emulator.addFault({ kind: "status", status: 403, resource: other });
    running.emulator.addFault({ kind: "status", status: 403, resource: `${other}/x` });
    expect((await imds()).status).toBe(200);
    const error = await failure(
      client("imds").acquireTokenForClient({ resource: `${other}/.default` }),
    );
    expect(error.status).toBe(403);
    const shell = running.env("cloud-shell");
    const cloudShell = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: shell,
    });
    expect((await failure(cloudShell.acquireTokenForClient({ resource: other }))).status).toBe(403);
    expect(running.emulator.requests.map((request) => request.resource)).toEqual([
      RESOURCE,
      other,
      other,
    ]);
  });

  it("skip: lets that many matching requests through first", async () => {
    running.emulator.addFault({ kind: "status", status: 403, skip: 2, times: 1 });
    expect([(await imds()).status, (await imds()).status, (await imds()).status]).toEqual([
      200, 200, 403,
    ]);
    expect((await imds()).status).toBe(200);
  });

  it("removeFault takes one fault out, leaving the others", async () => {
    const forbidden: EmulatorFault = { kind: "status", status: 403 };
    const gone: EmulatorFault = { kind: "status", status: 404 };
    running.emulator.addFault(forbidden);
    running.emulator.addFault(gone);
    expect(running.emulator.removeFault(forbidden)).toBe(true);
    expect(running.emulator.removeFault(forbidden)).toBe(false);
    expect((await imds()).status).toBe(404);
  });
});

describe("the served emulator's fetch", () => {
  it("streams an https body: a reset mid-body fails the read, a capped read stops the download", async () => {
    const tokenUrl = `${running.https}/${running.emulator.tenantId}/oauth2/v2.0/token`;
    const clientId = running.emulator.userAssigned[0]?.clientId ?? "";
    const form = async () =>
      new URLSearchParams({
        grant_type: "client_credentials",
        client_id: clientId,
        scope: `${RESOURCE}/.default`,
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion: await running.emulator.federatedToken(),
      });
    running.emulator.addFault({ kind: "reset", times: 1 });
    const reset = await running.fetch(tokenUrl, { method: "POST", body: await form() });
    expect(reset.status).toBe(200);
    await expect(reset.text()).rejects.toThrow();
    running.emulator.addFault({ kind: "large-body", bytes: 50 * 1024 * 1024, times: 1 });
    const large = await running.fetch(tokenUrl, { method: "POST", body: await form() });
    const reader = (large.body ?? expect.fail("no body")).getReader();
    expect((await reader.read()).value?.length).toBeGreaterThan(0);
    // Had the whole 50 MB been buffered first, the first chunk would have come after it.
    await reader.cancel();
  });

  it("an abort reaches a hanging request even after a garbage collection (http and https)", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    running.emulator.addFault({ kind: "hang" });
    for (const url of [
      imdsUrl(),
      `${running.https}/${running.emulator.tenantId}/oauth2/v2.0/token`,
    ]) {
      const controller = new AbortController();
      const pending = running.fetch(url, {
        method: url.startsWith("https") ? "POST" : "GET",
        headers: { Metadata: "true" },
        signal: controller.signal,
      });
      // Node's fetch follows the signal of a Request it was handed only through a weak
      // reference: a Request made inside the helper would lose the abort here.
      await new Promise((resolve) => setTimeout(resolve, 20));
      gc();
      controller.abort();
      await expect(pending, url).rejects.toThrow();
    }
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
      ["html", { kind: "html" }],
      ["html=500", { kind: "html", status: 500 }],
      [
        "redirect=http://127.0.0.2:8080/a?b=c,redirect-status=302",
        { kind: "redirect", location: "http://127.0.0.2:8080/a?b=c", status: 302 },
      ],
      ["reset,times=1", { kind: "reset", times: 1 }],
      ["no-access-token", { kind: "no-access-token" }],
      ["expiry=garbage", { kind: "expiry", expiry: "garbage" }],
      [
        "large-body=10485760,resource=https://vault.azure.net,skip=1",
        { kind: "large-body", bytes: 10485760, resource: "https://vault.azure.net", skip: 1 },
      ],
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
      "html=abc",
      "redirect",
      "redirect=not a url",
      "redirect=http://a/,redirect-status=200",
      "status=500,redirect-status=302",
      "reset=1",
      "expiry",
      "expiry=soon",
      "large-body",
      "hang,resource=",
      "hang,skip=-1",
    ]) {
      expect(() => parseFault(spec), spec).toThrow(FaultSpecError);
    }
  });
});
