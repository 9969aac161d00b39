import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The libraries compared, by the key used on the command line and in the results. */
export const LIBRARY_KEYS = ["ours", "msal", "identity"] as const;
export type LibraryKey = (typeof LIBRARY_KEYS)[number];

/** One library behind the same two calls: make a client, get a token for a resource. */
export interface Library {
  key: LibraryKey;
  /** How the results name it. */
  label: string;
  /** A new client for the system-assigned identity, pointed (by the environment) at the local IMDS. */
  create(): Promise<(resource: string) => Promise<string>>;
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * Our package as npm users get it: src/ built into one ESM file with the dependencies left as
 * imports (as tsdown builds dist/), by bench/run.ts before any child starts.
 */
export const OUR_BUILD = `${ROOT}node_modules/.cache/managed-identity-bench/client.mjs`;

/** The version of this package or of an installed one, as its package.json says. */
export function packageVersion(name: string): string {
  const own = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as {
    name: string;
    version: string;
  };
  if (name === own.name) return own.version;
  // Read by path: not every package exports its package.json.
  const manifest = JSON.parse(readFileSync(`${ROOT}node_modules/${name}/package.json`, "utf8")) as {
    version: string;
  };
  return manifest.version;
}

export const LIBRARIES: Record<LibraryKey, Library> = {
  ours: {
    key: "ours",
    label: "@managed-identity/client",
    async create() {
      const { ManagedIdentityClient, SystemAssignedManagedIdentity } = (await import(
        pathToFileURL(OUR_BUILD).href
      )) as typeof import("../src/index.ts");
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity());
      return async (resource) => (await client.acquireTokenForClient({ resource })).accessToken;
    },
  },
  msal: {
    key: "msal",
    label: "@azure/msal-node",
    async create() {
      const { ManagedIdentityApplication } = await import("@azure/msal-node");
      const application = new ManagedIdentityApplication();
      return async (resource) => (await application.acquireToken({ resource })).accessToken;
    },
  },
  identity: {
    key: "identity",
    label: "@azure/identity",
    async create() {
      const { ManagedIdentityCredential } = await import("@azure/identity");
      const credential = new ManagedIdentityCredential();
      return async (resource) => {
        const token = await credential.getToken(`${resource}/.default`);
        if (!token) throw new Error("@azure/identity returned no token");
        return token.token;
      };
    },
  },
};

/** How a child process marks its one line of results. */
export const RESULT_PREFIX = "BENCH_RESULT ";

/** Cold acquisitions per library: each adds one token to its cache. */
export const COLD_CALLS = 200;

/** What a timing run measured, in microseconds and operations per second. */
export interface TimingResult {
  cacheHitMedianUs: number;
  cacheHitOpsPerSecond: number;
  cacheHitSamples: number;
  /** The same, after the cold acquisitions added COLD_CALLS more tokens to the cache. */
  fullCacheHitMedianUs: number;
  coldMedianUs: number;
  coldSamples: number;
  bareFetchMedianUs: number;
}

export interface ConcurrencyResult {
  callers: number;
  fulfilled: number;
  durationMs: number;
}

export interface MemoryResult {
  tokens: number;
  heapDeltaBytes: number;
  durationMs: number;
}
