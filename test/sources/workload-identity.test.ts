import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";
import { Agent, fetch as undiciFetch } from "undici";
import { createStorage } from "unstorage";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type FetchLike,
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  ManagedIdentityError,
  SystemAssignedManagedIdentity,
} from "../../src/index.ts";
import { createNodePlatform } from "../../src/platform/node.ts";
import { createWebPlatform } from "../../src/platform/web.ts";
import { workloadIdentity } from "../../src/sources/workload-identity.ts";
import { type RecordedRequest, startServer, type TestServer } from "../helpers/server.ts";
import { sourceConformance, sourceContext } from "./conformance.ts";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID = "99999999-8888-7777-6666-555555555555";
const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
// Not shaped like a JWT, so only the back-end's `secrets` (not the JWT pattern) can redact it.
const ASSERTION = "federated-assertion-0f1e2d3c4b5a";

const folder = await mkdtemp(join(tmpdir(), "workload-identity-"));
const tokenFile = join(folder, "azure-identity-token");
// The kubelet's file may end in a newline; it is not part of the assertion.
await writeFile(tokenFile, `${ASSERTION}\n`);

// The authority must be https: a real TLS server with a certificate for 127.0.0.1, and a fetch
// that trusts that certificate (and nothing else).
const certificate = await generate([{ name: "commonName", value: "localhost" }], {
  keyType: "ec",
  algorithm: "sha256",
});
const tls = { key: certificate.private, cert: certificate.cert };
const agent = new Agent({ connect: { ca: certificate.cert } });
const trustingFetch: FetchLike = (input, init) =>
  undiciFetch(String(input), {
    ...init,
    dispatcher: agent,
  } as never) as unknown as Promise<Response>;

// expires_in is relative: a frozen clock puts the server's and the client's "now" in one second.
vi.useFakeTimers({ toFake: ["Date"] });

afterAll(async () => {
  vi.useRealTimers();
  await agent.close();
  await rm(folder, { recursive: true, force: true });
});

const nowSeconds = () => Math.floor(Date.now() / 1000);
const tokenBody = (token = "t", expiresIn = 3599) => ({
  token_type: "Bearer",
  expires_in: expiresIn,
  ext_expires_in: expiresIn,
  access_token: token,
});

sourceConformance({
  source: "workload-identity",
  // A trailing slash on the authority must not produce a double slash in the path.
  env: (url) => ({
    AZURE_AUTHORITY_HOST: `${url}/`,
    AZURE_TENANT_ID: TENANT,
    AZURE_CLIENT_ID: CLIENT_ID,
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
  }),
  path: `/${TENANT}/oauth2/v2.0/token`,
  method: "POST",
  parameters: {
    grant_type: "client_credentials",
    client_id: CLIENT_ID,
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: ASSERTION,
  },
  resourceParameters: (resource) => ({ scope: `${resource}/.default` }),
  headers: { "content-type": "application/x-www-form-urlencoded" },
  // A selected client id replaces AZURE_CLIENT_ID; object and resource ids mean nothing here.
  idParameters: { clientId: "client_id" },
  success: (token, expiresOn) => tokenBody(token, expiresOn - nowSeconds()),
  error: {
    status: 400,
    body: {
      error: "invalid_client",
      error_description:
        "AADSTS700213: No matching federated identity record found for presented assertion subject.",
      error_codes: [700213],
      correlation_id: "c0ffee00-0000-4000-8000-000000000002",
    },
    code: "invalid_client",
    serviceCode: "invalid_client",
    correlationId: "c0ffee00-0000-4000-8000-000000000002",
  },
  server: { tls },
  clientOptions: { fetch: trustingFetch },
});

describe("workload-identity", () => {
  let server: TestServer;
  let plainServer: TestServer;
  beforeAll(async () => {
    server = await startServer(() => ({ body: tokenBody() }), { tls });
    plainServer = await startServer(() => ({ body: tokenBody() }));
  });
  afterAll(async () => {
    await server.close();
    await plainServer.close();
  });

  const environment = (overrides: Record<string, string> = {}) => ({
    AZURE_AUTHORITY_HOST: server.url,
    AZURE_TENANT_ID: TENANT,
    AZURE_CLIENT_ID: CLIENT_ID,
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    ...overrides,
  });
  const client = (options: ManagedIdentityClientOptions = {}) =>
    new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env: environment(),
      storage: createStorage(),
      fetch: trustingFetch,
      ...options,
    });
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => expect.unreachable("the call should have failed"),
      (caught: unknown) => caught as ManagedIdentityError,
    );
  const assertionsSent = () =>
    server.requests.map((request: RecordedRequest) =>
      new URLSearchParams(request.body).get("client_assertion"),
    );

  it("re-reads the federated token file only once its copy is older than five minutes", async () => {
    const rotating = join(folder, "rotating-token");
    await writeFile(rotating, "assertion-one");
    const start = Date.now();
    const rotatingClient = client({ env: environment({ AZURE_FEDERATED_TOKEN_FILE: rotating }) });
    server.requests.length = 0;
    // A new resource each time, so every call reaches the server instead of the token cache.
    await rotatingClient.acquireTokenForClient({ resource: "https://one.example" });
    await writeFile(rotating, "assertion-two");
    vi.setSystemTime(start + 5 * 60 * 1000);
    await rotatingClient.acquireTokenForClient({ resource: "https://two.example" });
    vi.setSystemTime(start + 5 * 60 * 1000 + 1000);
    await rotatingClient.acquireTokenForClient({ resource: "https://three.example" });
    vi.setSystemTime(start + 6 * 60 * 1000);
    await rotatingClient.acquireTokenForClient({ resource: "https://four.example" });
    expect(assertionsSent()).toEqual([
      "assertion-one",
      "assertion-one",
      "assertion-two",
      "assertion-two",
    ]);
    vi.setSystemTime(start);
  });

  it("refuses an http authority: the assertion is never sent", async () => {
    plainServer.requests.length = 0;
    const error = await failure(
      client({ env: environment({ AZURE_AUTHORITY_HOST: plainServer.url }) }).acquireTokenForClient(
        { resource: "https://management.azure.com" },
      ),
    );
    expect(error).toBeInstanceOf(ManagedIdentityError);
    expect(error).toMatchObject({ code: "endpoint_not_allowed", source: "workload-identity" });
    expect(error.message).toContain("https");
    expect(plainServer.requests).toHaveLength(0);
  });

  it("never puts the assertion in an error, even when the authority echoes it", async () => {
    server.handle((request) => ({
      status: 400,
      body: {
        error: "invalid_grant",
        error_description: `bad assertion ${new URLSearchParams(request.body).get("client_assertion")}`,
        correlation_id: ASSERTION,
      },
    }));
    try {
      const error = await failure(
        client().acquireTokenForClient({ resource: "https://management.azure.com" }),
      );
      expect(error).toMatchObject({ code: "invalid_grant", status: 400 });
      expect(error.message).toContain("[redacted]");
      for (const text of [String(error), JSON.stringify(error), error.stack ?? ""]) {
        expect(text).not.toContain(ASSERTION);
      }
      expect(error.correlationId).not.toContain(ASSERTION);
    } finally {
      server.handle(() => ({ body: tokenBody() }));
    }
  });

  it("says which file is missing, and sends nothing", async () => {
    const missing = join(folder, "no-such-token");
    server.requests.length = 0;
    const error = await failure(
      client({
        env: environment({ AZURE_FEDERATED_TOKEN_FILE: missing }),
      }).acquireTokenForClient({ resource: "https://management.azure.com" }),
    );
    expect(error).toMatchObject({ code: "source_unavailable", source: "workload-identity" });
    expect(error.message).toContain("AZURE_FEDERATED_TOKEN_FILE");
    expect(error.message).toContain(missing);
    expect(server.requests).toHaveLength(0);
  });

  it("refuses an empty token file", async () => {
    const empty = join(folder, "empty-token");
    await writeFile(empty, " \n");
    const error = await failure(
      client({ env: environment({ AZURE_FEDERATED_TOKEN_FILE: empty }) }).acquireTokenForClient({
        resource: "https://management.azure.com",
      }),
    );
    expect(error).toMatchObject({ code: "source_unavailable" });
    expect(error.message).toContain("is empty");
  });

  it("names the runtime and the missing capability where files cannot be read", async () => {
    server.requests.length = 0;
    const error = await failure(
      client({ platform: createWebPlatform("workerd") }).acquireTokenForClient({
        resource: "https://management.azure.com",
      }),
    );
    expect(error).toMatchObject({ code: "capability_unavailable", source: "workload-identity" });
    expect(error.message).toContain("(workerd) cannot read files");
    expect(server.requests).toHaveLength(0);
  });

  it("refuses a tenant that would change the token URL's path", async () => {
    server.requests.length = 0;
    const error = await failure(
      client({ env: environment({ AZURE_TENANT_ID: "common/../evil" }) }).acquireTokenForClient({
        resource: "https://management.azure.com",
      }),
    );
    expect(error).toMatchObject({ code: "source_unavailable" });
    expect(error.message).toContain("AZURE_TENANT_ID");
    expect(server.requests).toHaveLength(0);
  });

  it("posts to the public authority by default", async () => {
    const env = environment();
    delete (env as Record<string, string | undefined>).AZURE_AUTHORITY_HOST;
    const request = await workloadIdentity.createRequest(
      sourceContext(env, { platform: createNodePlatform() }),
    );
    expect(request).toMatchObject({
      method: "POST",
      url: `https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token`,
      endpointKind: "authority",
      secrets: [ASSERTION],
    });
  });

  it("is detected only with the token file, the tenant and a client id", () => {
    const platform = createWebPlatform();
    const reader = (values: Record<string, string>) => (name: string) => values[name];
    const complete = {
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT_ID,
    };
    expect(workloadIdentity.detect(reader(complete), platform, { kind: "systemAssigned" })).toBe(
      true,
    );
    for (const name of Object.keys(complete)) {
      const partial: Record<string, string> = { ...complete };
      delete partial[name];
      expect(
        workloadIdentity.detect(reader(partial), platform, { kind: "systemAssigned" }),
        `without ${name}`,
      ).toBe(false);
    }
  });

  it("counts a configured user-assigned client id as the client id", () => {
    const detect = workloadIdentity.detect;
    const env = (name: string) =>
      ({ AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_TENANT_ID: TENANT })[name];
    expect(detect(env, createWebPlatform(), { kind: "clientId", id: CLIENT_ID })).toBe(true);
    expect(detect(env, createWebPlatform(), { kind: "objectId", id: CLIENT_ID })).toBe(false);
    expect(detect(env, createWebPlatform(), { kind: "systemAssigned" })).toBe(false);
  });

  it("sends the selected user-assigned client id even without AZURE_CLIENT_ID", async () => {
    const env = environment();
    delete (env as Record<string, string | undefined>).AZURE_CLIENT_ID;
    const request = await workloadIdentity.createRequest(
      sourceContext(env, {
        platform: createNodePlatform(),
        identity: { kind: "clientId", id: CLIENT_ID },
      }),
    );
    expect(request.form?.client_id).toBe(CLIENT_ID);
  });
});
