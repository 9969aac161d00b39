import type { Platform } from "./types.ts";
import { createWebPlatform } from "./web.ts";

export type { AzureArcLocations, OperatingSystem, Platform, RuntimeName } from "./types.ts";

let detected: Platform | undefined;

/**
 * The web build's stand-in for `./index.ts` (tsdown.config.ts swaps it in for Workers and
 * browsers): always the web platform, so the Node, Deno and Bun platforms and their TLS pinning
 * stay out of a Worker's bundle. Named `workerd` inside Cloudflare Workers, for messages.
 */
export function defaultPlatform(): Platform {
  const scope = globalThis as { navigator?: { userAgent?: string } };
  detected ??= createWebPlatform(
    scope.navigator?.userAgent === "Cloudflare-Workers" ? "workerd" : "web",
  );
  return detected;
}
