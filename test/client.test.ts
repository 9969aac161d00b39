import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createStorage, type Storage } from "unstorage";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  CACHE_KEY_PREFIX,
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  ManagedIdentityError,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../src/index.ts";
import { type Handler, startServer, type TestServer } from "./helpers/server.ts";

const RESOURCE = "https://management.azure.com";
let server: TestServer;
let issued = 0;

/** An IMDS that issues a distinct token per request, naming the identity it was issued for. */
const imdsHandler: Handler = (request) => {
  issued += 1;
  const who =
    request.query.client_id ?? request.query.object_id ?? request.query.msi_res_id ?? "system";
  return {
    body: {
      access_token: `token-${issued}-${who}-${request.query.resource}`,
      expires_in: "3600",
      token_type: "Bearer",
    },
  };
};

beforeAll(async () => {
  server = await startServer(imdsHandler);
});
afterAll(() => server.close());
afterEach(() => {
  server.handle(imdsHandler);
  server.requests.length = 0;
  vi.useRealTimers();
});

function client(
  options: ManagedIdentityClientOptions = {},
  identity: ConstructorParameters<
    typeof ManagedIdentityClient
  >[0] = new SystemAssignedManagedIdentity(),
) {
  return new ManagedIdentityClient(identity, {
    env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: server.url },
    // Retries have their own tests (retry.test.ts); here every answer is final.
    retry: false,
    ...options,
  });
}

async function failure(promise: Promise<unknown>): Promise<ManagedIdentityError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ManagedIdentityError);
  return error as ManagedIdentityError;
}

describe("token cache", () => {
  it("serves the second call from the cache without a request", async () => {
    const mi = client();
    const first = await mi.acquireTokenForClient({ resource: RESOURCE });
    const second = await mi.acquireTokenForClient({ resource: `${RESOURCE}/.default` });
    expect(first.tokenSource).toBe("identity_provider");
    expect(second).toMatchObject({
      tokenSource: "cache",
      accessToken: first.accessToken,
      source: "imds",
    });
    expect(second.expiresIn).toBeGreaterThan(3500);
    expect(second.expiresIn).toBeLessThanOrEqual(3600);
    expect(server.requests).toHaveLength(1);
  });

  it("keeps resources apart", async () => {
    const mi = client();
    const a = await mi.acquireTokenForClient({ resource: "https://a.example" });
    const b = await mi.acquireTokenForClient({ resource: "https://b.example" });
    expect(a.accessToken).toContain("https://a.example");
    expect(b.accessToken).toContain("https://b.example");
    expect((await mi.acquireTokenForClient({ resource: "https://a.example" })).accessToken).toBe(
      a.accessToken,
    );
    expect(server.requests).toHaveLength(2);
  });

  it("never serves one identity's token to another, even through one shared storage", async () => {
    const storage = createStorage();
    const identities = [
      new SystemAssignedManagedIdentity(),
      new UserAssignedManagedIdentity({ clientId: "c-1" }),
      new UserAssignedManagedIdentity({ clientId: "c-2" }),
      new UserAssignedManagedIdentity({ objectId: "c-1" }),
      new UserAssignedManagedIdentity({ resourceId: "c-1" }),
    ];
    const tokens = [];
    for (const identity of identities) {
      tokens.push(
        (await client({ storage }, identity).acquireTokenForClient({ resource: RESOURCE }))
          .accessToken,
      );
    }
    expect(new Set(tokens).size).toBe(identities.length);
    // A fresh client over the same storage finds each identity's own token.
    for (const [index, identity] of identities.entries()) {
      const again = await client({ storage }, identity).acquireTokenForClient({
        resource: RESOURCE,
      });
      expect(again).toMatchObject({ tokenSource: "cache", accessToken: tokens[index] });
    }
    expect(server.requests).toHaveLength(identities.length);
  });

  it("shares tokens between clients through the storage, keyed by hash under a fixed prefix", async () => {
    const storage = createStorage();
    const first = await client({ storage }).acquireTokenForClient({ resource: RESOURCE });
    const second = await client({ storage }).acquireTokenForClient({ resource: RESOURCE });
    expect(second).toMatchObject({ tokenSource: "cache", accessToken: first.accessToken });
    const keys = await storage.getKeys();
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(new RegExp(`^${CACHE_KEY_PREFIX}[0-9a-f]{64}$`));
  });

  it("does not serve a token with five minutes or less left", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2026-01-01T00:00:00Z"));
    const mi = client();
    const first = await mi.acquireTokenForClient({ resource: RESOURCE });
    vi.setSystemTime(new Date("2026-01-01T00:54:59Z"));
    expect((await mi.acquireTokenForClient({ resource: RESOURCE })).tokenSource).toBe("cache");
    vi.setSystemTime(new Date("2026-01-01T00:55:00Z"));
    const renewed = await mi.acquireTokenForClient({ resource: RESOURCE });
    expect(renewed.tokenSource).toBe("identity_provider");
    expect(renewed.accessToken).not.toBe(first.accessToken);
  });

  it("never caches a token that is already past its expiry", async () => {
    server.handle(() => ({ body: { access_token: `past-${++issued}`, expires_on: "1000000000" } }));
    const mi = client();
    const first = await mi.acquireTokenForClient({ resource: RESOURCE });
    expect(first).toMatchObject({
      expiresOn: 1000000000,
      expiresIn: 0,
      tokenSource: "identity_provider",
    });
    const second = await mi.acquireTokenForClient({ resource: RESOURCE });
    expect(second.tokenSource).toBe("identity_provider");
    expect(server.requests).toHaveLength(2);
  });

  it("reads a corrupt, foreign or truncated storage entry as a miss and replaces it", async () => {
    const storage = createStorage();
    await client({ storage }).acquireTokenForClient({ resource: RESOURCE });
    const [key] = (await storage.getKeys()) as [string];
    for (const garbage of [
      "{not json",
      { accessToken: "x" },
      { key: "other", accessToken: "x", tokenType: "B", expiresOn: 9e9, resource: RESOURCE },
      42,
    ]) {
      await storage.setItem(key, garbage as never);
      const result = await client({ storage }).acquireTokenForClient({ resource: RESOURCE });
      expect(result.tokenSource).toBe("identity_provider");
      expect(result.accessToken).not.toBe("x");
      expect(await storage.getItem(key)).toMatchObject({ accessToken: result.accessToken });
    }
  });

  it("still returns the token when the storage fails", async () => {
    const broken = createStorage();
    broken.getItem = () => Promise.reject(new Error("storage down"));
    broken.setItem = () => Promise.reject(new Error("storage down"));
    const mi = client({ storage: broken as Storage });
    expect((await mi.acquireTokenForClient({ resource: RESOURCE })).tokenSource).toBe(
      "identity_provider",
    );
    // This process still remembers it.
    expect((await mi.acquireTokenForClient({ resource: RESOURCE })).tokenSource).toBe("cache");
  });
});

describe("claims challenge", () => {
  it("skips the cache read, fetches a new token and caches it", async () => {
    const mi = client();
    const first = await mi.acquireTokenForClient({ resource: RESOURCE });
    const challenged = await mi.acquireTokenForClient({
      resource: RESOURCE,
      claimsChallenge: '{"access_token":{"nbf":{"essential":true}}}',
    });
    expect(challenged.tokenSource).toBe("identity_provider");
    expect(challenged.accessToken).not.toBe(first.accessToken);
    expect(await mi.acquireTokenForClient({ resource: RESOURCE })).toMatchObject({
      tokenSource: "cache",
      accessToken: challenged.accessToken,
    });
    // The claims are never sent to the managed identity endpoint.
    expect(JSON.stringify(server.requests)).not.toContain("nbf");
  });
});

describe("claims challenge racing other requests", () => {
  it("a plain request that finishes after a claims request does not put the revoked token back", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    server.handle(async (request) => {
      if (server.requests.length === 1) {
        await gate;
        return { body: { access_token: "old-revoked", expires_in: 3600 } };
      }
      return imdsHandler(request);
    });
    const mi = client();
    const plain = mi.acquireTokenForClient({ resource: RESOURCE });
    while (server.requests.length === 0) await new Promise((resolve) => setImmediate(resolve));
    const challenged = await mi.acquireTokenForClient({
      resource: RESOURCE,
      claimsChallenge: "{}",
    });
    release();
    expect((await plain).accessToken).toBe("old-revoked");
    const next = await mi.acquireTokenForClient({ resource: RESOURCE });
    expect(next).toMatchObject({ tokenSource: "cache", accessToken: challenged.accessToken });
  });

  it("plain callers that come while a claims request runs join it", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    server.handle(async (request) => {
      await gate;
      return imdsHandler(request);
    });
    const mi = client();
    const challenged = mi.acquireTokenForClient({ resource: RESOURCE, claimsChallenge: "{}" });
    // The claims request is under way (the server holds it) before the plain caller comes.
    while (server.requests.length === 0) await new Promise((resolve) => setImmediate(resolve));
    const plain = mi.acquireTokenForClient({ resource: RESOURCE });
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const [a, b] = await Promise.all([challenged, plain]);
    expect(b.accessToken).toBe(a.accessToken);
    expect(server.requests).toHaveLength(1);
  });
});

describe("concurrent callers", () => {
  it("bringing the same claims challenge at once share one fresh request", async () => {
    const mi = client();
    const first = await mi.acquireTokenForClient({ resource: RESOURCE });
    const claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}';
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        mi.acquireTokenForClient({ resource: RESOURCE, claimsChallenge: claims }),
      ),
    );
    expect(server.requests).toHaveLength(2);
    expect(new Set(results.map((result) => result.accessToken)).size).toBe(1);
    expect(results[0]?.accessToken).not.toBe(first.accessToken);
    // A different challenge is a different request.
    await mi.acquireTokenForClient({ resource: RESOURCE, claimsChallenge: `${claims} ` });
    expect(server.requests).toHaveLength(3);
  });

  it("share one request for the same identity and resource", async () => {
    const mi = client();
    const results = await Promise.all(
      Array.from({ length: 1000 }, () => mi.acquireTokenForClient({ resource: RESOURCE })),
    );
    expect(server.requests).toHaveLength(1);
    expect(new Set(results.map((result) => result.accessToken)).size).toBe(1);
  });

  it("all get the same error when the shared request fails", async () => {
    server.handle(() => ({
      status: 400,
      body: { error: "invalid_request", error_description: "Identity not found" },
    }));
    const mi = client();
    const settled = await Promise.allSettled(
      Array.from({ length: 50 }, () => mi.acquireTokenForClient({ resource: RESOURCE })),
    );
    expect(server.requests).toHaveLength(1);
    const reasons = settled.map((result) =>
      result.status === "rejected" ? result.reason : undefined,
    );
    expect(new Set(reasons).size).toBe(1);
    expect(reasons[0]).toMatchObject({ code: "invalid_request", status: 400 });
  });

  it("one caller's abort does not abort the request the others share", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    server.handle(async (request) => {
      await gate;
      return imdsHandler(request);
    });
    const mi = client();
    const controller = new AbortController();
    const aborted = mi.acquireTokenForClient({ resource: RESOURCE, signal: controller.signal });
    const others = Promise.all([
      mi.acquireTokenForClient({ resource: RESOURCE }),
      mi.acquireTokenForClient({ resource: RESOURCE }),
    ]);
    controller.abort();
    expect(await failure(aborted)).toMatchObject({ code: "aborted" });
    release();
    const [a, b] = await others;
    expect(a.accessToken).toBe(b.accessToken);
    expect(server.requests).toHaveLength(1);
  });
});

describe("transport failures", () => {
  it("network_error when nothing listens", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const error = await failure(
      client({
        env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: `http://127.0.0.1:${port}` },
      }).acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error).toMatchObject({ code: "network_error", source: "imds" });
    expect(error.status).toBeUndefined();
  });

  it("timeout when the endpoint does not answer in time", async () => {
    server.handle(() => new Promise(() => {}));
    const error = await failure(
      client({ timeout: 50 }).acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error).toMatchObject({ code: "timeout", source: "imds" });
    expect(error.message).toContain("50 ms");
  });

  it("never follows a redirect: the target receives nothing", async () => {
    const target = await startServer(imdsHandler);
    try {
      server.handle(() => ({ status: 302, headers: { location: `${target.url}/steal` } }));
      const error = await failure(client().acquireTokenForClient({ resource: RESOURCE }));
      expect(error).toMatchObject({ code: "redirect_refused", status: 302 });
      expect(target.requests).toHaveLength(0);
    } finally {
      await target.close();
    }
  });

  it("refuses an environment endpoint that is not local, before sending anything", async () => {
    const requests: string[] = [];
    const fetch = async (input: Request | string | URL) => {
      requests.push(String(input));
      return new Response("{}");
    };
    const error = await failure(
      client({
        fetch,
        env: { IDENTITY_ENDPOINT: "http://attacker.example/token", IDENTITY_HEADER: "s" },
      }).acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error).toMatchObject({ code: "endpoint_not_allowed", source: "app-service" });
    expect(requests).toHaveLength(0);
  });

  it("uses the caller's fetch", async () => {
    const seen: string[] = [];
    const fetch = async (input: Request | string | URL, init?: RequestInit) => {
      seen.push(String(input));
      return globalThis.fetch(input, init);
    };
    await client({ fetch }).acquireTokenForClient({ resource: RESOURCE });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toContain("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=");
  });
});

describe("bad responses", () => {
  it.each([
    [{ status: 200, body: "<html>hi</html>" }, "invalid_response", "the body is not JSON"],
    [{ status: 200, body: "" }, "invalid_response", "the body is not JSON"],
    [
      { status: 200, body: { token_type: "Bearer", expires_in: 60 } },
      "invalid_response",
      "no usable access_token",
    ],
    [
      { status: 200, body: { access_token: "t" } },
      "invalid_response",
      "no readable expires_on or expires_in",
    ],
    [
      { status: 502, body: "<html>Bad Gateway</html>" },
      "service_unavailable",
      "HTTP 502 with a body that is not JSON",
    ],
    [{ status: 503, body: "" }, "service_unavailable", "HTTP 503 with an empty body"],
    [{ status: 429, body: { error: "slow_down" } }, "throttled", "HTTP 429: slow_down"],
    [{ status: 404, body: { unexpected: true } }, "not_found", "error body of an unknown shape"],
    [
      { status: 400, body: { error: "invalid_resource", error_description: "bad" } },
      "invalid_request",
      "invalid_resource: bad",
    ],
    [
      {
        status: 401,
        body: { error: { code: "Unauthorized", message: "no", correlationId: "x-1" } },
      },
      "unauthorized_client",
      "Unauthorized: no",
    ],
  ])("%j is %s", async (reply, code, message) => {
    server.handle(() => reply);
    const error = await failure(client().acquireTokenForClient({ resource: RESOURCE }));
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
    if (reply.status !== 200) expect(error.status).toBe(reply.status);
  });

  it("refuses a body far larger than a token response", async () => {
    server.handle(() => ({
      body: { access_token: "t", expires_in: 60, padding: "x".repeat(1024 * 1024) },
    }));
    const error = await failure(client().acquireTokenForClient({ resource: RESOURCE }));
    expect(error).toMatchObject({ code: "invalid_response" });
    expect(error.message).toContain("larger than");
  });

  it("never puts a token it got into an error", async () => {
    server.handle(() => ({
      status: 500,
      body: {
        error: "server_error",
        error_description: "token eyJhbGciOi.eyJzdWIiOiIxIn0.sig leaked",
      },
    }));
    const error = await failure(client().acquireTokenForClient({ resource: RESOURCE }));
    expect(error.message).not.toContain("eyJhbGciOi");
  });
});

describe("options", () => {
  it.each([
    [{ source: "mainframe" }, "source", "Known sources: "],
    [{ timeout: 0 }, "timeout", ""],
    [{ timeout: "5s" }, "timeout", ""],
    [{ storage: {} }, "storage", "unstorage Storage"],
    [{ fetch: "fetch" }, "fetch", ""],
    [{ env: "A=1" }, "env", ""],
    [{ allowedHosts: [""] }, "allowedHosts", ""],
    [{ allowedHosts: ["http://proxy:8080"] }, "allowedHosts", "without scheme or port"],
    [{ clientCapabilities: ["cp 1"] }, "clientCapabilities", ""],
    [{ tiemout: 5 }, "tiemout", ""],
  ])("refuses %j", (options, path, extra) => {
    let caught: unknown;
    try {
      new ManagedIdentityClient(new SystemAssignedManagedIdentity(), options as never);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: "invalid_option" });
    expect((caught as Error).message).toContain(`option ${path}`);
    expect((caught as Error).message).toContain(extra);
  });

  it("reads only the strings of an env that also holds bindings (a Worker's env)", () => {
    const env = {
      IDENTITY_ENDPOINT: "http://127.0.0.1/x",
      IDENTITY_HEADER: "s",
      TOKENS: { get() {} },
    };
    expect(client({ env }).getManagedIdentitySource()).toBe("app-service");
    expect(
      client({
        env: { IDENTITY_ENDPOINT: "http://127.0.0.1/x", IDENTITY_HEADER: 42 },
      }).getManagedIdentitySource(),
    ).toBe("imds");
  });

  it("detects App Service from its variables, treating empty values as unset", () => {
    expect(
      client({
        env: { IDENTITY_ENDPOINT: "http://127.0.0.1/x", IDENTITY_HEADER: "s" },
      }).getManagedIdentitySource(),
    ).toBe("app-service");
    expect(
      client({
        env: { IDENTITY_ENDPOINT: "http://127.0.0.1/x", IDENTITY_HEADER: "" },
      }).getManagedIdentitySource(),
    ).toBe("imds");
  });

  it("detects workload identity from a user-assigned client id when AZURE_CLIENT_ID is unset", () => {
    const env = {
      AZURE_FEDERATED_TOKEN_FILE: "/var/run/token",
      AZURE_TENANT_ID: "contoso.onmicrosoft.com",
    };
    expect(
      client(
        { env },
        new UserAssignedManagedIdentity({ clientId: "c-1" }),
      ).getManagedIdentitySource(),
    ).toBe("workload-identity");
    expect(client({ env }).getManagedIdentitySource()).toBe("imds");
  });

  it("a forced source wins over detection, and says what it lacks", async () => {
    const forcedImds = client({
      source: "imds",
      env: {
        AZURE_POD_IDENTITY_AUTHORITY_HOST: server.url,
        IDENTITY_ENDPOINT: "http://127.0.0.1:1/x",
        IDENTITY_HEADER: "s",
      },
    });
    expect(forcedImds.getManagedIdentitySource()).toBe("imds");
    expect((await forcedImds.acquireTokenForClient({ resource: RESOURCE })).source).toBe("imds");
    const error = await failure(
      client({ source: "app-service", env: {} }).acquireTokenForClient({ resource: RESOURCE }),
    );
    expect(error).toMatchObject({ code: "source_unavailable", source: "app-service" });
    expect(error.message).toContain("IDENTITY_ENDPOINT");
  });

  it("checks the resource before any request", async () => {
    const error = await failure(client().acquireTokenForClient({ resource: "a b" }));
    expect(error.code).toBe("invalid_resource");
    expect(await failure(client().acquireTokenForClient(undefined as never))).toMatchObject({
      code: "invalid_resource",
    });
    expect(server.requests).toHaveLength(0);
  });
});
