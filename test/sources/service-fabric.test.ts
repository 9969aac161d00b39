import { createStorage } from "unstorage";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  ManagedIdentityError,
  SystemAssignedManagedIdentity,
} from "../../src/index.ts";
import { createWebPlatform } from "../../src/platform/web.ts";
import { normalizeThumbprint, serviceFabric } from "../../src/sources/service-fabric.ts";
import { type RecordedRequest, startServer, type TestServer } from "../helpers/server.ts";
import {
  createCertificate,
  type RawTlsServer,
  receivedText,
  startRawTlsServer,
} from "../platform/tls.ts";
import { sourceConformance, sourceContext } from "./conformance.ts";

const SECRET = "service-fabric-secret-value";
const TOKEN_PATH = "/metadata/identity/oauth2/token";
const SYSTEM = { kind: "systemAssigned" } as const;
const [certificate, impostor] = await Promise.all([
  createCertificate(),
  createCertificate("impostor"),
]);

const environment = (url: string, thumbprint = certificate.fingerprint) => ({
  IDENTITY_ENDPOINT: `${url}${TOKEN_PATH}`,
  IDENTITY_HEADER: SECRET,
  // As certificate tools print it: upper case with colons. The client normalises it.
  IDENTITY_SERVER_THUMBPRINT: thumbprint,
});

const success = (token: string, expiresOn: number) => ({
  access_token: token,
  expires_on: expiresOn,
  resource: "https://vault.azure.net",
  token_type: "Bearer",
});

sourceConformance({
  source: "service-fabric",
  env: (url) => environment(url),
  path: TOKEN_PATH,
  method: "GET",
  parameters: { "api-version": "2019-07-01-preview" },
  headers: { secret: SECRET },
  // User-assigned identities are configured in the cluster: every id kind is refused.
  idParameters: {},
  success,
  error: {
    status: 401,
    body: {
      error: {
        correlationId: "c0ffee00-0000-4000-8000-000000000002",
        code: "SecretHeaderNotFound",
        message: "Secret is not found in the request headers.",
      },
    },
    code: "unauthorized_client",
    serviceCode: "SecretHeaderNotFound",
    correlationId: "c0ffee00-0000-4000-8000-000000000002",
  },
  server: { tls: { key: certificate.key, cert: certificate.cert } },
});

describe("service-fabric", () => {
  let server: TestServer;
  const expiresOn = Math.floor(Date.now() / 1000) + 3600;
  beforeAll(async () => {
    server = await startServer(() => ({ body: success("test_token", expiresOn) }), {
      tls: { key: certificate.key, cert: certificate.cert },
    });
  });
  afterAll(() => server.close());
  afterEach(() => {
    server.requests.length = 0;
    server.handle(() => ({ body: success("test_token", expiresOn) }));
  });

  const client = (
    env: Record<string, string> = environment(server.url),
    options: ManagedIdentityClientOptions = {},
  ) =>
    new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env,
      storage: createStorage(),
      retry: false,
      ...options,
    });
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => {
        throw new Error("expected a failure");
      },
      (caught: unknown) => caught as ManagedIdentityError,
    );

  describe("thumbprint", () => {
    it.each([
      ["upper case with colons", certificate.fingerprint],
      ["lower case", certificate.thumbprint],
      ["with spaces", certificate.fingerprint.replaceAll(":", " ")],
      ["with a trailing newline", `${certificate.thumbprint.toUpperCase()}\n`],
    ])("accepts it %s", (_name, value) => {
      expect(normalizeThumbprint(value)).toBe(certificate.thumbprint);
    });

    it.each([
      ["39 hex characters", certificate.thumbprint.slice(1)],
      ["41 hex characters", `${certificate.thumbprint}a`],
      ["a non-hex character", `g${certificate.thumbprint.slice(1)}`],
      ["a SHA-256 thumbprint", "ab".repeat(32)],
      ["dashes", certificate.fingerprint.replaceAll(":", "-")],
    ])("refuses %s", (_name, value) => {
      expect(normalizeThumbprint(value)).toBeUndefined();
    });

    it("puts the normalised pin on the request", async () => {
      const request = await serviceFabric.createRequest(sourceContext(environment(server.url)));
      expect(request.pinnedThumbprint).toBe(certificate.thumbprint);
      expect(request.headers).toEqual({ secret: SECRET });
      expect(request.secrets).toEqual([SECRET]);
    });

    it("fails clearly before any connection when the thumbprint is malformed", async () => {
      const raw = await startRawTlsServer(certificate);
      try {
        const error = await failure(
          client(environment(raw.url, "not-a-thumbprint")).acquireTokenForClient({
            resource: "https://vault.azure.net",
          }),
        );
        expect(error).toBeInstanceOf(ManagedIdentityError);
        expect(error).toMatchObject({ code: "source_unavailable", source: "service-fabric" });
        expect(error.message).toMatch(/IDENTITY_SERVER_THUMBPRINT is not a SHA-1/);
        expect(raw.connections).toHaveLength(0);
      } finally {
        await raw.close();
      }
    });
  });

  describe("pinned TLS", () => {
    let raw: RawTlsServer | undefined;
    afterEach(async () => {
      await raw?.close();
      raw = undefined;
    });

    it("on a certificate that does not match the pin fails and the server receives nothing", async () => {
      raw = await startRawTlsServer(impostor);
      const error = await failure(
        client(environment(raw.url)).acquireTokenForClient({ resource: "https://vault.azure.net" }),
      );
      expect(error).toBeInstanceOf(ManagedIdentityError);
      expect(error).toMatchObject({ code: "certificate_mismatch", source: "service-fabric" });
      expect(error.message).toMatch(/thumbprint is not the pinned one; nothing was sent/);
      expect(JSON.stringify(error)).not.toContain(SECRET);
      expect(String(error)).not.toContain(SECRET);
      expect(raw.connections).toHaveLength(1);
      await raw.connections[0]?.closed;
      expect(receivedText(raw.connections[0])).toBe("");
    });

    it("sends the secret only over the pinned connection", async () => {
      raw = await startRawTlsServer(
        certificate,
        () =>
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify(success("pinned-token", expiresOn))}`,
      );
      const token = await client(environment(raw.url)).acquireTokenForClient({
        resource: "https://vault.azure.net",
      });
      expect(token.accessToken).toBe("pinned-token");
      expect(receivedText(raw.connections[0])).toContain(`secret: ${SECRET}\r\n`);
    });

    it("gives up on a pinned endpoint that never answers after the client's timeout", async () => {
      raw = await startRawTlsServer(certificate, () => undefined);
      const error = await failure(
        client(environment(raw.url), { timeout: 100 }).acquireTokenForClient({
          resource: "https://vault.azure.net",
        }),
      );
      expect(error).toMatchObject({ code: "timeout", source: "service-fabric" });
      // The connection is closed, not left open.
      await raw.connections[0]?.closed;
    });

    it("never uses a caller's fetch", async () => {
      const calls: unknown[] = [];
      const token = await client(environment(server.url), {
        fetch: async (input) => {
          calls.push(input);
          return new Response("{}", { status: 500 });
        },
      }).acquireTokenForClient({ resource: "https://vault.azure.net" });
      expect(token.accessToken).toBe("test_token");
      expect(calls).toEqual([]);
      expect(server.requests).toHaveLength(1);
    });

    it("fails closed where the runtime cannot pin, sending nothing", async () => {
      raw = await startRawTlsServer(certificate);
      const error = await failure(
        client(environment(raw.url), {
          platform: createWebPlatform("workerd"),
        }).acquireTokenForClient({ resource: "https://vault.azure.net" }),
      );
      expect(error).toMatchObject({ code: "capability_unavailable", source: "service-fabric" });
      expect(error.message).toMatch(/workerd/);
      expect(raw.connections).toHaveLength(0);
    });

    it("refuses an http endpoint before any request", async () => {
      const plain = await startServer(() => ({ body: success("t", expiresOn) }));
      try {
        const error = await failure(
          client(environment(plain.url)).acquireTokenForClient({
            resource: "https://vault.azure.net",
          }),
        );
        expect(error).toMatchObject({ code: "endpoint_not_allowed", source: "service-fabric" });
        expect(error.message).toMatch(/must use https/);
        expect(plain.requests).toHaveLength(0);
      } finally {
        await plain.close();
      }
    });
  });

  describe("revocation and client capabilities", () => {
    it("sends token_sha256_to_refresh for the cached token with a claims challenge", async () => {
      const mi = client();
      await mi.acquireTokenForClient({ resource: "https://vault.azure.net" });
      server.handle(() => ({ body: success("fresh-token", expiresOn) }));
      const fresh = await mi.acquireTokenForClient({
        resource: "https://vault.azure.net",
        claimsChallenge: '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}',
      });
      expect(fresh.accessToken).toBe("fresh-token");
      const [first, second] = server.requests as [RecordedRequest, RecordedRequest];
      expect(first.query).not.toHaveProperty("token_sha256_to_refresh");
      expect(second.query).toEqual({
        "api-version": "2019-07-01-preview",
        resource: "https://vault.azure.net",
        token_sha256_to_refresh: "cc0af97287543b65da2c7e1476426021826cab166f1e063ed012b855ff819656",
      });
      // The claims themselves are never sent.
      expect(JSON.stringify(second)).not.toContain("essential");
    });

    it("names the revoked token even in its last five minutes, when it is no longer served", async () => {
      vi.useFakeTimers({ toFake: ["Date"] });
      try {
        const mi = client();
        await mi.acquireTokenForClient({ resource: "https://vault.azure.net" });
        // 200 s before expiry the cached token is no longer served, but it is still valid.
        vi.setSystemTime((expiresOn - 200) * 1000);
        server.handle(() => ({ body: success("fresh-token", expiresOn + 3600) }));
        await mi.acquireTokenForClient({
          resource: "https://vault.azure.net",
          claimsChallenge: "{}",
        });
        expect(server.requests[1]?.query.token_sha256_to_refresh).toBe(
          "cc0af97287543b65da2c7e1476426021826cab166f1e063ed012b855ff819656",
        );
      } finally {
        vi.useRealTimers();
      }
    });

    it("sends no token_sha256_to_refresh when no token is cached", async () => {
      await client().acquireTokenForClient({
        resource: "https://vault.azure.net",
        claimsChallenge: "{}",
      });
      expect(server.requests[0]?.query).not.toHaveProperty("token_sha256_to_refresh");
    });

    it("sends xms_cc with the client capabilities on every request", async () => {
      const mi = client(environment(server.url), { clientCapabilities: ["cp1", "cp2"] });
      await mi.acquireTokenForClient({ resource: "https://vault.azure.net" });
      await mi.acquireTokenForClient({
        resource: "https://vault.azure.net",
        claimsChallenge: "{}",
      });
      expect(server.requests.map((request) => request.query.xms_cc)).toEqual([
        "cp1,cp2",
        "cp1,cp2",
      ]);
      // Capabilities do not bypass the cache.
      await mi.acquireTokenForClient({ resource: "https://vault.azure.net" });
      expect(server.requests).toHaveLength(2);
    });
  });

  describe("errors", () => {
    it.each([
      ["SecretHeaderNotFound", 401, "unauthorized_client"],
      ["ManagedIdentityNotFound", 400, "invalid_client"],
      ["ArgumentNullOrEmpty", 400, "invalid_scope"],
      ["SomethingElse", 400, "invalid_request"],
      // A code that names an Object.prototype member maps like any other unknown code.
      ["constructor", 400, "invalid_request"],
      ["SomethingElse", 404, "invalid_request"],
      ["SomethingElse", 503, "service_unavailable"],
    ] as const)("maps %s (HTTP %d) to %s", async (serviceCode, status, code) => {
      server.handle(() => ({
        status,
        body: { error: { correlationId: "corr-1", code: serviceCode, message: "failed" } },
      }));
      const error = await failure(
        client().acquireTokenForClient({ resource: "https://x.example" }),
      );
      expect(error).toMatchObject({ code, status, serviceCode, correlationId: "corr-1" });
    });

    it("requires token_type in the response", async () => {
      server.handle(() => ({ body: { access_token: "t", expires_on: expiresOn } }));
      const error = await failure(
        client().acquireTokenForClient({ resource: "https://x.example" }),
      );
      expect(error).toMatchObject({ code: "invalid_response" });
      expect(error.message).toMatch(/token_type/);
    });

    it("never puts the secret in an error, even when the service echoes it", async () => {
      server.handle((request) => ({
        status: 401,
        body: { error: { code: "SecretHeaderNotFound", message: `bad ${request.headers.secret}` } },
      }));
      const error = await failure(
        client().acquireTokenForClient({ resource: "https://x.example" }),
      );
      expect(error.message).toContain("[redacted]");
      expect(JSON.stringify(error)).not.toContain(SECRET);
      expect(String(error)).not.toContain(SECRET);
    });
  });

  describe("detection", () => {
    it("wins over App Service, whose variables it also sets", () => {
      expect(client().getManagedIdentitySource()).toBe("service-fabric");
      const { IDENTITY_SERVER_THUMBPRINT: _thumbprint, ...appService } = environment(server.url);
      expect(client(appService).getManagedIdentitySource()).toBe("app-service");
    });

    it("needs all three variables, non-empty", () => {
      const env = environment(server.url);
      expect(serviceFabric.detect(sourceContext(env).env, createWebPlatform(), SYSTEM)).toBe(true);
      for (const name of Object.keys(env)) {
        const partial = { ...env, [name]: "" };
        expect(serviceFabric.detect(sourceContext(partial).env, createWebPlatform(), SYSTEM)).toBe(
          false,
        );
      }
    });
  });
});
