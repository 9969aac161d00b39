/**
 * Azure managed identity tokens for Node, Deno, Bun and Cloudflare Workers: every back-end,
 * one call, a token cache.
 *
 * @example
 * ```ts
 * import { ManagedIdentityClient, SystemAssignedManagedIdentity } from "@managed-identity/client";
 *
 * const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity());
 * const token = await client.acquireTokenForClient({ resource: "https://management.azure.com" });
 * ```
 * @module
 */
export { CACHE_KEY_PREFIX } from "./cache.ts";
export {
  type AccessTokenResult,
  type AcquireTokenOptions,
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
} from "./client.ts";
export {
  type AzureAbortSignalLike,
  type AzureAccessToken,
  type AzureGetTokenOptions,
  ManagedIdentityTokenCredential,
} from "./credential.ts";
export {
  isManagedIdentityError,
  ManagedIdentityError,
  type ManagedIdentityErrorCode,
  type ManagedIdentityErrorDetails,
} from "./errors.ts";
export type { FetchLike } from "./http.ts";
export {
  type ManagedIdentityConfig,
  type ManagedIdentityInput,
  SystemAssignedManagedIdentity,
  type UserAssignedIdKind,
  UserAssignedManagedIdentity,
  type UserAssignedManagedIdentityOptions,
} from "./identity.ts";
export type {
  ManagedIdentityLogEvent,
  ManagedIdentityLogEventType,
  ManagedIdentityLogger,
} from "./logger.ts";
export type { OperatingSystem, Platform, RuntimeName } from "./platform/index.ts";
export type { RetryOptions } from "./retry.ts";
export { DETECTION_ORDER } from "./sources/index.ts";
export type { ManagedIdentitySource, SourceDefinition } from "./sources/types.ts";
export { THROTTLE_KEY_PREFIX } from "./throttle.ts";
