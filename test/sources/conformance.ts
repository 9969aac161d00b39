import { createStorage } from "unstorage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AccessTokenResult,
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  ManagedIdentityError,
  type ManagedIdentitySource,
  SystemAssignedManagedIdentity,
  type UserAssignedIdKind,
  UserAssignedManagedIdentity,
} from "../../src/index.ts";
import { createWebPlatform } from "../../src/platform/web.ts";
import type { SourceContext } from "../../src/sources/types.ts";
import {
  type RecordedRequest,
  type Reply,
  type ServerOptions,
  startServer,
  type TestServer,
} from "../helpers/server.ts";

/** What the conformance suite needs to know about one back-end. */
export interface SourceCase {
  source: ManagedIdentitySource;
  /** The environment that selects the back-end, given the local server's URL. */
  env(serverUrl: string): Record<string, string>;
  /** Path the request must reach. */
  path: string;
  method: "GET" | "POST";
  /** Parameters every request carries (query for GET, form for POST). */
  parameters: Record<string, string>;
  /** Headers every request carries (names in lower case). */
  headers: Record<string, string>;
  /** The parameter name of each user-assigned id kind it accepts. */
  idParameters: Partial<Record<UserAssignedIdKind, string>>;
  /** A success body in this back-end's format. */
  success(token: string, expiresOn: number): unknown;
  /** An error body in this back-end's format, with the code the client must report. */
  error: {
    status: number;
    body: unknown;
    code: string;
    serviceCode?: string;
    correlationId?: string;
  };
  /** How the resource is sent, when not as `resource=` (workload identity sends a scope). */
  resourceParameters?(resource: string): Record<string, string>;
  /** How the local server listens (https for a back-end whose endpoint must be https). */
  server?: ServerOptions;
  /** More client options, such as a `fetch` that trusts the server's certificate. */
  clientOptions?: ManagedIdentityClientOptions;
}

const ID_VALUES: Record<UserAssignedIdKind, string> = {
  clientId: "11111111-2222-3333-4444-555555555555",
  objectId: "66666666-7777-8888-9999-000000000000",
  resourceId:
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u",
};

/** A context for calling a back-end's functions directly. */
export function sourceContext(
  env: Record<string, string>,
  overrides: Partial<SourceContext> = {},
): SourceContext {
  return {
    env: (name) => env[name] || undefined,
    platform: createWebPlatform(),
    identity: { kind: "systemAssigned" },
    resource: "https://management.azure.com",
    clientCapabilities: [],
    state: new Map(),
    ...overrides,
  };
}

function parametersOf(request: RecordedRequest): Record<string, string> {
  return request.method === "POST"
    ? Object.fromEntries(new URLSearchParams(request.body))
    : request.query;
}

/** The shared suite every back-end passes: detection, request shape per id kind, parse, errors. */
export function sourceConformance(testCase: SourceCase): void {
  const resourceParameters = testCase.resourceParameters ?? ((resource) => ({ resource }));
  describe(`${testCase.source} conformance`, () => {
    let server: TestServer;
    const expiresOn = Math.floor(Date.now() / 1000) + 3600;
    beforeAll(async () => {
      server = await startServer(
        () => ({ body: testCase.success("token-value", expiresOn) }),
        testCase.server,
      );
    });
    afterAll(() => server.close());

    const client = (identity: SystemAssignedManagedIdentity | UserAssignedManagedIdentity) =>
      new ManagedIdentityClient(identity, {
        ...testCase.clientOptions,
        env: testCase.env(server.url),
        storage: createStorage(),
        // Each answer is final here; retries are tested in test/retry.test.ts.
        retry: false,
      });

    it("is detected from its environment", () => {
      expect(client(new SystemAssignedManagedIdentity()).getManagedIdentitySource()).toBe(
        testCase.source,
      );
    });

    it("sends the exact request for the system-assigned identity and parses the token", async () => {
      server.requests.length = 0;
      const token = await client(new SystemAssignedManagedIdentity()).acquireTokenForClient({
        resource: "https://vault.azure.net/.default",
      });
      expect(token).toMatchObject<Partial<AccessTokenResult>>({
        accessToken: "token-value",
        tokenType: "Bearer",
        expiresOn,
        resource: "https://vault.azure.net",
        tokenSource: "identity_provider",
        source: testCase.source,
      });
      expect(server.requests).toHaveLength(1);
      const [request] = server.requests as [RecordedRequest];
      expect(request.method).toBe(testCase.method);
      expect(request.path).toBe(testCase.path);
      expect(parametersOf(request)).toEqual({
        ...testCase.parameters,
        ...resourceParameters("https://vault.azure.net"),
      });
      expect(request.headers).toMatchObject(testCase.headers);
    });

    for (const kind of ["clientId", "objectId", "resourceId"] as const) {
      const name = testCase.idParameters[kind];
      if (name) {
        it(`selects a user-assigned identity by ${kind} with ${name}=`, async () => {
          server.requests.length = 0;
          const identity = new UserAssignedManagedIdentity({ [kind]: ID_VALUES[kind] } as never);
          await client(identity).acquireTokenForClient({ resource: "https://vault.azure.net" });
          const [request] = server.requests as [RecordedRequest];
          expect(parametersOf(request)).toEqual({
            ...testCase.parameters,
            ...resourceParameters("https://vault.azure.net"),
            [name]: ID_VALUES[kind],
          });
        });
      } else {
        it(`refuses a user-assigned identity by ${kind} before any request`, async () => {
          server.requests.length = 0;
          const identity = new UserAssignedManagedIdentity({ [kind]: ID_VALUES[kind] } as never);
          const error = await client(identity)
            .acquireTokenForClient({ resource: "https://vault.azure.net" })
            .catch((caught: unknown) => caught);
          expect(error).toBeInstanceOf(ManagedIdentityError);
          expect(error).toMatchObject({ code: "unsupported_identity", source: testCase.source });
          expect(server.requests).toHaveLength(0);
        });
      }
    }

    it("reports its error body with a stable code", async () => {
      const { status, body, code, serviceCode, correlationId } = testCase.error;
      server.handle(() => ({ status, body }) satisfies Reply);
      try {
        const error = await client(new SystemAssignedManagedIdentity())
          .acquireTokenForClient({ resource: "https://error.example" })
          .catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(ManagedIdentityError);
        expect(error).toMatchObject({ code, status, source: testCase.source });
        if (serviceCode) expect((error as ManagedIdentityError).serviceCode).toBe(serviceCode);
        if (correlationId)
          expect((error as ManagedIdentityError).correlationId).toBe(correlationId);
      } finally {
        server.handle(() => ({ body: testCase.success("token-value", expiresOn) }));
      }
    });
  });
}
