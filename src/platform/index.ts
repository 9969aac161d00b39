import { runtime } from "std-env";
import { createBunPlatform } from "./bun.ts";
import { createDenoPlatform } from "./deno.ts";
import { createNodePlatform } from "./node.ts";
import type { Platform } from "./types.ts";
import { createWebPlatform } from "./web.ts";

export type { AzureArcLocations, OperatingSystem, Platform, RuntimeName } from "./types.ts";

let detected: Platform | undefined;

/** The platform of the runtime this code runs in, detected once. */
export function defaultPlatform(): Platform {
  if (!detected) {
    detected =
      runtime === "deno"
        ? createDenoPlatform()
        : runtime === "bun"
          ? createBunPlatform()
          : runtime === "node"
            ? createNodePlatform("node")
            : createWebPlatform(runtime === "workerd" ? "workerd" : "web");
  }
  return detected;
}
