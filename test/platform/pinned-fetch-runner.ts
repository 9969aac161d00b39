/**
 * Runs the pinned fetch of the Bun or Deno platform once and prints the outcome as JSON, for
 * runtime-pinning.test.ts, which starts this file under `bun` and `deno`.
 * Arguments: the URL and the thumbprint.
 */
import { createBunPlatform } from "../../src/platform/bun.ts";
import { createDenoPlatform } from "../../src/platform/deno.ts";

const runtimeArgs = (globalThis as { Deno?: { args: string[] } }).Deno?.args;
const [url, thumbprint] = runtimeArgs ?? process.argv.slice(2);
const platform = runtimeArgs ? createDenoPlatform() : createBunPlatform();
let outcome: Record<string, unknown>;
try {
  if (!platform.pinnedFetch) throw new Error("no pinnedFetch");
  const response = await platform.pinnedFetch(
    url as string,
    { headers: { secret: "runner-secret" } },
    thumbprint as string,
  );
  outcome = { runtime: platform.name, status: response.status, body: await response.text() };
} catch (error) {
  outcome = {
    runtime: platform.name,
    error: error instanceof Error ? error.message : String(error),
  };
}
console.log(JSON.stringify(outcome));
