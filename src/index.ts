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
export * from "./index.web.ts";
// The platforms of the runtimes with files and TLS pinning, for tests and unusual installs (for
// example an Azure Arc agent in another folder). Not in the web build: see src/index.web.ts.
export { createBunPlatform } from "./platform/bun.ts";
export { createDenoPlatform } from "./platform/deno.ts";
export { createNodePlatform, type PlatformOptions } from "./platform/node.ts";
