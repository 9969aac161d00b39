import { createStorage } from "unstorage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../../src/index.ts";
import { machineLearning } from "../../src/sources/machine-learning.ts";
import { type RecordedRequest, startServer, type TestServer } from "../helpers/server.ts";
import { sourceConformance, sourceContext } from "./conformance.ts";

const SECRET = "machine-learning-secret-value";
const DEFAULT_CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const USER_CLIENT_ID = "11111111-2222-3333-4444-555555555555";

sourceConformance({
  source: "machine-learning",
  env: (url) => ({ MSI_ENDPOINT: `${url}/msi/token`, MSI_SECRET: SECRET }),
  path: "/msi/token",
  method: "GET",
  parameters: { "api-version": "2017-09-01" },
  headers: { secret: SECRET, metadata: "true" },
  // clientid, without an underscore; object and resource ids cannot select an identity here.
  idParameters: { clientId: "clientid" },
  success: (token, expiresOn) => ({
    access_token: token,
    expires_on: String(expiresOn),
    resource: "https://vault.azure.net",
    token_type: "Bearer",
  }),
  // PROTOCOL.md does not describe this back-end's error body; an OAuth-style one is read generically.
  error: {
    status: 400,
    body: { error: "invalid_request", error_description: "No identity with that client id" },
    code: "invalid_request",
    serviceCode: "invalid_request",
  },
});

describe("machine-learning", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(() => ({
      body: { access_token: "t", expires_on: String(Math.floor(Date.now() / 1000) + 3600) },
    }));
  });
  afterAll(() => server.close());

  const acquire = async (
    identity: SystemAssignedManagedIdentity | UserAssignedManagedIdentity,
    env: Record<string, string> = {},
    options: ManagedIdentityClientOptions = {},
  ): Promise<RecordedRequest> => {
    server.requests.length = 0;
    await new ManagedIdentityClient(identity, {
      env: { MSI_ENDPOINT: `${server.url}/msi/token`, MSI_SECRET: SECRET, ...env },
      storage: createStorage(),
      ...options,
    }).acquireTokenForClient({ resource: "https://management.azure.com" });
    expect(server.requests).toHaveLength(1);
    return server.requests[0] as RecordedRequest;
  };

  it("names DEFAULT_IDENTITY_CLIENT_ID as clientid for the system-assigned identity", async () => {
    const request = await acquire(new SystemAssignedManagedIdentity(), {
      DEFAULT_IDENTITY_CLIENT_ID: DEFAULT_CLIENT_ID,
    });
    expect(request.query).toEqual({
      "api-version": "2017-09-01",
      resource: "https://management.azure.com",
      clientid: DEFAULT_CLIENT_ID,
    });
  });

  it("sends the user-assigned client id, not DEFAULT_IDENTITY_CLIENT_ID, when one is selected", async () => {
    const request = await acquire(new UserAssignedManagedIdentity({ clientId: USER_CLIENT_ID }), {
      DEFAULT_IDENTITY_CLIENT_ID: DEFAULT_CLIENT_ID,
    });
    expect(request.query.clientid).toBe(USER_CLIENT_ID);
    expect(request.query).not.toHaveProperty("client_id");
  });

  it("sends no clientid for the system-assigned identity without DEFAULT_IDENTITY_CLIENT_ID", async () => {
    const request = await machineLearning.createRequest(
      sourceContext({ MSI_ENDPOINT: "http://127.0.0.1:1/msi/token", MSI_SECRET: SECRET }),
    );
    expect(request.query).toEqual({
      "api-version": "2017-09-01",
      resource: "https://management.azure.com",
    });
    expect(request.secrets).toEqual([SECRET]);
  });

  it("never puts MSI_SECRET in an error, even when the service echoes it", async () => {
    server.handle((request) => ({
      status: 401,
      body: { error: "unauthorized_client", error_description: `bad ${request.headers.secret}` },
    }));
    try {
      const error = await acquire(new SystemAssignedManagedIdentity()).catch(
        (caught: unknown) => caught,
      );
      expect(error).toMatchObject({ code: "unauthorized_client", status: 401 });
      expect(String(error)).not.toContain(SECRET);
      expect(JSON.stringify(error)).not.toContain(SECRET);
      expect((error as Error).message).toContain("[redacted]");
    } finally {
      server.handle(() => ({
        body: { access_token: "t", expires_on: String(Math.floor(Date.now() / 1000) + 3600) },
      }));
    }
  });

  it("is chosen over Cloud Shell when MSI_SECRET is set, and needs both variables", () => {
    const source = (env: Record<string, string>) =>
      new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env,
      }).getManagedIdentitySource();
    expect(source({ MSI_ENDPOINT: "http://127.0.0.1:1/", MSI_SECRET: SECRET })).toBe(
      "machine-learning",
    );
    expect(source({ MSI_SECRET: SECRET })).toBe("imds");
  });

  it("reports a missing MSI_SECRET when forced", async () => {
    const error = await new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: { MSI_ENDPOINT: `${server.url}/msi/token` },
      source: "machine-learning",
    })
      .acquireTokenForClient({ resource: "https://management.azure.com" })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "source_unavailable", source: "machine-learning" });
    expect((error as Error).message).toContain("MSI_SECRET");
  });
});
