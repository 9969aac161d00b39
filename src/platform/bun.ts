import { createNodeLikePlatform, type PlatformOptions } from "./node.ts";
import type { Platform } from "./types.ts";

/**
 * Bun. Its `process` and Node built-ins behave as Node's for everything used here, TLS pinning
 * included: tested with Bun 1.4, `node:tls` connects with chain checks off and exposes the peer's
 * raw certificate at `secureConnect` before any byte is written, and `node:http` sends the request
 * over the socket handed to it by `createConnection`. So this is Node's platform under Bun's name.
 */
export function createBunPlatform(options: PlatformOptions = {}): Platform {
  return createNodeLikePlatform("bun", options);
}
