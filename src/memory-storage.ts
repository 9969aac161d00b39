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
