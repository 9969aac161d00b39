import { createStorage } from "unstorage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManagedIdentityClient, SystemAssignedManagedIdentity } from "../../src/index.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import { sourceConformance } from "./conformance.ts";

const SECRET = "app-service-secret-value";

sourceConformance({
  source: "app-service",
  env: (url) => ({ IDENTITY_ENDPOINT: `${url}/msi/token`, IDENTITY_HEADER: SECRET }),
  path: "/msi/token",
  method: "GET",
  parameters: { "api-version": "2019-08-01" },
  headers: { "x-identity-header": SECRET, metadata: "true" },
  idParameters: { clientId: "client_id", objectId: "object_id", resourceId: "mi_res_id" },
  success: (token, expiresOn) => ({
    access_token: token,
    expires_on: String(expiresOn),
    resource: "https://vault.azure.net",
    token_type: "Bearer",
    client_id: "11111111-2222-3333-4444-555555555555",
  }),
  error: {
    status: 500,
    body: {
      statusCode: 500,
      message: "An unexpected error occured while fetching the AAD Token.",
      correlationId: "c0ffee00-0000-4000-8000-000000000001",
    },
    code: "service_unavailable",
    correlationId: "c0ffee00-0000-4000-8000-000000000001",
  },
});

describe("app-service", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  const acquire = () =>
    new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: { IDENTITY_ENDPOINT: `${server.url}/msi/token`, IDENTITY_HEADER: SECRET },
      storage: createStorage(),
    }).acquireTokenForClient({ resource: "https://management.azure.com" });

  it("never puts the secret header value in an error, even when the service echoes it", async () => {
    server.handle((request) => ({
      status: 401,
      body: { statusCode: 401, message: `bad header ${request.headers["x-identity-header"]}` },
    }));
    const error = await acquire().catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "unauthorized_client", status: 401 });
    expect(String(error)).not.toContain(SECRET);
    expect(JSON.stringify(error)).not.toContain(SECRET);
    expect((error as Error).message).toContain("[redacted]");
  });

  it.each([
    ["epoch seconds as a number", (at: number) => at],
    ["epoch seconds as a string", (at: number) => String(at)],
    ["ISO 8601", (at: number) => new Date(at * 1000).toISOString().replace(".000", "")],
    ["ISO 8601 with a fraction", (at: number) => new Date(at * 1000).toISOString()],
    [
      "the 2017 form MM/dd/yyyy HH:mm:ss +00:00",
      (at: number) => {
        const d = new Date(at * 1000);
        const pad = (n: number) => String(n).padStart(2, "0");
        return `${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +00:00`;
      },
    ],
  ] as const)("reads expires_on as %s", async (_name, format: (at: number) => number | string) => {
    const expiresOn = Math.floor(Date.now() / 1000) + 7200;
    server.handle(() => ({
      body: { access_token: "t", expires_on: format(expiresOn), token_type: "Bearer" },
    }));
    const token = await acquire();
    expect(token.expiresOn).toBe(expiresOn);
  });
});
