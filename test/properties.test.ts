import fc from "fast-check";
import { createStorage } from "unstorage";
import { describe, expect, it } from "vitest";
import type { FetchLike } from "../src/http.ts";
import { parseManagedIdentity } from "../src/identity.ts";
import {
  ManagedIdentityClient,
  ManagedIdentityError,
  type ManagedIdentitySource,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../src/index.ts";
import type { Platform } from "../src/platform/types.ts";
import { normalizeResource } from "../src/resource.ts";
import { parseExpiresOn, parseTokenResponse, TokenResponseProblem } from "../src/token.ts";

/** Runs `run`; it must return normally or throw a ManagedIdentityError with one of `codes`. */
function onlyManagedIdentityErrors(run: () => unknown, codes?: string[]): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ManagedIdentityError);
    if (codes) expect(codes).toContain((error as ManagedIdentityError).code);
  }
}

const idType = fc.constantFrom(
  "SystemAssigned",
  "SystemAssignedManagedIdentity",
  "ClientId",
  "ObjectId",
  "ResourceId",
  "clientid",
  "",
  "Bogus",
);
const nearValidConfig = fc.record(
  {
    ManagedIdentityIdType: fc.oneof(idType, fc.anything()),
    Id: fc.oneof(fc.string(), fc.constant(null), fc.anything()),
  },
  { requiredKeys: [] },
);

describe("properties", () => {
  it("any identity config is accepted into a well-formed identity or refused as invalid_managed_identity", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          nearValidConfig,
          fc.json(),
          nearValidConfig.map((value) => JSON.stringify(value)),
        ),
        (input) => {
          onlyManagedIdentityErrors(() => {
            const identity = parseManagedIdentity(input);
            if (identity.kind !== "systemAssigned")
              expect(identity.id.trim().length).toBeGreaterThan(0);
          }, ["invalid_managed_identity"]);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("any UserAssignedManagedIdentity options either select exactly one id or are refused", () => {
    const options = fc.record(
      { clientId: fc.anything(), objectId: fc.anything(), resourceId: fc.anything() },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(options, fc.anything()), (input) => {
        onlyManagedIdentityErrors(() => {
          const identity = new UserAssignedManagedIdentity(input as never);
          expect(["clientId", "objectId", "resourceId"]).toContain(identity.kind);
          expect(JSON.parse(JSON.stringify(identity)).Id).toBe(identity.id);
        }, ["invalid_managed_identity"]);
      }),
      { numRuns: 2000 },
    );
  });

  it("any resource normalises to one non-empty resource without /.default, or is refused", () => {
    const scopes = fc.oneof(
      fc.anything(),
      fc.string(),
      fc.webUrl(),
      fc.webUrl().map((url) => `${url}/.default`),
      fc.array(fc.webUrl(), { minLength: 2, maxLength: 3 }).map((urls) => urls.join(" ")),
    );
    fc.assert(
      fc.property(scopes, (input) => {
        onlyManagedIdentityErrors(() => {
          const resource = normalizeResource(input);
          expect(resource.length).toBeGreaterThan(0);
          expect(resource).not.toMatch(/\s/);
          expect(resource.endsWith("/.default")).toBe(false);
        }, ["invalid_resource"]);
      }),
      { numRuns: 2000 },
    );
  });

  it("any expires_on value reads as whole epoch seconds or not at all", () => {
    const dates = fc.date({
      noInvalidDate: true,
      min: new Date("1970-01-01"),
      max: new Date("2200-01-01"),
    });
    const values = fc.oneof(
      fc.anything(),
      fc.double(),
      fc.string(),
      dates.map((date) => date.toISOString()),
      dates.map((date) => String(Math.floor(date.getTime() / 1000))),
    );
    fc.assert(
      fc.property(values, (value) => {
        const seconds = parseExpiresOn(value);
        if (seconds !== undefined) {
          expect(Number.isSafeInteger(seconds)).toBe(true);
          expect(seconds).toBeGreaterThanOrEqual(-86_400);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("ISO and epoch forms of the same instant agree", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 7_000_000_000 }), (epoch) => {
        const iso = new Date(epoch * 1000).toISOString();
        expect(parseExpiresOn(iso)).toBe(epoch);
        expect(parseExpiresOn(String(epoch))).toBe(epoch);
        expect(parseExpiresOn(epoch)).toBe(epoch);
      }),
    );
  });

  it("any token response body yields a usable token record or a stated problem", () => {
    const body = fc.oneof(
      fc.anything(),
      fc.record(
        {
          access_token: fc.oneof(fc.string(), fc.anything()),
          expires_on: fc.oneof(fc.integer(), fc.string(), fc.anything()),
          expires_in: fc.oneof(fc.integer(), fc.string(), fc.anything()),
          refresh_in: fc.oneof(fc.integer(), fc.anything()),
          token_type: fc.oneof(fc.constant("Bearer"), fc.anything()),
        },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(body, (value) => {
        const now = 1_800_000_000;
        const result = parseTokenResponse(value, "r", now);
        if (result instanceof TokenResponseProblem) return;
        expect(result.accessToken).toMatch(/^[\x21-\x7e]+$/);
        expect(Number.isSafeInteger(result.expiresOn)).toBe(true);
        if (result.refreshOn !== undefined) {
          expect(result.refreshOn).toBeGreaterThan(now);
          expect(result.refreshOn).toBeLessThan(result.expiresOn);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

const SOURCE_ENV: Record<ManagedIdentitySource, Record<string, string>> = {
  imds: {},
  "app-service": { IDENTITY_ENDPOINT: "http://127.0.0.1:1/token", IDENTITY_HEADER: "s" },
  "machine-learning": { MSI_ENDPOINT: "http://127.0.0.1:1/token", MSI_SECRET: "s" },
  "cloud-shell": { MSI_ENDPOINT: "http://127.0.0.1:1/token" },
  "service-fabric": {
    IDENTITY_ENDPOINT: "https://127.0.0.1:1/token",
    IDENTITY_HEADER: "s",
    IDENTITY_SERVER_THUMBPRINT: "ab".repeat(20),
  },
  "azure-arc": {
    IDENTITY_ENDPOINT: "http://127.0.0.1:1/token",
    IMDS_ENDPOINT: "http://127.0.0.1:1",
  },
  "workload-identity": {
    AZURE_FEDERATED_TOKEN_FILE: "/var/run/token",
    AZURE_TENANT_ID: "tenant.example",
    AZURE_CLIENT_ID: "c",
    AZURE_AUTHORITY_HOST: "https://login.example",
  },
};

const KEY_FILE = "/tokens/a.key";

/**
 * A platform with two files (Arc's key, the federated token) and a "pinned" fetch that is the
 * test's fetch: every back-end runs in memory, and every file it reads is recorded.
 */
function fakePlatform(fetch: FetchLike, read: string[] = []): Platform {
  const files = new Map([
    [KEY_FILE, "arc-key"],
    ["/var/run/token", "assertion"],
  ]);
  return {
    name: "node",
    os: "linux",
    getEnv: () => undefined,
    fileExists: () => false,
    azureArc: { tokensFolder: "/tokens/" },
    realPath: async (path) => {
      if (path === "/tokens/" || files.has(path)) return path;
      throw new Error("no such file");
    },
    readTextFile: async (path) => {
      read.push(path);
      const text = files.get(path);
      if (text === undefined) throw new Error("no such file");
      return text;
    },
    pinnedFetch: (input, init) => fetch(input, init),
  };
}

describe("any answer from any endpoint", () => {
  const status = fc.oneof(
    fc.constantFrom(200, 200, 200, 201, 204, 301, 302, 400, 401, 404, 410, 429, 500, 503),
    fc.integer({ min: 200, max: 599 }),
  );
  const body = fc.oneof(
    fc.string(),
    fc.json(),
    fc.jsonValue().map((value) => JSON.stringify(value)),
    fc
      .record(
        {
          access_token: fc.oneof(fc.string(), fc.constant("tok")),
          expires_in: fc.oneof(fc.integer(), fc.string()),
          expires_on: fc.oneof(fc.integer(), fc.string()),
        },
        { requiredKeys: [] },
      )
      .map((value) => JSON.stringify(value)),
    fc
      .record({
        error: fc.oneof(fc.string(), fc.record({ code: fc.string(), message: fc.string() })),
        error_description: fc.string(),
      })
      .map((value) => JSON.stringify(value)),
  );
  const headers = fc.dictionary(
    fc.constantFrom("retry-after", "content-type", "www-authenticate", "location"),
    fc.string(),
  );

  it.each(Object.keys(SOURCE_ENV))(
    "%s: ends in a token or a ManagedIdentityError, never anything else",
    async (source) => {
      await fc.assert(
        fc.asyncProperty(status, body, headers, async (code, text, extra) => {
          const fetch = async () =>
            new Response(code === 204 ? null : text, { status: code, headers: extra });
          const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
            env: SOURCE_ENV[source as ManagedIdentitySource],
            source: source as ManagedIdentitySource,
            fetch,
            platform: fakePlatform(fetch),
            retry: false,
            httpCache: false,
          });
          try {
            const token = await client.acquireTokenForClient({ resource: "https://r.example" });
            expect(code).toBeGreaterThanOrEqual(200);
            expect(code).toBeLessThan(300);
            expect(token.accessToken.length).toBeGreaterThan(0);
          } catch (error) {
            expect(error).toBeInstanceOf(ManagedIdentityError);
          }
        }),
        { numRuns: 300 },
      );
    },
  );
});

describe("Azure Arc's WWW-Authenticate header", () => {
  const realm = fc.oneof(
    fc.constantFrom(
      KEY_FILE,
      `"${KEY_FILE}"`,
      "/tokens/../etc/shadow.key",
      "/tokens/sub/a.key",
      "/other/a.key",
      "/tokens/a.txt",
      "tokens/a.key",
      "/tokens/",
      "",
    ),
    fc.string(),
    fc.string().map((name) => `/tokens/${name}`),
  );
  const header = fc.oneof(
    realm.map((value) => `Basic realm=${value}`),
    realm.map((value) => `basic   realm=${value}  `),
    fc.string(),
    fc.constant(""),
  );

  it("any header ends in a token or a ManagedIdentityError, and only the key file is ever read", async () => {
    await fc.assert(
      fc.asyncProperty(header, async (value) => {
        const read: string[] = [];
        let calls = 0;
        const fetch = async (_input: Request | string | URL, init?: RequestInit) => {
          calls += 1;
          const authorized = new Headers(init?.headers).get("authorization");
          if (authorized === "Basic arc-key")
            return Response.json({ access_token: "t", expires_in: 3600 });
          return new Response(null, {
            status: 401,
            headers: value ? { "www-authenticate": value } : {},
          });
        };
        const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
          env: SOURCE_ENV["azure-arc"],
          fetch,
          platform: fakePlatform(fetch, read),
          retry: false,
          httpCache: false,
        });
        try {
          const token = await client.acquireTokenForClient({ resource: "https://r.example" });
          expect(token.accessToken).toBe("t");
          expect(read).toEqual([KEY_FILE]);
        } catch (error) {
          expect(error).toBeInstanceOf(ManagedIdentityError);
          expect(read.every((path) => path === KEY_FILE)).toBe(true);
        }
        expect(calls).toBeLessThanOrEqual(2);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("cache isolation", () => {
  it("randomised identities and resources never receive another's token, through one shared storage", async () => {
    const identity = fc.oneof(
      fc.constant<SystemAssignedManagedIdentity | UserAssignedManagedIdentity>(
        new SystemAssignedManagedIdentity(),
      ),
      fc
        .tuple(
          fc.constantFrom("clientId", "objectId", "resourceId"),
          fc.constantFrom("a", "A", "b", "a/b", "a:b", "a?b"),
        )
        .map(([kind, id]) => new UserAssignedManagedIdentity({ [kind]: id } as never)),
    );
    const resource = fc.constantFrom(
      "https://r",
      "https://r/",
      "https://R",
      "https://r/x?y",
      "api://r:s",
      "https://r/.default",
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(identity, resource), { minLength: 1, maxLength: 12 }),
        async (calls) => {
          const storage = createStorage();
          let issued = 0;
          // The token names what it was issued for, so a cross-served token is visible.
          const fetch = async (input: Request | string | URL) => {
            const url = new URL(String(input));
            const who =
              url.searchParams.get("client_id") ??
              url.searchParams.get("object_id") ??
              url.searchParams.get("msi_res_id") ??
              "system";
            const kind = url.searchParams.has("client_id")
              ? "c"
              : url.searchParams.has("object_id")
                ? "o"
                : url.searchParams.has("msi_res_id")
                  ? "r"
                  : "s";
            const token = `${++issued}|${kind}|${encodeURIComponent(who.toLowerCase())}|${encodeURIComponent(url.searchParams.get("resource") ?? "")}`;
            return Response.json({ access_token: token, expires_in: 3600 });
          };
          for (const [who, what] of calls) {
            // Two clients share the storage: one fills, the other must read only its own entries.
            const client = new ManagedIdentityClient(who, {
              env: {},
              storage,
              fetch,
              retry: false,
              httpCache: false,
            });
            const token = await client.acquireTokenForClient({ resource: what });
            const [, kind, id, resourceSeen] = token.accessToken.split("|");
            const json = who.toJSON();
            const expectedKind = {
              SystemAssigned: "s",
              ClientId: "c",
              ObjectId: "o",
              ResourceId: "r",
            }[json.ManagedIdentityIdType];
            expect(kind).toBe(expectedKind);
            expect(decodeURIComponent(id ?? "")).toBe(
              json.Id === null ? "system" : json.Id.toLowerCase(),
            );
            expect(decodeURIComponent(resourceSeen ?? "")).toBe(normalizeResource(what));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
