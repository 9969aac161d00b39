import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import {
  bearerTokenAuthenticationPolicy,
  createDefaultHttpClient,
  createEmptyPipeline,
  createPipelineRequest,
  type Pipeline,
} from "@azure/core-rest-pipeline";
import { generate } from "selfsigned";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ManagedIdentityClient,
  ManagedIdentityError,
  ManagedIdentityTokenCredential,
  SystemAssignedManagedIdentity,
} from "../src/index.ts";

const SCOPE = "https://resource.example/.default";
/** The claims a resource sends in a CAE challenge (decoded), as Microsoft Graph does. */
const CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}';

interface TokenEndpoint {
  url: string;
  /** `resource` of every token request, in order. */
  resources: string[];
  /** Tokens issued, in order. */
  issued: string[];
  /** Seconds each new token lives. */
  lifetime: number;
  /** When set, requests are held open and this is called with each one. */
  hold?: ((response: ServerResponse) => void) | undefined;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closer(server: Server): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

/** An IMDS-speaking token endpoint issuing `mi-token-<n>`. */
async function startTokenEndpoint(): Promise<TokenEndpoint> {
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (endpoint.hold) return endpoint.hold(response);
    const resource = url.searchParams.get("resource") ?? "";
    endpoint.resources.push(resource);
    const token = `mi-token-${endpoint.issued.length + 1}`;
    endpoint.issued.push(token);
    response.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        access_token: token,
        expires_in: String(endpoint.lifetime),
        expires_on: String(Math.floor(Date.now() / 1000) + endpoint.lifetime),
        resource,
        token_type: "Bearer",
      }),
    );
  });
  const endpoint: TokenEndpoint = {
    url: `http://${await listen(server)}`,
    resources: [],
    issued: [],
    lifetime: 86_399,
    close: closer(server),
  };
  return endpoint;
}

interface ResourceServer {
  url: string;
  ca: string;
  /** Authorization headers received, in order. */
  authorizations: (string | undefined)[];
  /** Answer the next request that carries this token with a CAE claims challenge. */
  revoke: string | undefined;
  close(): Promise<void>;
}

/**
 * An https resource (Azure SDK policies refuse to send tokens over http) that accepts only the
 * latest token the token endpoint issued, and can revoke one with a claims challenge.
 */
async function startResourceServer(tokens: TokenEndpoint): Promise<ResourceServer> {
  const pems = await generate([{ name: "commonName", value: "127.0.0.1" }], {
    keySize: 2048,
    algorithm: "sha256",
    extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
  });
  const server = createHttpsServer(
    { key: pems.private, cert: pems.cert },
    (request: IncomingMessage, response: ServerResponse) => {
      const authorization = request.headers.authorization;
      resourceServer.authorizations.push(authorization);
      const latest = tokens.issued.at(-1);
      if (
        resourceServer.revoke !== undefined &&
        authorization === `Bearer ${resourceServer.revoke}`
      ) {
        resourceServer.revoke = undefined;
        response
          .writeHead(401, {
            "www-authenticate": `Bearer realm="", error="insufficient_claims", error_description="token revoked", claims="${btoa(CLAIMS)}"`,
          })
          .end();
        return;
      }
      const ok = latest !== undefined && authorization === `Bearer ${latest}`;
      response.writeHead(ok ? 200 : 401, { "content-type": "text/plain" }).end(ok ? "ok" : "no");
    },
  );
  const resourceServer: ResourceServer = {
    url: `https://${await listen(server)}/data`,
    ca: pems.cert,
    authorizations: [],
    revoke: undefined,
    close: closer(server),
  };
  return resourceServer;
}

function credentialFor(tokens: TokenEndpoint): ManagedIdentityTokenCredential {
  return new ManagedIdentityTokenCredential(new SystemAssignedManagedIdentity(), {
    source: "imds",
    env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: tokens.url },
  });
}

describe("ManagedIdentityTokenCredential with @azure/core-rest-pipeline", () => {
  let tokens: TokenEndpoint;
  let resource: ResourceServer;
  let pipeline: Pipeline;
  const httpClient = createDefaultHttpClient();

  beforeAll(async () => {
    tokens = await startTokenEndpoint();
    resource = await startResourceServer(tokens);
    pipeline = createEmptyPipeline();
    // The type check is part of the test: the credential must satisfy TokenCredential.
    pipeline.addPolicy(
      bearerTokenAuthenticationPolicy({ credential: credentialFor(tokens), scopes: SCOPE }),
    );
  });

  afterAll(async () => {
    await resource.close();
    await tokens.close();
  });

  async function get(): Promise<number> {
    const request = createPipelineRequest({ url: resource.url });
    request.tlsSettings = { ca: resource.ca };
    const response = await pipeline.sendRequest(httpClient, request);
    return response.status;
  }

  it("authorizes requests with the managed identity token, acquired once", async () => {
    expect(await get()).toBe(200);
    expect(await get()).toBe(200);
    expect(resource.authorizations).toEqual(["Bearer mi-token-1", "Bearer mi-token-1"]);
    // The scope's /.default is removed: managed identity endpoints take a resource.
    expect(tokens.resources).toEqual(["https://resource.example"]);
  });

  it("answers a CAE claims challenge with a new token, skipping the cache", async () => {
    resource.revoke = "mi-token-1";
    expect(await get()).toBe(200);
    expect(resource.authorizations.slice(-2)).toEqual(["Bearer mi-token-1", "Bearer mi-token-2"]);
    expect(tokens.issued).toEqual(["mi-token-1", "mi-token-2"]);
  });
});

describe("ManagedIdentityTokenCredential.getToken", () => {
  let tokens: TokenEndpoint;

  beforeAll(async () => {
    tokens = await startTokenEndpoint();
  });
  afterEach(() => {
    tokens.hold = undefined;
    tokens.lifetime = 86_399;
  });
  afterAll(() => tokens.close());

  it("returns AccessToken times in epoch milliseconds", async () => {
    const before = Date.now();
    const token = await credentialFor(tokens).getToken([SCOPE]);
    expect(token.token).toBe(tokens.issued.at(-1));
    expect(token.tokenType).toBe("Bearer");
    // A day-long token is refreshed after half its life.
    expect(token.expiresOnTimestamp).toBeGreaterThanOrEqual(
      Math.floor(before / 1000) * 1000 + 86_398_000,
    );
    expect(token.expiresOnTimestamp % 1000).toBe(0);
    expect(token.refreshAfterTimestamp).toBeGreaterThan(before + 43_000_000);
    expect(token.refreshAfterTimestamp).toBeLessThan(before + 44_000_000);
  });

  it("without a refresh hint, refreshes when the cache would stop serving the token", async () => {
    tokens.lifetime = 3599;
    const token = await credentialFor(tokens).getToken("https://other.example/.default");
    expect(token.refreshAfterTimestamp).toBe(token.expiresOnTimestamp - 300_000);
  });

  it("serves the cached token until claims are passed, then fetches a new one", async () => {
    const credential = credentialFor(tokens);
    const first = await credential.getToken(SCOPE);
    const cached = await credential.getToken(SCOPE);
    const challenged = await credential.getToken(SCOPE, { claims: CLAIMS });
    expect(cached.token).toBe(first.token);
    expect(challenged.token).not.toBe(first.token);
    expect(challenged.token).toBe(tokens.issued.at(-1));
  });

  it.each([
    ["no scope", []],
    ["two scopes", [SCOPE, "https://vault.azure.net/.default"]],
  ])("refuses %s with invalid_resource, sending nothing", async (_label, scopes) => {
    const sent = tokens.issued.length;
    const error = await credentialFor(tokens)
      .getToken(scopes)
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ManagedIdentityError);
    expect(error).toMatchObject({ code: "invalid_resource" });
    expect((error as Error).message).toContain("exactly one scope");
    expect(tokens.issued.length).toBe(sent);
  });

  it("honours the abort signal while the endpoint has not answered", async () => {
    let received!: () => void;
    const requestArrived = new Promise<void>((resolve) => {
      received = resolve;
    });
    const held: ServerResponse[] = [];
    tokens.hold = (response) => {
      held.push(response);
      received();
    };
    const controller = new AbortController();
    const pending = credentialFor(tokens)
      .getToken("https://held.example/.default", { abortSignal: controller.signal })
      .catch((caught: unknown) => caught);
    await requestArrived;
    controller.abort(new Error("caller gave up"));
    const error = await pending;
    expect(error).toBeInstanceOf(ManagedIdentityError);
    expect(error).toMatchObject({ code: "aborted" });
    for (const response of held) response.destroy();
  });

  it("honours an abort signal that is not a native AbortSignal", async () => {
    const listeners: (() => void)[] = [];
    const signalLike = {
      aborted: true,
      reason: "stopped",
      addEventListener: (_type: "abort", listener: () => void) => listeners.push(listener),
      removeEventListener: () => {},
    };
    const error = await credentialFor(tokens)
      .getToken("https://like.example/.default", { abortSignal: signalLike })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "aborted" });
  });

  it("can share an existing client", async () => {
    const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      source: "imds",
      env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: tokens.url },
    });
    const fromClient = await client.acquireTokenForClient({ resource: "https://shared.example" });
    const credential = new ManagedIdentityTokenCredential(client);
    expect(credential.client).toBe(client);
    expect((await credential.getToken("https://shared.example/.default")).token).toBe(
      fromClient.accessToken,
    );
  });
});
