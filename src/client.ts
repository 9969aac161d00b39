import type { $Fetch } from "ofetch";
import { createStorage, type Storage } from "unstorage";
import * as v from "valibot";
import { cacheIdentity, TokenCache } from "./cache.ts";
import { assertEndpointAllowed } from "./endpoint.ts";
import { ManagedIdentityError } from "./errors.ts";
import {
  createTransportFetch,
  type FetchLike,
  parseJson,
  responseError,
  send,
  type Transport,
} from "./http.ts";
import {
  describeIdentity,
  type ManagedIdentityId,
  type ManagedIdentityInput,
  parseManagedIdentity,
} from "./identity.ts";
import { defaultPlatform, type Platform } from "./platform/index.ts";
import { normalizeResource } from "./resource.ts";
import { detectSource, SOURCE_NAMES, SOURCES } from "./sources/index.ts";
import type {
  EnvReader,
  ManagedIdentitySource,
  SourceContext,
  SourceDefinition,
  TokenRequest,
} from "./sources/types.ts";
import { parseTokenResponse, type TokenRecord, TokenResponseProblem } from "./token.ts";

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
  env?: Record<string, string | undefined>;
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

const OptionsSchema = v.strictObject({
  fetch: v.optional(v.function()),
  storage: v.optional(
    v.custom<Storage>(
      (value) =>
        value !== null &&
        typeof value === "object" &&
        typeof (value as Storage).getItem === "function" &&
        typeof (value as Storage).setItem === "function",
      "expected an unstorage Storage (from createStorage)",
    ),
  ),
  env: v.optional(v.record(v.string(), v.optional(v.string()))),
  source: v.optional(v.picklist(SOURCE_NAMES)),
  timeout: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(600_000))),
  allowedHosts: v.optional(v.array(v.pipe(v.string(), v.nonEmpty()))),
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

/** Settles with `promise`, or rejects as soon as `signal` aborts (the promise carries on). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  const aborted = () =>
    new ManagedIdentityError("aborted", "The token request was aborted by the caller.", {
      cause: signal.reason,
    });
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted());
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
  readonly #fetch: $Fetch;
  readonly #cache: TokenCache;
  readonly #inFlight = new Map<string, Promise<TokenRecord>>();
  readonly #state = new Map<string, unknown>();
  #source: SourceDefinition | undefined;

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
    const read = env ? (name: string) => env[name] : (name: string) => this.#platform.getEnv(name);
    this.#env = (name) => {
      const value = read(name);
      return value === undefined || value === "" ? undefined : value;
    };
    this.#fetch = createTransportFetch(
      this.#options.fetch ?? ((input, init) => globalThis.fetch(input, init)),
    );
    this.#cache = new TokenCache(this.#options.storage ?? createStorage());
  }

  /** The back-end in use: the forced `source` option, else the first detected in `DETECTION_ORDER`. */
  getManagedIdentitySource(): ManagedIdentitySource {
    return this.#definition().name;
  }

  #definition(): SourceDefinition {
    if (!this.#source) {
      const forced = this.#options.source;
      this.#source = forced
        ? (SOURCES[forced] as SourceDefinition)
        : detectSource(this.#env, this.#platform);
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
    const resource = normalizeResource(options.resource);
    const source = this.#definition();
    this.#assertIdentitySupported(source);
    const key = cacheIdentity(source.name, this.#identity, resource);
    const claimsChallenge = options.claimsChallenge || undefined;
    const cached = await this.#cache.get(key, nowSeconds());
    if (cached && !claimsChallenge) return this.#result(cached, "cache", source);
    let pending = claimsChallenge ? undefined : this.#inFlight.get(key);
    if (!pending) {
      pending = this.#fetchToken(source, key, {
        env: this.#env,
        platform: this.#platform,
        identity: this.#identity,
        resource,
        claimsChallenge,
        previousToken: claimsChallenge ? cached?.accessToken : undefined,
        clientCapabilities: this.#options.clientCapabilities ?? [],
        state: this.#state,
      });
      if (!claimsChallenge) {
        const shared = pending;
        this.#inFlight.set(key, shared);
        shared.then(
          () => this.#inFlight.delete(key),
          () => this.#inFlight.delete(key),
        );
      }
    }
    return this.#result(await abortable(pending, options.signal), "identity_provider", source);
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
    let request = await source.createRequest(context);
    assertEndpointAllowed(request, source.name, this.#options.allowedHosts ?? []);
    let response = await send(request, source, this.#transport(source, request));
    const next = await source.challenge?.(response, request, context);
    if (next) {
      request = next;
      assertEndpointAllowed(request, source.name, this.#options.allowedHosts ?? []);
      response = await send(request, source, this.#transport(source, request));
    }
    if (response.status < 200 || response.status > 299)
      throw responseError(response, source, request.secrets);
    const body = parseJson(response.body);
    const now = nowSeconds();
    const token = parseTokenResponse(body, context.resource, now, {
      requireTokenType: source.requireTokenType === true,
    });
    if (token instanceof TokenResponseProblem) {
      throw new ManagedIdentityError(
        "invalid_response",
        `The ${source.label} endpoint answered HTTP ${response.status} but ${body === undefined ? "the body is not JSON" : token.reason}.`,
        { source: source.name, status: response.status },
      );
    }
    const mismatch = source.checkResponse?.(body, context);
    if (mismatch !== undefined) {
      throw new ManagedIdentityError(
        "identity_mismatch",
        `The ${source.label} endpoint ${mismatch}; the token was refused and not cached.`,
        {
          source: source.name,
          status: response.status,
        },
      );
    }
    await this.#cache.set(key, token, now);
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
      fetch: createTransportFetch((input, init) => pinnedFetch(input, init, thumbprint)),
      timeout,
    };
  }

  #result(
    token: TokenRecord,
    tokenSource: AccessTokenResult["tokenSource"],
    source: SourceDefinition,
  ): AccessTokenResult {
    const result: AccessTokenResult = {
      accessToken: token.accessToken,
      tokenType: token.tokenType,
      expiresOn: token.expiresOn,
      expiresIn: Math.max(0, token.expiresOn - nowSeconds()),
      resource: token.resource,
      tokenSource,
      source: source.name,
    };
    if (token.refreshOn !== undefined) result.refreshOn = token.refreshOn;
    return result;
  }
}
