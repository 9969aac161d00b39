/**
 * The part of an unstorage `Storage` this package uses. Any unstorage `Storage` fits; without
 * one, {@link createMemoryStorage} serves, so the core bundle does not carry unstorage itself.
 */
export interface KeyValueStorage {
  getItem(key: string): Promise<unknown>;
  setItem(key: string, value: Record<string, unknown>, options?: { ttl?: number }): Promise<void>;
  removeItem(key: string): Promise<void>;
}

/** An in-memory key-value store that honours `ttl` (seconds), so expired entries do not pile up. */
export function createMemoryStorage(): KeyValueStorage {
  const entries = new Map<string, { value: unknown; until: number }>();
  return {
    async getItem(key) {
      const entry = entries.get(key);
      if (entry && entry.until <= Date.now()) entries.delete(key);
      return entry && entry.until > Date.now() ? entry.value : null;
    },
    async setItem(key, value, options) {
      const ttl = options?.ttl;
      entries.set(key, { value, until: ttl ? Date.now() + ttl * 1000 : Number.POSITIVE_INFINITY });
    },
    async removeItem(key) {
      entries.delete(key);
    },
  };
}

/** How long one storage operation may take before it counts as failed. */
export const STORAGE_TIMEOUT_MS = 2000;

/**
 * A storage operation that settles within {@link STORAGE_TIMEOUT_MS}: a storage that hangs (a
 * Redis behind a dead connection) must cost a cache miss, not a call that never returns.
 */
export function withStorageTimeout<T>(operation: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("storage timed out")), STORAGE_TIMEOUT_MS);
  });
  let running: Promise<T>;
  try {
    running = Promise.resolve(operation());
  } catch (error) {
    running = Promise.reject(error);
  }
  running.catch(() => {});
  return Promise.race([running, timedOut]).finally(() => clearTimeout(timer));
}
