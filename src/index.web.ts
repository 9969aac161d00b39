/**
 * The package's Web-API surface: the client, every back-end, the errors and the web platform;
 * everything but the Node, Deno and Bun platforms, which `src/index.ts` adds.
 *
 * The npm package's web build (`dist/index.web.mjs`, chosen by the `workerd`, `worker` and
 * `browser` export conditions) is this module with `src/platform/index.web.ts` in place of the
 * runtime detection, so a Worker's or a browser's bundle carries no Node built-in code
 * (tsdown.config.ts). Node, Deno, Bun and JSR get `src/index.ts`.
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
export type {
  AzureArcLocations,
  OperatingSystem,
  Platform,
  RuntimeName,
} from "./platform/index.ts";
export { createWebPlatform } from "./platform/web.ts";
export type { RetryOptions } from "./retry.ts";
export { DETECTION_ORDER } from "./sources/index.ts";
export type { ManagedIdentitySource, SourceDefinition } from "./sources/types.ts";
export { THROTTLE_KEY_PREFIX } from "./throttle.ts";
