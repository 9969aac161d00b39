/**
 * Deno runner: the neutral suite against the package as JSR serves it, the `src/*.ts` entry that
 * deno.json/jsr.json export, imported by package name through the Deno workspace. Launched by
 * test/runtimes/deno.test.ts with the local endpoints' URLs in the environment.
 */
import { check, ENDPOINT_VARIABLES, type PackageModule, runtimeSuite } from "../suite.ts";

interface DenoTestApi {
  test(definition: { name: string; ignore?: boolean; fn: () => Promise<void> }): void;
  env: { get(name: string): string | undefined };
}
// Read through globalThis so this file also type-checks under the Node test tsconfig.
const deno = (globalThis as unknown as { Deno: DenoTestApi }).Deno;

// A variable specifier keeps the Node type checker away from it; Deno resolves it at run time.
const ENTRY: string = "@managed-identity/client";
const pkg = (await import(ENTRY)) as PackageModule;

deno.test({
  name: "resolves the package name to the JSR entry point (src/index.ts)",
  async fn() {
    const resolved = import.meta.resolve(ENTRY);
    check(resolved.endsWith("/src/index.ts"), `resolved to ${resolved}`);
  },
});

for (const testCase of runtimeSuite({
  runtime: "deno",
  pkg,
  // Only the variables --allow-env grants: the package itself reads nothing else.
  env: Object.fromEntries(
    Object.values(ENDPOINT_VARIABLES).map((name) => [name, deno.env.get(name)]),
  ),
  envSource: "process",
})) {
  deno.test({ name: testCase.name, ignore: testCase.skip !== undefined, fn: testCase.run });
}
