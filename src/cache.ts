import * as v from "valibot";
import { sha256Hex } from "./hash.ts";
import type { ManagedIdentityId } from "./identity.ts";
import { type KeyValueStorage, withStorageTimeout } from "./memory-storage.ts";
import type { ManagedIdentitySource } from "./sources/types.ts";
import { EXPIRY_MARGIN_SECONDS, isServable, type TokenRecord } from "./token.ts";

/** Prefix of every key this package writes, so a shared storage can be inspected or cleared. */
export const CACHE_KEY_PREFIX = "managed-identity:v1:";

const StoredToken = v.object({
  key: v.string(),
  accessToken: v.pipe(v.string(), v.nonEmpty()),
  tokenType: v.pipe(v.string(), v.nonEmpty()),
  expiresOn: v.pipe(v.number(), v.finite()),
  refreshOn: v.optional(v.pipe(v.number(), v.finite())),
  resource: v.string(),
});

/**
 * Identifies one cache entry: the back-end and its environment's partition (a hash of
 * `SourceDefinition.partitionVariables`), the identity (kind and id) and the resource.
 */
export function cacheIdentity(
  source: ManagedIdentitySource,
  partition: string,
  identity: ManagedIdentityId,
  resource: string,
): string {
  // Ids are GUIDs or ARM paths, both case-insensitive; the resource is kept exactly.
  const id = identity.kind === "systemAssigned" ? "" : identity.id.toLowerCase();
  return JSON.stringify([source, partition, identity.kind, id, resource]);
}

async function storageKey(identity: string): Promise<string> {
  // unstorage treats ":" "/" and "?" in keys as structure, and resources are URLs: hash instead.
  return CACHE_KEY_PREFIX + (await sha256Hex(identity));
}

/**
 * Tokens in this process's Map, in front of an optional unstorage `Storage` shared with other
 * processes: a token already known here is served without a storage round trip. Entries that are
 * corrupt, foreign or for another identity read as a miss and are overwritten by the next token.
 */
export class TokenCache {
  readonly #storage: KeyValueStorage | undefined;
  readonly #memory = new Map<string, TokenRecord>();
  readonly #onError: (operation: "get" | "set") => void;

  /** `onError` hears of a storage operation that failed or took too long (it never throws). */
  constructor(
    storage: KeyValueStorage | undefined,
    onError: (operation: "get" | "set") => void = () => {},
  ) {
    this.#storage = storage;
    this.#onError = onError;
  }

  /**
   * This process's copy of a token that may still be served at `now`: no I/O, no await. A
   * `margin` of 0 finds any unexpired token (Service Fabric's revocation names the token to
   * replace even in its last five minutes).
   */
  peek(
    identity: string,
    now: number,
    margin: number = EXPIRY_MARGIN_SECONDS,
  ): TokenRecord | undefined {
    const known = this.#memory.get(identity);
    return known && isServable(known, now, margin) ? known : undefined;
  }

  /** A token that may still be served at `now`, from this process or the storage, or undefined. */
  async get(
    identity: string,
    now: number,
    margin: number = EXPIRY_MARGIN_SECONDS,
  ): Promise<TokenRecord | undefined> {
    const known = this.peek(identity, now, margin);
    const storage = this.#storage;
    if (known || !storage) return known;
    let stored: unknown;
    try {
      const key = await storageKey(identity);
      stored = await withStorageTimeout(() => storage.getItem(key));
    } catch {
      // An unreachable storage is a cache miss, not a failed token request.
      this.#onError("get");
      return undefined;
    }
    const parsed = v.safeParse(StoredToken, stored);
    if (!parsed.success || parsed.output.key !== identity) return undefined;
    const { key: _key, ...token } = parsed.output;
    if (!isServable(token, now, margin)) return undefined;
    if (isServable(token, now)) this.#memory.set(identity, token);
    return token;
  }

  /** Stores a token that can be served; a token already too close to expiry is not stored. */
  async set(identity: string, token: TokenRecord, now: number): Promise<void> {
    if (!isServable(token, now)) {
      this.#memory.delete(identity);
      return;
    }
    this.#memory.set(identity, token);
    const storage = this.#storage;
    if (!storage) return;
    try {
      const key = await storageKey(identity);
      await withStorageTimeout(() =>
        storage.setItem(key, { key: identity, ...token }, { ttl: token.expiresOn - now }),
      );
    } catch {
      // The token is valid and this process keeps it; a storage outage must not fail the caller.
      this.#onError("set");
    }
  }
}
