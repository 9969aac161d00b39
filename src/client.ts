import type { Storage } from "unstorage";
import * as v from "valibot";
import { acquire } from "./acquire.ts";
import { cacheIdentity, TokenCache } from "./cache.ts";
import { ManagedIdentityError } from "./errors.ts";
import { sha256Hex } from "./hash.ts";
import type { FetchLike, Transport } from "./http.ts";
import {
  describeIdentity,
  type ManagedIdentityId,
  type ManagedIdentityInput,
  parseManagedIdentity,
} from "./identity.ts";
import type { ManagedIdentityLogEvent, ManagedIdentityLogger } from "./logger.ts";
import { createMemoryStorage } from "./memory-storage.ts";
import { defaultPlatform, type Platform } from "./platform/index.ts";
import { normalizeResource } from "./resource.ts";
import type { RetryOptions } from "./retry.ts";
import { detectSource, SOURCE_NAMES, SOURCES } from "./sources/index.ts";
import type {
  EnvReader,
  ManagedIdentitySource,
  SourceContext,
  SourceDefinition,
  TokenRequest,
} from "./sources/types.ts";
import { ThrottleCache } from "./throttle.ts";
import type { TokenRecord } from "./token.ts";

/** Options of {@link ManagedIdentityClient}. */
export interface ManagedIdentityClientOptions {
  /**
   * A fetch-compatible function for every request.
   * @default globalThis.fetch
   */
  fetch?: FetchLike;
  /**
   * Where tokens are cached: any unstorage `Storage` (memory, fs, redis, Cloudflare KV, Deno KV…).
   * @default an in-memory storage private to this client
   */
  storage?: Storage;
  /**
   * Environment variables to use instead of the process environment: a Worker's `env`, or a test's.
   * @default the runtime's environment (Node, Deno, Bun); none in Workers
   */
  env?: Record<string, unknown>;
  /**
   * Force a back-end instead of detecting it from the environment.
   * @default detected, in the order of `DETECTION_ORDER`
   */
  source?: ManagedIdentitySource;
  /**
   * Timeout of each request to the endpoint, in milliseconds.
   * @default 10000
   */
  timeout?: number;
  /**
   * Hosts, besides loopback and link-local addresses, that an endpoint taken from the
   * environment may point at (an emulator in another container, say). Secrets are sent there.
   * @default []
   */
  allowedHosts?: string[];
  /**
   * Retries of failed answers, per back-end as its guidance says (IMDS: 1 s, 2 s, 4 s, and 7 × 10 s
   * through a 410; others: `Retry-After`, at least 1 s; 3 retries). `false` turns them off.
   * @default {}
   */
  retry?: RetryOptions | false;
  /**
   * The most one `acquireTokenForClient` may take, retries and waits included, in milliseconds.
   * It covers the IMDS 410 upgrade window (about 70 s).
   * @default 90000
   */
  deadline?: number;
  /**
   * Where answers that asked for a pause (429, 5xx, `Retry-After`) are remembered, so the same
   * request within that pause is answered without touching the network. `false` turns it off.
   * @default an in-memory storage private to this client
   */
  httpCache?: Storage | false;
  /**
   * Receives structured events (cache hit and miss, requests, retries, refreshes, throttling).
   * Events never contain a token or a secret.
   */
  logger?: ManagedIdentityLogger;
  /**
   * Client capabilities such as `cp1` (the app handles claims challenges). Sent where the back-end
   * takes them (Service Fabric's `xms_cc`); they never bypass the cache.
   * @default []
   */
  clientCapabilities?: string[];
  /**
   * The runtime layer (environment, files, pinned TLS). Tests and unusual hosts may pass their own.
   * @default the platform of the runtime this code runs in
   */
  platform?: Platform;
}

/** Options of {@link ManagedIdentityClient.acquireTokenForClient}. */
export interface AcquireTokenOptions {
  /** The resource the token is for, e.g. `https://management.azure.com`; a scope's `/.default` is removed. */
  resource: string;
  /**
   * A claims challenge from a resource's `WWW-Authenticate` header: the cache is skipped and a new
   * token fetched. The claims themselves are not sent to managed identity endpoints.
   */
  claimsChallenge?: string | undefined;
  /** Aborts waiting for this call; a request shared with other callers carries on for them. */
  signal?: AbortSignal | undefined;
}

/** A token and where it came from. Times are epoch seconds. */
export interface AccessTokenResult {
  /** The access token: send it as `Authorization: <tokenType> <accessToken>`. */
  accessToken: string;
  /** The token type, normally `Bearer`. */
  tokenType: string;
  /** When the token expires, in epoch seconds. */
  expiresOn: number;
  /** Seconds left until `expiresOn`. */
  expiresIn: number;
  /** When a fresh token will be fetched in the background, in epoch seconds. */
  refreshOn?: number;
  /** The resource the token is for. */
  resource: string;
  /** `cache` when served from the token cache, `identity_provider` when just fetched. */
  tokenSource: "cache" | "identity_provider";
  /** The back-end that issued the token. */
  source: ManagedIdentitySource;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** How many resource strings `#target` remembers before starting over. */
const MAX_REMEMBERED_TARGETS = 1000;

/** What a resource string resolves to, once per client. */
interface CacheTarget {
  resource: string;
  key: string;
  source: SourceDefinition;
}
const DEFAULT_DEADLINE_MS = 90_000;
/** After a failed background refresh, the cached token is served this long before trying again. */
const REFRESH_COOL_DOWN_MS = 30_000;

const StorageSchema = v.custom<Storage>(
  (value) =>
    value !== null &&
    typeof value === "object" &&
    typeof (value as Storage).getItem === "function" &&
    typeof (value as Storage).setItem === "function",
  "expected an unstorage Storage (from createStorage)",
);
const Milliseconds = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(3_600_000));

const OptionsSchema = v.strictObject({
  fetch: v.optional(v.function()),
  storage: v.optional(StorageSchema),
  httpCache: v.optional(v.union([StorageSchema, v.literal(false)])),
  retry: v.optional(
    v.union([
      v.literal(false),
      v.strictObject({
        maxRetries: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(20))),
        delayMs: v.optional(Milliseconds),
        goneDelayMs: v.optional(Milliseconds),
        goneMaxRetries: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(20))),
      }),
    ]),
  ),
  deadline: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(3_600_000))),
  logger: v.optional(v.function()),
  // A Worker's env also holds bindings (KV namespaces, secrets stores): only strings are read.
  env: v.optional(v.record(v.string(), v.unknown())),
  source: v.optional(v.picklist(SOURCE_NAMES)),
  timeout: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(600_000))),
  allowedHosts: v.optional(
    v.array(
      v.pipe(
        v.string(),
        v.regex(
          /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/i,
          "expected a host name such as emulator or 10.0.0.5, without scheme or port",
        ),
      ),
    ),
  ),
  clientCapabilities: v.optional(v.array(v.pipe(v.string(), v.regex(/^[\w.-]+$/)))),
  platform: v.optional(v.looseObject({ name: v.string(), getEnv: v.function() })),
});

function parseOptions(options: unknown): ManagedIdentityClientOptions {
  const result = v.safeParse(OptionsSchema, options ?? {});
  if (!result.success) {
    const issue = result.issues[0];
    const path = issue?.path?.map((item) => String(item.key)).join(".") ?? "options";
    throw new ManagedIdentityError(
      "invalid_option",
      `Invalid client option ${path}: ${issue?.message ?? "unrecognised value"}.` +
        (path === "source" ? ` Known sources: ${SOURCE_NAMES.join(", ")}.` : ""),
    );
  }
  return options as ManagedIdentityClientOptions;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function abortedError(signal: AbortSignal): ManagedIdentityError {
  return new ManagedIdentityError("aborted", "The token request was aborted by the caller.", {
    cause: signal.reason,
  });
}

/** Settles with `promise`, or rejects as soon as `signal` aborts (the promise carries on). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortedError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortedError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Acquires tokens for the managed identity of the Azure compute this code runs on, from whichever
 * back-end the environment provides (IMDS, App Service, Service Fabric, Azure Arc, Machine
 * Learning, Cloud Shell, workload identity), and caches them.
 *
 * @example
 * const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity());
 * const { accessToken } = await client.acquireTokenForClient({ resource: "https://management.azure.com" });
 */
export class ManagedIdentityClient {
  readonly #identity: ManagedIdentityId;
  readonly #options: ManagedIdentityClientOptions;
  readonly #platform: Platform;
  readonly #env: EnvReader;
  readonly #fetch: FetchLike;
  readonly #cache: TokenCache;
  readonly #throttle: ThrottleCache | undefined;
  readonly #inFlight = new Map<string, Promise<TokenRecord>>();
  /** Per cache key, how many claims-challenge requests have started (see `#fetchToken`). */
  readonly #generations = new Map<string, number>();
  readonly #refreshBlockedUntil = new Map<string, number>();
  readonly #state = new Map<string, unknown>();
  readonly #targets = new Map<string, CacheTarget>();
  #source: SourceDefinition | undefined;
  #partitionHash: string | undefined;

  /**
   * @param managedIdentity `new SystemAssignedManagedIdentity()`, `new UserAssignedManagedIdentity({...})`,
   *   MSAL's JSON dict `{"ManagedIdentityIdType": "ClientId", "Id": "..."}`, or that dict as a JSON string.
   * @throws {ManagedIdentityError} `invalid_managed_identity` or `invalid_option`.
   */
  constructor(managedIdentity: ManagedIdentityInput, options: ManagedIdentityClientOptions = {}) {
    this.#identity = parseManagedIdentity(managedIdentity);
    this.#options = parseOptions(options);
    this.#platform = this.#options.platform ?? defaultPlatform();
    const env = this.#options.env;
    const read = env
      ? (name: string) => {
          const value = env[name];
          return typeof value === "string" ? value : undefined;
        }
      : (name: string) => this.#platform.getEnv(name);
    this.#env = (name) => {
      const value = read(name);
      return value === undefined || value === "" ? undefined : value;
    };
    this.#fetch = this.#options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    // Without a storage, this process's Map is the whole cache.
    const storageError = () => {
      if (this.#options.logger) this.#log(this.#definition(), { type: "storage_error" });
    };
    this.#cache = new TokenCache(this.#options.storage, storageError);
    const httpCache = this.#options.httpCache;
    this.#throttle =
      httpCache === false
        ? undefined
        : new ThrottleCache(httpCache ?? createMemoryStorage(), storageError);
  }

  /** The back-end in use: the forced `source` option, else the first detected in `DETECTION_ORDER`. */
  getManagedIdentitySource(): ManagedIdentitySource {
    return this.#definition().name;
  }

  /**
   * The normalised resource, its cache key and the source, remembered per resource string: the
   * same resource asked for again costs one Map lookup. Bad input throws and is not remembered.
   */
  #target(input: unknown): CacheTarget {
    const known = typeof input === "string" ? this.#targets.get(input) : undefined;
    if (known) return known;
    const resource = normalizeResource(input);
    const source = this.#definition();
    this.#assertIdentitySupported(source);
    const key = cacheIdentity(source.name, this.#partitionHash ?? "", this.#identity, resource);
    const target = { resource, key, source };
    // Resource strings come from the caller: bound the memo rather than trust their variety.
    if (this.#targets.size >= MAX_REMEMBERED_TARGETS) this.#targets.clear();
    this.#targets.set(input as string, target);
    return target;
  }

  /**
   * The hash of the source's partition variables, read once like the source itself. It is
   * computed (asynchronously) on the first call; `#target` runs after it.
   */
  async #loadPartition(): Promise<void> {
    const values = this.#definition().partitionVariables.map(this.#env);
    this.#partitionHash = await sha256Hex(JSON.stringify(values));
  }

  #definition(): SourceDefinition {
    if (!this.#source) {
      const forced = this.#options.source;
      this.#source = forced
        ? (SOURCES[forced] as SourceDefinition)
        : detectSource(this.#env, this.#platform, this.#identity);
    }
    return this.#source;
  }

  /**
   * A token for `resource`: from the cache while more than five minutes remain, else from the
   * managed identity endpoint. Concurrent calls for the same resource share one request.
   * @throws {ManagedIdentityError} with a stable `code`; see {@link ManagedIdentityErrorCode}.
   */
  async acquireTokenForClient(options: AcquireTokenOptions): Promise<AccessTokenResult> {
    if (options === null || typeof options !== "object") {
      throw new ManagedIdentityError(
        "invalid_resource",
        'acquireTokenForClient takes an object: { resource: "https://..." }.',
      );
    }
    if (options.signal?.aborted) throw abortedError(options.signal);
    if (this.#partitionHash === undefined) await this.#loadPartition();
    const { resource, key, source } = this.#target(options.resource);
    const claimsChallenge = options.claimsChallenge || undefined;
    const now = nowSeconds();
    // The hot path: a token this process knows, answered without awaiting anything.
    // With a claims challenge the cache is not served from; any unexpired token is looked up only
    // so that Service Fabric can be told which token to replace.
    const cached = claimsChallenge
      ? await this.#cache.get(key, now, 0)
      : (this.#cache.peek(key, now) ?? (await this.#cache.get(key, now)));
    if (cached && !claimsChallenge) {
      if (this.#options.logger) this.#log(source, { type: "cache_hit", resource });
      if (cached.refreshOn !== undefined && now >= cached.refreshOn) {
        this.#refresh(source, key, this.#context(resource, undefined, undefined));
      }
      return this.#result(cached, "cache", source, now);
    }
    if (this.#options.logger) this.#log(source, { type: "cache_miss", resource });
    const context = this.#context(
      resource,
      claimsChallenge,
      claimsChallenge ? cached?.accessToken : undefined,
    );
    // A claims challenge wants a token newer than any plain request already under way, but the
    // callers that bring the same challenge at once (one revocation, many requests) share one.
    const pending = this.#shared(source, key, context, claimsChallenge);
    return this.#result(
      await abortable(pending, options.signal),
      "identity_provider",
      source,
      nowSeconds(),
    );
  }

  #context(
    resource: string,
    claimsChallenge: string | undefined,
    previousToken: string | undefined,
  ): SourceContext {
    return {
      env: this.#env,
      platform: this.#platform,
      identity: this.#identity,
      resource,
      claimsChallenge,
      previousToken,
      clientCapabilities: this.#options.clientCapabilities ?? [],
      state: this.#state,
    };
  }

  /**
   * One request per identity and resource: callers that come while it runs share it. A claims
   * challenge wants a token newer than any plain request already under way, so it starts its own
   * request (shared by callers bringing the same challenge), which plain callers and background
   * refreshes then join, and which alone may write the cache: the token it replaces is revoked.
   */
  #shared(
    source: SourceDefinition,
    key: string,
    context: SourceContext,
    claimsChallenge?: string,
  ): Promise<TokenRecord> {
    const flightKey = claimsChallenge === undefined ? key : `${key}\n${claimsChallenge}`;
    let pending = this.#inFlight.get(flightKey);
    if (pending) return pending;
    if (claimsChallenge !== undefined) {
      this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1);
    }
    pending = this.#fetchToken(source, key, context);
    const flightKeys = flightKey === key ? [key] : [flightKey, key];
    for (const name of flightKeys) this.#inFlight.set(name, pending);
    const shared = pending;
    const done = () => {
      for (const name of flightKeys) {
        if (this.#inFlight.get(name) === shared) this.#inFlight.delete(name);
      }
    };
    pending.then(done, done);
    return pending;
  }

  /** Past `refreshOn`: fetch a new token in the background; on failure the cached one keeps serving. */
  #refresh(source: SourceDefinition, key: string, context: SourceContext): void {
    if (this.#inFlight.has(key) || (this.#refreshBlockedUntil.get(key) ?? 0) > Date.now()) return;
    const started = Date.now();
    this.#shared(source, key, context).then(
      () => {
        this.#refreshBlockedUntil.delete(key);
        this.#log(source, {
          type: "refresh",
          resource: context.resource,
          durationMs: Date.now() - started,
        });
      },
      (error: unknown) => {
        this.#refreshBlockedUntil.set(key, Date.now() + REFRESH_COOL_DOWN_MS);
        this.#log(source, {
          type: "refresh_failed",
          resource: context.resource,
          durationMs: Date.now() - started,
          ...(error instanceof ManagedIdentityError ? { code: error.code } : {}),
          ...(error instanceof ManagedIdentityError && error.status !== undefined
            ? { status: error.status }
            : {}),
        });
      },
    );
  }

  #log(source: SourceDefinition, event: Omit<ManagedIdentityLogEvent, "source">): void {
    const logger = this.#options.logger;
    if (!logger) return;
    try {
      logger({ source: source.name, ...event });
    } catch {
      // A failing logger must not fail token acquisition.
    }
  }

  #assertIdentitySupported(source: SourceDefinition): void {
    if (this.#identity.kind !== "systemAssigned" && !source.idKinds.includes(this.#identity.kind)) {
      const accepted =
        source.idKinds.length === 0
          ? "only the system-assigned identity"
          : `only ${source.idKinds.join(", ")}`;
      throw new ManagedIdentityError(
        "unsupported_identity",
        `${source.label} cannot select ${describeIdentity(this.#identity)}; it accepts ${accepted}.`,
        { source: source.name },
      );
    }
  }

  async #fetchToken(
    source: SourceDefinition,
    key: string,
    context: SourceContext,
  ): Promise<TokenRecord> {
    // A claims challenge that starts after this request bumps the generation: this token may be
    // the revoked one, so it is returned to its callers but not cached.
    const generation = this.#generations.get(key) ?? 0;
    const token = await acquire({
      source,
      context,
      transport: (request) => this.#transport(source, request),
      allowedHosts: this.#options.allowedHosts ?? [],
      retry: this.#options.retry ?? {},
      deadlineMs: this.#options.deadline ?? DEFAULT_DEADLINE_MS,
      throttle: this.#throttle,
      log: (event) => this.#log(source, event),
    });
    if ((this.#generations.get(key) ?? 0) === generation) {
      await this.#cache.set(key, token, nowSeconds());
    }
    return token;
  }

  #transport(source: SourceDefinition, request: TokenRequest): Transport {
    const timeout = this.#options.timeout ?? DEFAULT_TIMEOUT_MS;
    const thumbprint = request.pinnedThumbprint;
    if (thumbprint === undefined) return { fetch: this.#fetch, timeout };
    const pinnedFetch = this.#platform.pinnedFetch;
    if (!pinnedFetch) {
      throw new ManagedIdentityError(
        "capability_unavailable",
        `${source.label} needs TLS pinned to the certificate thumbprint in IDENTITY_SERVER_THUMBPRINT, which this runtime (${this.#platform.name}) cannot do; nothing was sent.`,
        { source: source.name },
      );
    }
    // Pinning cannot be delegated to a caller's fetch: the platform's pinned fetch is used.
    return {
      fetch: (input, init) => pinnedFetch(input, init, thumbprint),
      timeout,
    };
  }

  #result(
    token: TokenRecord,
    tokenSource: AccessTokenResult["tokenSource"],
    source: SourceDefinition,
    now: number,
  ): AccessTokenResult {
    const result: AccessTokenResult = {
      accessToken: token.accessToken,
      tokenType: token.tokenType,
      expiresOn: token.expiresOn,
      expiresIn: Math.max(0, token.expiresOn - now),
      resource: token.resource,
      tokenSource,
      source: source.name,
    };
    if (token.refreshOn !== undefined) result.refreshOn = token.refreshOn;
    return result;
  }
}
