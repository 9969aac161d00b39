import { createBunPlatform } from "./bun.ts";
import { createDenoPlatform } from "./deno.ts";
import { createNodePlatform } from "./node.ts";
import type { Platform } from "./types.ts";
import { createWebPlatform } from "./web.ts";

export type { AzureArcLocations, OperatingSystem, Platform, RuntimeName } from "./types.ts";

let detected: Platform | undefined;

/**
 * The platform of the runtime this code runs in, detected once from its globals. Only globals are
 * looked at: reading environment variables here would need Deno's `--allow-env` for variables
 * this package never uses (std-env does that on import, so it is not used).
 */
export function defaultPlatform(): Platform {
  if (!detected) {
    const scope = globalThis as {
      Deno?: unknown;
      Bun?: unknown;
      navigator?: { userAgent?: string };
      process?: { versions?: { node?: string } };
    };
    detected =
      scope.Deno !== undefined
        ? createDenoPlatform()
        : scope.Bun !== undefined
          ? createBunPlatform()
          : scope.navigator?.userAgent === "Cloudflare-Workers"
            ? createWebPlatform("workerd")
            : scope.process?.versions?.node
              ? createNodePlatform()
              : createWebPlatform("web");
  }
  return detected;
}
