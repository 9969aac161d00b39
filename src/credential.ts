import { ManagedIdentityClient, type ManagedIdentityClientOptions } from "./client.ts";
import { ManagedIdentityError } from "./errors.ts";
import { type ManagedIdentityInput, SystemAssignedManagedIdentity } from "./identity.ts";
import { EXPIRY_MARGIN_SECONDS } from "./token.ts";

/**
 * An access token as Azure SDK clients expect it: `AccessToken` of `@azure/core-auth`, repeated
 * here structurally so this package has no dependency on `@azure/*`. Times are epoch milliseconds.
 */
export interface AzureAccessToken {
  /** The access token. */
  token: string;
  /** When the token expires, in epoch milliseconds. */
  expiresOnTimestamp: number;
  /** When the Azure SDK should ask for a fresh token, in epoch milliseconds. */
  refreshAfterTimestamp?: number;
  /** The token type; managed identity tokens are bearer tokens. */
  tokenType?: "Bearer" | "pop";
}

/** `AbortSignalLike` of `@azure/abort-controller`, structurally: a DOM `AbortSignal` fits. */
export interface AzureAbortSignalLike {
  /** Whether the operation was aborted. */
  readonly aborted: boolean;
  /** Why it was aborted. */
  readonly reason?: unknown;
  /** Adds an `abort` listener. */
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  /** Removes an `abort` listener. */
  removeEventListener(type: "abort", listener: () => void): void;
}

/** The `GetTokenOptions` fields of `@azure/core-auth` this credential reads; others are ignored. */
export interface AzureGetTokenOptions {
  /** Aborts waiting for the token. */
  abortSignal?: AzureAbortSignalLike | undefined;
  /**
   * A claims challenge (decoded JSON) from a resource's `WWW-Authenticate` header: the token cache
   * is skipped and a new token fetched.
   */
  claims?: string | undefined;
  /**
   * Ignored: a managed identity belongs to one tenant, so there is nothing to switch to.
   * @default undefined
   */
  tenantId?: string | undefined;
}

/** A native signal that mirrors `signal`, and how to stop mirroring it once the call is over. */
function toAbortSignal(signal: AzureAbortSignalLike | undefined): {
  signal: AbortSignal | undefined;
  release(): void;
} {
  if (signal === undefined || signal instanceof AbortSignal) return { signal, release() {} };
  // A signal from another realm or a polyfill: mirror it into a native one.
  const controller = new AbortController();
  if (signal.aborted) {
    controller.abort(signal.reason);
    return { signal: controller.signal, release() {} };
  }
  const forward = () => controller.abort(signal.reason);
  signal.addEventListener("abort", forward, { once: true });
  // A long-lived signal (one per app) must not collect a listener per token request.
  return { signal: controller.signal, release: () => signal.removeEventListener("abort", forward) };
}

function singleScope(scopes: string | readonly string[]): string {
  const list = typeof scopes === "string" ? [scopes] : scopes;
  if (!Array.isArray(list) || list.length !== 1 || typeof list[0] !== "string") {
    throw new ManagedIdentityError(
      "invalid_resource",
      `A managed identity token is for exactly one scope, such as "https://management.azure.com/.default"; got ${Array.isArray(list) ? list.length : "no"} scopes.`,
    );
  }
  return list[0];
}

/**
 * A `TokenCredential` for Azure SDK clients (`@azure/storage-blob`, `@azure/keyvault-secrets`, …)
 * backed by a {@link ManagedIdentityClient}: every back-end and runtime this package supports, and
 * its token cache.
 *
 * @example
 * ```ts
 * import { BlobServiceClient } from "@azure/storage-blob";
 * import { ManagedIdentityTokenCredential } from "@managed-identity/client";
 *
 * const credential = new ManagedIdentityTokenCredential();
 * const blobs = new BlobServiceClient("https://account.blob.core.windows.net", credential);
 * ```
 */
export class ManagedIdentityTokenCredential {
  /** The client that acquires and caches the tokens. */
  readonly client: ManagedIdentityClient;

  /**
   * @param managedIdentity The identity (as {@link ManagedIdentityClient} accepts it), or a client
   *   to share with other code. @default the system-assigned identity
   * @param options Client options; only used when `managedIdentity` is not a client.
   * @throws {ManagedIdentityError} `invalid_managed_identity` or `invalid_option`.
   */
  constructor(
    managedIdentity:
      | ManagedIdentityInput
      | ManagedIdentityClient = new SystemAssignedManagedIdentity(),
    options: ManagedIdentityClientOptions = {},
  ) {
    this.client =
      managedIdentity instanceof ManagedIdentityClient
        ? managedIdentity
        : new ManagedIdentityClient(managedIdentity, options);
  }

  /**
   * A token for exactly one scope (`https://vault.azure.net/.default` or a bare resource).
   * `options.claims` is passed on as a claims challenge; `options.abortSignal` is honoured.
   * @throws {ManagedIdentityError} `invalid_resource` unless exactly one scope is given, and every
   *   error of {@link ManagedIdentityClient.acquireTokenForClient}.
   */
  async getToken(
    scopes: string | readonly string[],
    options: AzureGetTokenOptions = {},
  ): Promise<AzureAccessToken> {
    const resource = singleScope(scopes);
    const { signal, release } = toAbortSignal(options.abortSignal);
    let result: Awaited<ReturnType<ManagedIdentityClient["acquireTokenForClient"]>>;
    try {
      result = await this.client.acquireTokenForClient({
        resource,
        claimsChallenge: options.claims,
        signal,
      });
    } finally {
      release();
    }
    return {
      token: result.accessToken,
      expiresOnTimestamp: result.expiresOn * 1000,
      // Without a refresh hint, refresh when the cache would stop serving the token anyway.
      refreshAfterTimestamp: (result.refreshOn ?? result.expiresOn - EXPIRY_MARGIN_SECONDS) * 1000,
      tokenType: result.tokenType.toLowerCase() === "pop" ? "pop" : "Bearer",
    };
  }
}
