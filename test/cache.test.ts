import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStorage, type Storage } from "unstorage";
import fsDriver from "unstorage/drivers/fs";
import memoryDriver from "unstorage/drivers/memory";
import redisDriver from "unstorage/drivers/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CACHE_KEY_PREFIX,
  ManagedIdentityClient,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../src/index.ts";
import { type RedisServer, startRedis } from "./helpers/redis.ts";
import { startServer, type TestServer } from "./helpers/server.ts";

let server: TestServer;
let redis: RedisServer;
let folder: string;
let issued = 0;
const storages: Storage[] = [];

beforeAll(async () => {
  server = await startServer((request) => ({
    body: {
      access_token: `token-${++issued}-${request.query.client_id ?? "system"}`,
      expires_in: 3600,
    },
  }));
  redis = await startRedis();
  folder = await mkdtemp(join(tmpdir(), "mi-cache-"));
}, 120_000);

afterAll(async () => {
  await Promise.all(storages.map((storage) => storage.dispose()));
  await server.close();
  await redis.stop();
  await rm(folder, { recursive: true, force: true });
});

const drivers: [string, () => Storage][] = [
  ["memory", () => createStorage({ driver: memoryDriver() })],
  ["fs", () => createStorage({ driver: fsDriver({ base: join(folder, crypto.randomUUID()) }) })],
  [
    "redis",
    () =>
      createStorage({ driver: redisDriver({ url: redis.url, base: `mi-test-${Math.random()}` }) }),
  ],
];

function client(
  storage: Storage,
  identity = new SystemAssignedManagedIdentity() as
    | SystemAssignedManagedIdentity
    | UserAssignedManagedIdentity,
) {
  return new ManagedIdentityClient(identity, {
    env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: server.url },
    storage,
    retry: false,
  });
}

describe.each(drivers)("token cache on the %s driver", (_name, create) => {
  const open = () => {
    const storage = create();
    storages.push(storage);
    return storage;
  };

  it("a second client over the same storage gets the token from the cache", async () => {
    const storage = open();
    const before = server.requests.length;
    const first = await client(storage).acquireTokenForClient({
      resource: "https://drivers.example",
    });
    const second = await client(storage).acquireTokenForClient({
      resource: "https://drivers.example",
    });
    expect(second).toMatchObject({
      tokenSource: "cache",
      accessToken: first.accessToken,
      expiresOn: first.expiresOn,
    });
    expect(server.requests.length - before).toBe(1);
    const keys = await storage.getKeys();
    expect(keys.some((key) => key.startsWith(CACHE_KEY_PREFIX))).toBe(true);
  });

  it("keeps identities apart", async () => {
    const storage = open();
    const a = await client(
      storage,
      new UserAssignedManagedIdentity({ clientId: "a" }),
    ).acquireTokenForClient({ resource: "https://drivers.example" });
    const b = await client(
      storage,
      new UserAssignedManagedIdentity({ clientId: "b" }),
    ).acquireTokenForClient({ resource: "https://drivers.example" });
    expect(a.accessToken).toContain("-a");
    expect(b.accessToken).toContain("-b");
    const again = await client(
      storage,
      new UserAssignedManagedIdentity({ clientId: "b" }),
    ).acquireTokenForClient({ resource: "https://drivers.example" });
    expect(again).toMatchObject({ tokenSource: "cache", accessToken: b.accessToken });
  });

  it("replaces a corrupt entry instead of throwing", async () => {
    const storage = open();
    await client(storage).acquireTokenForClient({ resource: "https://corrupt.example" });
    const key = (await storage.getKeys()).find((item) =>
      item.startsWith(CACHE_KEY_PREFIX),
    ) as string;
    await storage.setItemRaw(key, "{truncated");
    const result = await client(storage).acquireTokenForClient({
      resource: "https://corrupt.example",
    });
    expect(result.tokenSource).toBe("identity_provider");
    expect(await storage.getItem(key)).toMatchObject({ accessToken: result.accessToken });
  });
});

describe("fs driver files", () => {
  it("holds one file per token, named by its hash", async () => {
    const own = await mkdtemp(join(tmpdir(), "mi-fs-"));
    try {
      const storage = createStorage({ driver: fsDriver({ base: own }) });
      await client(storage).acquireTokenForClient({ resource: "https://files.example/?odd:key" });
      const files = await readdir(own, { recursive: true });
      expect(files.filter((file) => /[0-9a-f]{64}$/.test(String(file)))).toHaveLength(1);
      // A foreign file in the folder is ignored.
      await writeFile(join(own, "unrelated.json"), "{}");
      expect(
        (
          await client(storage).acquireTokenForClient({
            resource: "https://files.example/?odd:key",
          })
        ).tokenSource,
      ).toBe("cache");
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });
});

describe("a storage that hangs", () => {
  it("costs a cache miss after 2 s, never a call that does not return, and is logged", async () => {
    const { fakeTime, flush } = await import("./helpers/time.ts");
    const { vi } = await import("vitest");
    fakeTime();
    try {
      // Each operation is recorded as it starts; its 2 s timer is already running by then.
      const started: string[] = [];
      const never = (operation: string) => () => {
        started.push(operation);
        return new Promise<never>(() => {});
      };
      const hanging = { getItem: never("get"), setItem: never("set"), removeItem: never("remove") };
      const events: string[] = [];
      const mi = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: { AZURE_POD_IDENTITY_AUTHORITY_HOST: server.url },
        storage: hanging as unknown as Storage,
        retry: false,
        logger: (event) => events.push(event.type),
      });
      let settled = false;
      const pending = mi.acquireTokenForClient({ resource: "https://hang.example" }).finally(() => {
        settled = true;
      });
      // The read hangs: the call has not settled until its 2 s run out.
      while (!started.includes("get")) await flush(1);
      await flush();
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(2000);
      // Then the token is fetched, and the write hangs until its own 2 s run out.
      while (!started.includes("set")) await flush(1);
      await flush();
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(2000);
      const token = await pending;
      expect(token.tokenSource).toBe("identity_provider");
      expect(events.filter((type) => type === "storage_error")).toHaveLength(2);
      // This process still knows the token: the next call needs no storage at all.
      expect(
        (await mi.acquireTokenForClient({ resource: "https://hang.example" })).tokenSource,
      ).toBe("cache");
    } finally {
      const { vi } = await import("vitest");
      vi.useRealTimers();
    }
  });
});
