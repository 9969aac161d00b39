/**
 * The runtime-neutral suite: the same cases under Node, Deno, Bun and workerd. It uses only Web
 * APIs and the package's public entry point; each runtime's thin runner imports the package the
 * way a user of that runtime would and hands it in, with the URLs of the local endpoints that the
 * Node test process started (see endpoints.ts).
 *
 * The tiny test API is `RuntimeCase[]`: a name, an async `run`, and `skip` with a reason. Runners
 * map it onto vitest `it`, `Deno.test`, `bun:test` `test`, or a loop inside the Worker.
 */
import type * as Package from "../../src/index.ts";

/** The package's public entry point, as each runtime imports it. */
export type PackageModule = typeof Package;

/** The runtimes in the matrix. */
export type RuntimeUnderTest = "node" | "deno" | "bun" | "workerd";

/** The environment variables the Node test process passes to every runtime (see endpoints.ts). */
export const ENDPOINT_VARIABLES = {
  /** Base URL of the IMDS-speaking endpoint (set as AZURE_POD_IDENTITY_AUTHORITY_HOST). */
  imdsHost: "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  /** The App Service endpoint and its secret. */
  appServiceEndpoint: "IDENTITY_ENDPOINT",
  appServiceSecret: "IDENTITY_HEADER",
  /** `GET` returns the {@link EndpointCounts} so far. */
  counts: "RUNTIME_MATRIX_COUNTS_URL",
  /**
   * Azure Arc's endpoint and the temporary tokens folder its challenges name. Under test-only
   * names: as IDENTITY_ENDPOINT and IMDS_ENDPOINT they would select Arc for every case, so the Arc
   * cases pass them to their client through the `env` option.
   */
  arcEndpoint: "RUNTIME_MATRIX_ARC_ENDPOINT",
  arcTokensFolder: "RUNTIME_MATRIX_ARC_TOKENS_FOLDER",
  /** Service Fabric's HTTPS endpoint, its secret and its certificate's SHA-1 thumbprint. */
  serviceFabricEndpoint: "RUNTIME_MATRIX_SERVICE_FABRIC_ENDPOINT",
  serviceFabricSecret: "RUNTIME_MATRIX_SERVICE_FABRIC_SECRET",
  serviceFabricThumbprint: "RUNTIME_MATRIX_SERVICE_FABRIC_THUMBPRINT",
} as const;

/** What the local endpoints received (see endpoints.ts). */
export interface EndpointCounts {
  /** Token requests to IMDS and App Service. */
  imds: number;
  appService: number;
  /** Azure Arc: unauthenticated requests (each answered with a 401 and a new key file). */
  arcChallenges: number;
  /** Azure Arc: tokens issued to requests that carried a key. */
  arc: number;
  /** Service Fabric: TCP connections accepted, whether or not a request followed. */
  serviceFabricConnections: number;
  /** Service Fabric: HTTP requests received (only ever after a handshake). */
  serviceFabric: number;
}

/** What the endpoints must have received once a runtime's whole suite has run. */
export function expectedTotals(runtime: RuntimeUnderTest): EndpointCounts {
  // IMDS: one success + one 400; App Service: one success. Elsewhere than workerd, Arc: one token
  // and one challenge refused for its folder; Service Fabric: one request over two handshakes
  // (the wrong pin closes the second before writing). Under workerd nothing reaches either..
  return runtime === "workerd"
    ? {
        imds: 2,
        appService: 1,
        arcChallenges: 0,
        arc: 0,
        serviceFabricConnections: 0,
        serviceFabric: 0,
      }
    : {
        imds: 2,
        appService: 1,
        arcChallenges: 2,
        arc: 1,
        serviceFabricConnections: 2,
        serviceFabric: 1,
      };
}

/** A resource the local IMDS endpoint answers with HTTP 400 "identity not found". */
export const UNKNOWN_RESOURCE = "https://unassigned.example";

/** What a runner hands to the suite. */
export interface RuntimeContext {
  runtime: RuntimeUnderTest;
  /** The package, imported as a user of this runtime would. */
  pkg: PackageModule;
  /** The endpoint variables, as the runner received them (from its process env or Worker env). */
  env: Record<string, string | undefined>;
  /**
   * `process`: the variables are in the runtime's own environment and the client must find them
   * there (Node, Deno, Bun). `option`: there is no process environment; the client gets the
   * Worker's `env` through its `env` option (workerd).
   */
  envSource: "process" | "option";
}

/** One case of the neutral suite. */
export interface RuntimeCase {
  name: string;
  /** When set, the runner registers the case as skipped, with this reason. */
  skip?: string;
  run(): Promise<void>;
}

/** Throws when `condition` is false. */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function equal<T>(actual: T, expected: T, what: string): void {
  check(
    Object.is(actual, expected),
    `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
  );
}

async function rejection(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`check failed: ${what} should have been rejected`);
}

/** The cases for one runtime, in order; runners register every one (skipped ones as skipped). */
export function runtimeSuite(context: RuntimeContext): RuntimeCase[] {
  const { pkg, runtime } = context;
  const imdsHost = context.env[ENDPOINT_VARIABLES.imdsHost];
  const appServiceEndpoint = context.env[ENDPOINT_VARIABLES.appServiceEndpoint];
  check(imdsHost && appServiceEndpoint, "the runner must pass the local endpoint URLs");

  /** Client options for this runtime: the Worker's env goes in `env`; elsewhere the process env is read. */
  const options = (
    extra: Package.ManagedIdentityClientOptions = {},
  ): Package.ManagedIdentityClientOptions =>
    context.envSource === "option" ? { env: context.env, ...extra } : extra;

  const cases: RuntimeCase[] = [
    {
      name: "the entry point exports the client, the identities and the error type",
      async run() {
        equal(typeof pkg.ManagedIdentityClient, "function", "ManagedIdentityClient");
        equal(
          typeof pkg.SystemAssignedManagedIdentity,
          "function",
          "SystemAssignedManagedIdentity",
        );
        equal(typeof pkg.UserAssignedManagedIdentity, "function", "UserAssignedManagedIdentity");
        equal(typeof pkg.ManagedIdentityError, "function", "ManagedIdentityError");
        check(
          pkg.DETECTION_ORDER.some((source) => source.name === "imds"),
          "DETECTION_ORDER lists IMDS",
        );
      },
    },
    {
      name: "App Service is detected from the runtime's environment",
      async run() {
        const client = new pkg.ManagedIdentityClient(
          new pkg.SystemAssignedManagedIdentity(),
          options(),
        );
        equal(client.getManagedIdentitySource(), "app-service", "detected source");
      },
    },
    {
      name: "IMDS: a token over loopback, then the same token from the cache",
      async run() {
        const client = new pkg.ManagedIdentityClient(
          new pkg.SystemAssignedManagedIdentity(),
          options({ source: "imds" }),
        );
        const resource = `https://vault.azure.net/${runtime}`;
        const first = await client.acquireTokenForClient({ resource: `${resource}/.default` });
        equal(first.tokenSource, "identity_provider", "first token source");
        equal(first.source, "imds", "back-end");
        equal(first.resource, resource, "resource (scope suffix removed)");
        // The endpoint only issues `imds-` tokens to requests shaped as IMDS expects.
        check(first.accessToken.startsWith("imds-"), "the token came from the IMDS endpoint");
        check(first.expiresIn > 3000, "the token is valid for about an hour");
        const second = await client.acquireTokenForClient({ resource });
        equal(second.tokenSource, "cache", "second token source");
        equal(second.accessToken, first.accessToken, "cached token");
      },
    },
    {
      name: "App Service: a token over loopback with the secret header, then from the cache",
      async run() {
        const client = new pkg.ManagedIdentityClient(
          new pkg.UserAssignedManagedIdentity({ clientId: `client-${runtime}` }),
          options(),
        );
        const first = await client.acquireTokenForClient({
          resource: "https://management.azure.com",
        });
        equal(first.tokenSource, "identity_provider", "first token source");
        equal(first.source, "app-service", "back-end");
        // The endpoint checks X-IDENTITY-HEADER, api-version and client_id before issuing.
        check(
          first.accessToken.startsWith(`appsvc-client-${runtime}-`),
          "the token came from the App Service endpoint for this client id",
        );
        const second = await client.acquireTokenForClient({
          resource: "https://management.azure.com",
        });
        equal(second.tokenSource, "cache", "second token source");
        equal(second.accessToken, first.accessToken, "cached token");
      },
    },
    {
      name: "a failing endpoint rejects with a typed ManagedIdentityError",
      async run() {
        const client = new pkg.ManagedIdentityClient(
          new pkg.SystemAssignedManagedIdentity(),
          options({ source: "imds" }),
        );
        const error = await rejection(
          client.acquireTokenForClient({ resource: UNKNOWN_RESOURCE }),
          "a request for an identity the endpoint does not know",
        );
        check(error instanceof pkg.ManagedIdentityError, "instanceof ManagedIdentityError");
        check(pkg.isManagedIdentityError(error), "isManagedIdentityError");
        equal(error.code, "invalid_request", "code");
        equal(error.status, 400, "status");
        equal(error.source, "imds", "source");
        check(error.message.includes("Identity not found"), "the service's description is kept");
      },
    },
  ];

  if (runtime === "workerd") {
    cases.push(
      {
        name: "workerd: without the env option nothing is detected (a Worker has no process environment)",
        async run() {
          const client = new pkg.ManagedIdentityClient(new pkg.SystemAssignedManagedIdentity());
          equal(client.getManagedIdentitySource(), "imds", "fallback source");
        },
      },
      {
        name: "workerd: a back-end that reads files fails with capability_unavailable, nothing sent",
        async run() {
          const client = new pkg.ManagedIdentityClient(new pkg.SystemAssignedManagedIdentity(), {
            env: {
              AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/azure/tokens/azure-identity-token",
              AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000001",
              AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000002",
              // Nothing listens here; a request would surface as network_error, not this code.
              AZURE_AUTHORITY_HOST: "https://127.0.0.1:9",
            },
          });
          equal(client.getManagedIdentitySource(), "workload-identity", "detected source");
          const error = await rejection(
            client.acquireTokenForClient({ resource: "https://storage.azure.com" }),
            "workload identity without a file system",
          );
          check(pkg.isManagedIdentityError(error), "isManagedIdentityError");
          equal(error.code, "capability_unavailable", "code");
          equal(error.source, "workload-identity", "source");
          check(error.message.includes("workerd"), "the message names the runtime");
        },
      },
    );
  }

  const variable = (name: keyof typeof ENDPOINT_VARIABLES): string => {
    const value = context.env[ENDPOINT_VARIABLES[name]];
    check(value, `the runner must pass ${ENDPOINT_VARIABLES[name]}`);
    return value;
  };
  const counts = async (): Promise<EndpointCounts> =>
    (await (await fetch(variable("counts"))).json()) as EndpointCounts;
  /** The Arc variables, as the agent's machine sets them (IMDS_ENDPOINT only selects Arc). */
  const arcEnv = () => ({ IDENTITY_ENDPOINT: variable("arcEndpoint"), IMDS_ENDPOINT: imdsHost });
  const fabricEnv = (thumbprint: string) => ({
    IDENTITY_ENDPOINT: variable("serviceFabricEndpoint"),
    IDENTITY_HEADER: variable("serviceFabricSecret"),
    IDENTITY_SERVER_THUMBPRINT: thumbprint,
  });

  if (runtime === "workerd") {
    cases.push(
      {
        name: "workerd: Azure Arc fails with capability_unavailable naming workerd, nothing sent",
        async run() {
          const client = new pkg.ManagedIdentityClient(new pkg.SystemAssignedManagedIdentity(), {
            env: arcEnv(),
          });
          equal(client.getManagedIdentitySource(), "azure-arc", "detected source");
          const before = await counts();
          const error = await rejection(
            client.acquireTokenForClient({ resource: "https://management.azure.com" }),
            "Azure Arc without a file system",
          );
          check(pkg.isManagedIdentityError(error), "isManagedIdentityError");
          equal(error.code, "capability_unavailable", "code");
          equal(error.source, "azure-arc", "source");
          check(error.message.includes("workerd"), `the message names workerd: ${error.message}`);
          equal(
            (await counts()).arcChallenges,
            before.arcChallenges,
            "requests to the Arc endpoint",
          );
        },
      },
      {
        name: "workerd: Service Fabric fails with capability_unavailable naming workerd, nothing sent",
        async run() {
          const client = new pkg.ManagedIdentityClient(new pkg.SystemAssignedManagedIdentity(), {
            env: fabricEnv(variable("serviceFabricThumbprint")),
          });
          equal(client.getManagedIdentitySource(), "service-fabric", "detected source");
          const before = await counts();
          const error = await rejection(
            client.acquireTokenForClient({ resource: "https://vault.azure.net" }),
            "Service Fabric without TLS pinning",
          );
          check(pkg.isManagedIdentityError(error), "isManagedIdentityError");
          equal(error.code, "capability_unavailable", "code");
          equal(error.source, "service-fabric", "source");
          check(error.message.includes("workerd"), `the message names workerd: ${error.message}`);
          const after = await counts();
          equal(after.serviceFabricConnections, before.serviceFabricConnections, "TLS connections");
          equal(after.serviceFabric, before.serviceFabric, "requests");
        },
      },
    );
    return cases;
  }

  /** This runtime's own platform, with Arc's tokens folder moved to the temporary one. */
  const platformWithArcFolder = (): Package.Platform => {
    const options = { arcTokensFolder: variable("arcTokensFolder") };
    const platform =
      runtime === "deno"
        ? pkg.createDenoPlatform(options)
        : runtime === "bun"
          ? pkg.createBunPlatform(options)
          : pkg.createNodePlatform(options);
    equal(platform.name, runtime, "platform name");
    return platform;
  };

  cases.push(
    {
      name: "Azure Arc: answers the 401 challenge with the key file it names, then the cache",
      async run() {
        const client = new pkg.ManagedIdentityClient(new pkg.SystemAssignedManagedIdentity(), {
          env: arcEnv(),
          platform: platformWithArcFolder(),
        });
        equal(client.getManagedIdentitySource(), "azure-arc", "detected source");
        const before = await counts();
        const first = await client.acquireTokenForClient({
          resource: "https://management.azure.com",
        });
        equal(first.source, "azure-arc", "back-end");
        equal(first.tokenSource, "identity_provider", "first token source");
        // The endpoint issues `arc-` tokens only for the key of a file it wrote for a challenge.
        check(first.accessToken.startsWith("arc-"), "the token came from the Arc endpoint");
        const after = await counts();
        equal(after.arcChallenges, before.arcChallenges + 1, "challenges");
        equal(after.arc, before.arc + 1, "tokens issued");
        const second = await client.acquireTokenForClient({
          resource: "https://management.azure.com",
        });
        equal(second.tokenSource, "cache", "second token source");
        equal(second.accessToken, first.accessToken, "cached token");
      },
    },
    {
      name: "Azure Arc: a challenge naming a file outside the agent's tokens folder is refused",
      async run() {
        // The runtime's default platform: the agent's folder, which the temporary one is not.
        const client = new pkg.ManagedIdentityClient(new pkg.SystemAssignedManagedIdentity(), {
          env: arcEnv(),
        });
        const before = await counts();
        const error = await rejection(
          client.acquireTokenForClient({ resource: "https://management.azure.com" }),
          "a key file outside /var/opt/azcmagent/tokens/",
        );
        check(pkg.isManagedIdentityError(error), "isManagedIdentityError");
        equal(error.code, "invalid_response", "code");
        equal(error.source, "azure-arc", "source");
        check(error.message.includes("tokens folder"), `the message says why: ${error.message}`);
        const after = await counts();
        equal(after.arcChallenges, before.arcChallenges + 1, "challenges");
        equal(after.arc, before.arc, "tokens issued");
      },
    },
    {
      name: "Service Fabric: a token over TLS pinned to the server's certificate thumbprint",
      async run() {
        const client = new pkg.ManagedIdentityClient(
          new pkg.SystemAssignedManagedIdentity(),
          // The runtime's default platform: pinning must work without any setup.
          { env: fabricEnv(variable("serviceFabricThumbprint")) },
        );
        equal(client.getManagedIdentitySource(), "service-fabric", "detected source");
        const before = await counts();
        const token = await client.acquireTokenForClient({ resource: "https://vault.azure.net" });
        equal(token.source, "service-fabric", "back-end");
        equal(token.tokenSource, "identity_provider", "token source");
        // The endpoint issues `fabric-` tokens only to requests carrying its secret header.
        check(token.accessToken.startsWith("fabric-"), "the token came from the Fabric endpoint");
        const after = await counts();
        equal(after.serviceFabricConnections, before.serviceFabricConnections + 1, "connections");
        equal(after.serviceFabric, before.serviceFabric + 1, "requests");
      },
    },
    {
      name: "Service Fabric: another thumbprint is refused with certificate_mismatch, nothing sent",
      async run() {
        const real = variable("serviceFabricThumbprint");
        // The real thumbprint with its first hex digit changed: one bit of difference is enough.
        const wrong = `${real[0] === "0" ? "1" : "0"}${real.slice(1)}`;
        const client = new pkg.ManagedIdentityClient(new pkg.SystemAssignedManagedIdentity(), {
          env: fabricEnv(wrong),
        });
        const before = await counts();
        const error = await rejection(
          client.acquireTokenForClient({ resource: "https://vault.azure.net" }),
          "a pin the server's certificate does not match",
        );
        check(pkg.isManagedIdentityError(error), "isManagedIdentityError");
        equal(error.code, "certificate_mismatch", "code");
        equal(error.source, "service-fabric", "source");
        check(
          !error.message.includes(variable("serviceFabricSecret")),
          "the message does not carry the secret",
        );
        // The driver checks the totals again once the child has exited, so a request arriving
        // after this point is still caught.
        equal((await counts()).serviceFabric, before.serviceFabric, "requests");
      },
    },
  );

  return cases;
}
