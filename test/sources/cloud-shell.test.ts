import { createStorage } from "unstorage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ManagedIdentityClient,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../../src/index.ts";
import { createWebPlatform } from "../../src/platform/web.ts";
import { cloudShell } from "../../src/sources/cloud-shell.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import { sourceConformance, sourceContext } from "./conformance.ts";

sourceConformance({
  source: "cloud-shell",
  env: (url) => ({ MSI_ENDPOINT: `${url}/oauth2/token` }),
  path: "/oauth2/token",
  method: "POST",
  parameters: {},
  headers: { metadata: "true", "content-type": "application/x-www-form-urlencoded" },
  // No id kinds: every user-assigned identity is refused before a request.
  idParameters: {},
  success: (token, expiresOn) => ({
    access_token: token,
    expires_in: String(expiresOn - Math.floor(Date.now() / 1000)),
    expires_on: String(expiresOn),
    resource: "https://vault.azure.net",
    token_type: "Bearer",
  }),
  error: {
    status: 400,
    body: { error: { code: "BadRequest", message: "The resource is not valid." } },
    code: "invalid_request",
    serviceCode: "BadRequest",
  },
});

describe("cloud-shell", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(() => ({
      body: { access_token: "t", expires_on: String(Math.floor(Date.now() / 1000) + 3600) },
    }));
  });
  afterAll(() => server.close());

  it("posts the resource as a form body and puts nothing in the query", async () => {
    server.requests.length = 0;
    await new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: { MSI_ENDPOINT: `${server.url}/oauth2/token` },
      storage: createStorage(),
    }).acquireTokenForClient({ resource: "https://management.azure.com/.default" });
    expect(server.requests).toHaveLength(1);
    const [request] = server.requests;
    expect(request?.method).toBe("POST");
    expect(request?.query).toEqual({});
    expect(request?.body).toBe("resource=https%3A%2F%2Fmanagement.azure.com");
  });

  it("refuses a user-assigned identity with a message saying only system-assigned works", async () => {
    server.requests.length = 0;
    const error = await new ManagedIdentityClient(
      new UserAssignedManagedIdentity({ clientId: "11111111-2222-3333-4444-555555555555" }),
      { env: { MSI_ENDPOINT: `${server.url}/oauth2/token` } },
    )
      .acquireTokenForClient({ resource: "https://management.azure.com" })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "unsupported_identity", source: "cloud-shell" });
    expect((error as Error).message).toContain("only the system-assigned identity");
    expect(server.requests).toHaveLength(0);
  });

  it("is selected by MSI_ENDPOINT alone, not with MSI_SECRET", () => {
    const platform = createWebPlatform();
    const env = (values: Record<string, string>) => (name: string) => values[name];
    const system = { kind: "systemAssigned" } as const;
    expect(
      cloudShell.detect(env({ MSI_ENDPOINT: "http://localhost:50342/" }), platform, system),
    ).toBe(true);
    expect(
      cloudShell.detect(
        env({ MSI_ENDPOINT: "http://localhost:50342/", MSI_SECRET: "secret" }),
        platform,
        system,
      ),
    ).toBe(false);
    expect(cloudShell.detect(env({}), platform, system)).toBe(false);
  });

  it("uses the usual Cloud Shell endpoint as given", async () => {
    const request = await cloudShell.createRequest(
      sourceContext({ MSI_ENDPOINT: "http://localhost:50342/oauth2/token" }),
    );
    expect(request).toMatchObject({
      method: "POST",
      url: "http://localhost:50342/oauth2/token",
      headers: { Metadata: "true" },
      form: { resource: "https://management.azure.com" },
      endpointKind: "local",
    });
    expect(request.query).toBeUndefined();
  });

  it("reports a missing MSI_ENDPOINT when forced", async () => {
    const error = await new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: {},
      source: "cloud-shell",
    })
      .acquireTokenForClient({ resource: "https://management.azure.com" })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "source_unavailable", source: "cloud-shell" });
    expect((error as Error).message).toContain("MSI_ENDPOINT");
  });
});
