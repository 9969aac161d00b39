import type { Platform, RuntimeName } from "./types.ts";

/**
 * Web-standard runtimes (Cloudflare Workers, browsers, other edge runtimes): no process
 * environment and no file system. Pass the environment through the client's `env` option, e.g.
 * the Worker's `env` binding.
 */
export function createWebPlatform(name: RuntimeName = "web"): Platform {
  return { name, os: undefined, getEnv: () => undefined };
}
