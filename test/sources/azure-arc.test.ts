import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStorage } from "unstorage";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ManagedIdentityClient,
  type ManagedIdentityError,
  type ManagedIdentityInput,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../../src/index.ts";
import { createNodePlatform } from "../../src/platform/node.ts";
import type { Platform } from "../../src/platform/types.ts";
import { createWebPlatform } from "../../src/platform/web.ts";
import { azureArc } from "../../src/sources/azure-arc.ts";
import {
  type RecordedRequest,
  type Reply,
  startServer,
  type TestServer,
} from "../helpers/server.ts";
import { sourceConformance, sourceContext } from "./conformance.ts";

const TOKEN_PATH = "/metadata/identity/oauth2/token";
const SYSTEM = { kind: "systemAssigned" } as const;
// The ids the conformance suite selects: a user-assigned answer must echo the one requested.
const CLIENT_ID = "11111111-2222-3333-4444-555555555555";
const OBJECT_ID = "66666666-7777-8888-9999-000000000000";
const RESOURCE_ID =
  "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u";
// Base64-looking, with characters a re-encoding would change: it must be sent exactly as read.
const KEY = "c2VjcmV0LWFyYy1rZXk+/=";

const environment = (url: string) => ({
  IDENTITY_ENDPOINT: `${url}${TOKEN_PATH}`,
  IMDS_ENDPOINT: url,
});

sourceConformance({
  source: "azure-arc",
  env: environment,
  path: TOKEN_PATH,
  method: "GET",
  parameters: { "api-version": "2020-06-01" },
  headers: { metadata: "true" },
  // msi_res_id, as IMDS: Arc ignores App Service's mi_res_id and answers for the system identity.
  idParameters: { clientId: "client_id", objectId: "object_id", resourceId: "msi_res_id" },
  success: (token, expiresOn) => ({
    access_token: token,
    expires_in: String(expiresOn - Math.floor(Date.now() / 1000)),
    expires_on: String(expiresOn),
    resource: "https://vault.azure.net",
    token_type: "Bearer",
    client_id: CLIENT_ID,
    object_id: OBJECT_ID,
    msi_res_id: RESOURCE_ID,
  }),
  error: {
    status: 400,
    body: { error: "invalid_request", error_description: "Identity not found" },
    code: "invalid_request",
    serviceCode: "invalid_request",
  },
});

describe("azure-arc", () => {
  let server: TestServer;
  let root: string;
  /** The tokens folder the platform is pointed at, with its trailing separator. */
  let tokens: string;
  /** A folder beside it: key files there must be refused. */
  let elsewhere: string;
  const expiresOn = Math.floor(Date.now() / 1000) + 3600;

  beforeAll(async () => {
    server = await startServer();
    root = await realpath(await mkdtemp(join(tmpdir(), "mi-arc-")));
    tokens = `${join(root, "tokens")}/`;
    elsewhere = `${join(root, "elsewhere")}/`;
    await mkdir(tokens);
    await mkdir(elsewhere);
    await writeFile(`${tokens}good.key`, KEY);
    await writeFile(`${tokens}good.txt`, KEY);
    await writeFile(`${tokens}max.key`, "k".repeat(4096));
    await writeFile(`${tokens}big.key`, "k".repeat(4097));
    await writeFile(`${tokens}empty.key`, "");
    await writeFile(`${elsewhere}stolen.key`, KEY);
    await symlink(`${elsewhere}stolen.key`, `${tokens}out.key`);
    await symlink(`${tokens}good.key`, `${tokens}alias.key`);
    await symlink(elsewhere, `${tokens}subfolder`);
  });
  afterAll(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });
  afterEach(() => {
    server.requests.length = 0;
  });

  /** The agent: 401 with the realm unless the request carries the key, then a token. */
  function challengeWith(realm: string | undefined, token: (request: RecordedRequest) => Reply) {
    server.handle((request) => {
      if (request.headers.authorization === undefined) {
        return {
          status: 401,
          headers: realm === undefined ? {} : { "www-authenticate": realm },
          body: { error: "unauthorized", error_description: "key required" },
        };
      }
      return token(request);
    });
  }
  const tokenReply =
    (extra: Record<string, string> = {}) =>
    () => ({
      body: {
        access_token: "arc-token",
        expires_in: "3600",
        expires_on: String(expiresOn),
        resource: "https://vault.azure.net",
        token_type: "Bearer",
        ...extra,
      },
    });

  const platform = (overrides: Partial<Platform> = {}): Platform => ({
    ...createNodePlatform({ arcTokensFolder: tokens }),
    os: "linux",
    ...overrides,
  });
  const client = (
    identity: ManagedIdentityInput = new SystemAssignedManagedIdentity(),
    onPlatform: Platform = platform(),
  ) =>
    new ManagedIdentityClient(identity, {
      env: environment(server.url),
      storage: createStorage(),
      retry: false,
      platform: onPlatform,
    });
  const acquire = (mi = client()) =>
    mi.acquireTokenForClient({ resource: "https://vault.azure.net" });
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => {
        throw new Error("expected a failure");
      },
      (caught: unknown) => caught as ManagedIdentityError,
    );

  describe("challenge", () => {
    it("answers the 401 challenge with the key file's contents, exactly as read", async () => {
      challengeWith(`Basic realm=${tokens}good.key`, tokenReply());
      const token = await acquire();
      expect(token).toMatchObject({ accessToken: "arc-token", source: "azure-arc" });
      expect(server.requests).toHaveLength(2);
      const [first, second] = server.requests as [RecordedRequest, RecordedRequest];
      expect(first.headers.authorization).toBeUndefined();
      expect(second.headers.authorization).toBe(`Basic ${KEY}`);
      expect(second.headers.metadata).toBe("true");
      expect(second.query).toEqual(first.query);
      expect(second.query).toEqual({
        "api-version": "2020-06-01",
        resource: "https://vault.azure.net",
      });
    });

    it("accepts a key of exactly 4096 bytes, and a symbolic link that stays in the folder", async () => {
      challengeWith(`Basic realm=${tokens}max.key`, tokenReply());
      await acquire();
      expect(server.requests[1]?.headers.authorization).toBe(`Basic ${"k".repeat(4096)}`);
      server.requests.length = 0;
      challengeWith(`Basic realm=${tokens}alias.key`, tokenReply());
      await acquire();
      expect(server.requests[1]?.headers.authorization).toBe(`Basic ${KEY}`);
    });

    it("never puts the key in an error, even when the agent echoes it", async () => {
      challengeWith(`Basic realm=${tokens}good.key`, (request) => ({
        status: 403,
        body: { error: "forbidden", error_description: `bad ${request.headers.authorization}` },
      }));
      const error = await failure(acquire());
      expect(error).toMatchObject({ code: "unauthorized_client", status: 403 });
      expect(error.message).toContain("[redacted]");
      expect(String(error)).not.toContain(KEY);
      expect(JSON.stringify(error)).not.toContain(KEY);
    });

    it("returns a token without a challenge when the agent sends none", async () => {
      server.handle(tokenReply());
      await expect(acquire()).resolves.toMatchObject({ accessToken: "arc-token" });
      expect(server.requests).toHaveLength(1);
    });
  });

  describe("refuses the key file, reading nothing and sending nothing more", () => {
    it.each([
      ["a wrong extension", (): string => `${tokens}good.txt`, /is not a \.key file/],
      ["'..' in the path", (): string => `${tokens}../tokens/good.key`, /contains '\.\.'/],
      [
        "another folder",
        (): string => `${elsewhere}stolen.key`,
        /is not in the Azure Arc tokens folder/,
      ],
      [
        "an extra folder",
        (): string => `${tokens}subfolder/stolen.key`,
        /is not in the Azure Arc tokens/,
      ],
      ["a relative path", (): string => "good.key", /is not in the Azure Arc tokens folder/],
      [
        "a symbolic link out of the folder",
        (): string => `${tokens}out.key`,
        /symbolic link that leads out/,
      ],
      ["a file over 4096 bytes", (): string => `${tokens}big.key`, /larger than 4096 bytes/],
      ["an empty file", (): string => `${tokens}empty.key`, /is empty/],
      ["a missing file", (): string => `${tokens}missing.key`, /does not exist/],
    ] as const)("refuses %s", async (_name, realm, message) => {
      challengeWith(`Basic realm=${realm()}`, tokenReply());
      const error = await failure(acquire());
      expect(error).toMatchObject({ code: "invalid_response", source: "azure-arc", status: 401 });
      expect(error.message).toMatch(message);
      expect(error.message).toMatch(/it was not read/);
      expect(String(error)).not.toContain(KEY);
      // The key was never sent: the agent saw only the first, unauthenticated request.
      expect(server.requests).toHaveLength(1);
    });

    it("refuses a 401 without WWW-Authenticate", async () => {
      challengeWith(undefined, tokenReply());
      const error = await failure(acquire());
      expect(error).toMatchObject({ code: "invalid_response", status: 401 });
      expect(error.message).toMatch(/without a WWW-Authenticate header/);
      expect(server.requests).toHaveLength(1);
    });

    it.each([
      `Bearer realm=${tokens}good.key`,
      "Basic",
      `Basic realm=`,
      `Digest realm=${tokens}good.key, nonce="1"`,
    ])("refuses the malformed header %j", async (header) => {
      challengeWith(header, tokenReply());
      const error = await failure(acquire());
      expect(error).toMatchObject({ code: "invalid_response", status: 401 });
      expect(error.message).toMatch(/is not `Basic realm=/);
      expect(server.requests).toHaveLength(1);
    });

    it("refuses on an operating system other than Linux or Windows", async () => {
      challengeWith(`Basic realm=${tokens}good.key`, tokenReply());
      const error = await failure(acquire(client(undefined, platform({ os: "darwin" }))));
      expect(error).toMatchObject({ code: "capability_unavailable", source: "azure-arc" });
      expect(error.message).toMatch(/Linux and Windows only, not on darwin/);
      // Refused before the first request: the challenge could never be answered.
      expect(server.requests).toHaveLength(0);
    });

    it("refuses where the runtime has no file system", async () => {
      challengeWith(`Basic realm=${tokens}good.key`, tokenReply());
      const web = { ...createWebPlatform(), os: "linux" as const };
      const error = await failure(acquire(client(undefined, web)));
      expect(error).toMatchObject({ code: "capability_unavailable", source: "azure-arc" });
      expect(error.message).toMatch(/\(web\) cannot read/);
      expect(server.requests).toHaveLength(0);
    });
  });

  describe("key file locations", () => {
    /** A platform that fails the test if a file is touched: these checks come before any. */
    const untouchable = (os: "linux" | "windows", env: Record<string, string> = {}): Platform => ({
      name: "node",
      os,
      getEnv: (name) => env[name],
      realPath: () => Promise.reject(new Error("realPath must not be called")),
      readTextFile: () => Promise.reject(new Error("readTextFile must not be called")),
    });
    const challenge = (realm: string, onPlatform: Platform) =>
      failure(
        azureArc.challenge?.(
          { status: 401, headers: new Headers({ "www-authenticate": `Basic realm=${realm}` }) },
          {
            method: "GET",
            url: "http://127.0.0.1/",
            headers: {},
            endpointKind: "local",
            secrets: [],
          },
          sourceContext({}, { platform: onPlatform }),
        ) as Promise<unknown>,
      );

    it("uses the agent's folder on Linux by default", async () => {
      const linux = untouchable("linux");
      expect((await challenge("/var/opt/azcmagent/tokens/x/../y.key", linux)).message).toMatch(
        /'\.\.'/,
      );
      expect((await challenge("/var/opt/azcmagent/y.key", linux)).message).toMatch(
        /not in the Azure Arc tokens folder \/var\/opt\/azcmagent\/tokens\//,
      );
      // The right folder passes the path checks and reaches the file system.
      expect((await challenge("/var/opt/azcmagent/tokens/y.key", linux)).message).toMatch(
        /does not exist/,
      );
    });

    it("uses %ProgramData% on Windows, where both slashes separate folders", async () => {
      const windows = untouchable("windows", { ProgramData: "C:\\ProgramData" });
      const folder = "C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\";
      expect((await challenge(`${folder}..\\x.key`, windows)).message).toMatch(/'\.\.'/);
      expect((await challenge(`${folder}sub/x.key`, windows)).message).toMatch(
        /not in the Azure Arc tokens folder/,
      );
      expect((await challenge("C:\\Temp\\x.key", windows)).message).toMatch(
        /not in the Azure Arc tokens folder C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens\\/,
      );
      // An alternate data stream (`file:stream`) is not a plain key file name.
      expect((await challenge(`${folder}x:y.key`, windows)).message).toMatch(
        /characters a key file name never has/,
      );
      expect((await challenge(`${folder}x.key`, windows)).message).toMatch(/does not exist/);
    });

    it("cannot find the folder on Windows without %ProgramData%", async () => {
      const error = await challenge("C:\\x.key", untouchable("windows"));
      expect(error).toMatchObject({ code: "capability_unavailable" });
    });
  });

  describe("user-assigned identities must be echoed", () => {
    it.each([
      ["clientId", { clientId: CLIENT_ID }, { client_id: CLIENT_ID.toUpperCase() }],
      ["objectId", { objectId: OBJECT_ID }, { object_id: OBJECT_ID }],
      ["resourceId in msi_res_id", { resourceId: RESOURCE_ID }, { msi_res_id: RESOURCE_ID }],
      [
        "resourceId in mi_res_id",
        { resourceId: RESOURCE_ID },
        { mi_res_id: RESOURCE_ID.toLowerCase() },
      ],
    ] as const)("accepts the echoed %s, case-insensitively", async (_name, selector, echo) => {
      server.handle(tokenReply(echo));
      const token = await acquire(client(new UserAssignedManagedIdentity(selector as never)));
      expect(token.accessToken).toBe("arc-token");
    });

    it.each([
      ["no id at all", { clientId: CLIENT_ID }, {}],
      ["another client id", { clientId: CLIENT_ID }, { client_id: OBJECT_ID }],
      ["the id in the wrong field", { objectId: OBJECT_ID }, { client_id: OBJECT_ID }],
      ["another resource id", { resourceId: RESOURCE_ID }, { msi_res_id: `${RESOURCE_ID}2` }],
    ] as const)("refuses %s and caches nothing", async (_name, selector, echo) => {
      server.handle(tokenReply(echo));
      const mi = client(new UserAssignedManagedIdentity(selector as never));
      const error = await failure(acquire(mi));
      expect(error).toMatchObject({ code: "identity_mismatch", source: "azure-arc" });
      expect(error.message).toMatch(/did not echo the requested user-assigned identity/);
      // Nothing was cached: the next call asks again.
      await failure(acquire(mi));
      expect(server.requests).toHaveLength(2);
    });

    it("checks nothing for the system-assigned identity", async () => {
      server.handle(tokenReply({ client_id: "whatever" }));
      await expect(acquire()).resolves.toMatchObject({ accessToken: "arc-token" });
    });
  });

  describe("detection", () => {
    it("is selected by IDENTITY_ENDPOINT and IMDS_ENDPOINT together", () => {
      const web = createWebPlatform();
      const env = (values: Record<string, string>) => sourceContext(values).env;
      expect(azureArc.detect(env(environment(server.url)), web, SYSTEM)).toBe(true);
      expect(azureArc.detect(env({ IDENTITY_ENDPOINT: server.url }), web, SYSTEM)).toBe(false);
      expect(azureArc.detect(env({ IMDS_ENDPOINT: server.url }), web, SYSTEM)).toBe(false);
    });

    it("is selected by the agent file alone, and defaults to the agent's endpoint", async () => {
      const agentFile = join(root, "himds");
      const withAgent = createNodePlatform({ arcAgentFile: agentFile });
      const linux = { ...withAgent, os: "linux" as const };
      const mi = (onPlatform: Platform) =>
        new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
          env: {},
          platform: onPlatform,
        });
      expect(mi(linux).getManagedIdentitySource()).toBe("imds");
      await writeFile(agentFile, "");
      expect(mi(linux).getManagedIdentitySource()).toBe("azure-arc");
      expect(mi({ ...withAgent, os: "darwin" }).getManagedIdentitySource()).toBe("imds");
      const request = await azureArc.createRequest(sourceContext({}, { platform: linux }));
      expect(request.url).toBe("http://127.0.0.1:40342/metadata/identity/oauth2/token");
    });

    it("looks for the agent where it is installed on Linux and Windows", () => {
      const asked: string[] = [];
      const probe = (os: "linux" | "windows"): Platform => ({
        name: "node",
        os,
        getEnv: (name) => (name === "ProgramFiles" ? "C:\\Program Files" : undefined),
        fileExists: (path) => {
          asked.push(path);
          return false;
        },
      });
      azureArc.detect(() => undefined, probe("linux"), SYSTEM);
      azureArc.detect(() => undefined, probe("windows"), SYSTEM);
      expect(asked).toEqual([
        "/opt/azcmagent/bin/himds",
        "C:\\Program Files\\AzureConnectedMachineAgent\\himds.exe",
      ]);
    });
  });
});
