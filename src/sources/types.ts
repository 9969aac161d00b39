import type { ManagedIdentityErrorCode } from "../errors.ts";
import type { ManagedIdentityId, UserAssignedIdKind } from "../identity.ts";
import type { Platform } from "../platform/types.ts";
import type { RetryPolicy } from "../retry.ts";

/** The managed identity back-ends, by the name `getManagedIdentitySource()` reports. */
export type ManagedIdentitySource =
  | "service-fabric"
  | "app-service"
  | "machine-learning"
  | "cloud-shell"
  | "azure-arc"
  | "workload-identity"
  | "imds";

/** Reads one environment variable: undefined when unset or empty. */
export type EnvReader = (name: string) => string | undefined;

/** One HTTP request to a token endpoint, as a back-end describes it. */
export interface TokenRequest {
  method: "GET" | "POST";
  /** The endpoint; `query` is added to it. */
  url: string;
  query?: Record<string, string>;
  headers: Record<string, string>;
  /** Sent as `application/x-www-form-urlencoded` (POST only). */
  form?: Record<string, string>;
  /**
   * `local`: the endpoint came from the environment and must be loopback or link-local.
   * `authority`: a public token authority, which must be https.
   */
  endpointKind: "local" | "authority";
  /** Values that must never appear in an error or a log line (secret headers, assertions). */
  secrets: string[];
  /** Send over TLS pinned to this leaf certificate SHA-1 thumbprint (normalised: 40 lower-case hex). */
  pinnedThumbprint?: string;
}

/** What a back-end is told for one token request. */
export interface SourceContext {
  env: EnvReader;
  platform: Platform;
  identity: ManagedIdentityId;
  /** The normalised resource (no `/.default`). */
  resource: string;
  /** The caller's claims challenge; never sent to an endpoint, but it changes some requests. */
  claimsChallenge?: string | undefined;
  /** With a claims challenge: the cached token that is still valid, which the new one replaces. */
  previousToken?: string | undefined;
  /** The client's capabilities (for example `cp1`). */
  clientCapabilities: readonly string[];
  /** Scratch space kept for the life of the client (e.g. a federated assertion read from a file). */
  state: Map<string, unknown>;
}

/** A response as a back-end's optional hooks see it. */
export interface SourceResponse {
  status: number;
  headers: Headers;
}

/**
 * A back-end: data plus small pure functions, the same shape in every file of `src/sources/`.
 */
export interface SourceDefinition {
  readonly name: ManagedIdentitySource;
  /** The product name, for messages. */
  readonly label: string;
  /** What selects this back-end, for messages when it is forced but absent. */
  readonly selectedBy: string;
  /** The user-assigned id kinds this back-end can select; an empty list means system-assigned only. */
  readonly idKinds: readonly UserAssignedIdKind[];
  /**
   * The variables that tell one environment's identity from another's (endpoint, secret, tenant,
   * default client id): a hash of their values goes into the cache key, so two environments
   * sharing a storage never share a system-assigned token. Secrets may be listed: only the hash
   * of all values is kept.
   */
  readonly partitionVariables: readonly string[];
  /** Whether the environment selects this back-end. */
  detect(env: EnvReader, platform: Platform, identity: ManagedIdentityId): boolean;
  /** The token request; throws `source_unavailable` when the environment lacks what it needs. */
  createRequest(context: SourceContext): TokenRequest | Promise<TokenRequest>;
  /** Maps the service's own error codes onto ours, where it has codes of its own. */
  readonly errorCodes?: Readonly<Record<string, ManagedIdentityErrorCode>>;
  /** Which answers are retried and how long to wait; MSAL's default policy when absent. */
  readonly retry?: RetryPolicy;
  /** Whether a response without `token_type` is invalid. */
  readonly requireTokenType?: boolean;
  /**
   * A challenge step (Azure Arc): given the first response, returns the request to send instead,
   * or undefined when the response is not a challenge. Throws a `ManagedIdentityError` when the
   * challenge is malformed.
   */
  challenge?(
    response: SourceResponse,
    request: TokenRequest,
    context: SourceContext,
  ): Promise<TokenRequest | undefined>;
  /**
   * Checks a successful response body before its token is used or cached; returns why it must be
   * refused (it becomes an `identity_mismatch` error), or undefined to accept it.
   */
  checkResponse?(body: unknown, context: SourceContext): string | undefined;
}
