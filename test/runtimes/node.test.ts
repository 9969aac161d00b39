/** Node runner: the neutral suite against the npm build, imported by package name. */
import { afterAll, expect, it } from "vitest";
import { type LocalEndpoints, startLocalEndpoints } from "./endpoints.ts";
import { expectedTotals, type PackageModule, runtimeSuite } from "./suite.ts";

// A variable specifier: the type checker must not need dist/ (it is built after type checking).
const ENTRY: string = "@managed-identity/client";

const endpoints: LocalEndpoints = await startLocalEndpoints();
const previous = { ...process.env };
// The client must find these in the process environment, as on App Service.
Object.assign(process.env, endpoints.env);
const pkg = (await import(ENTRY)) as PackageModule;

afterAll(async () => {
  process.env = previous;
  await endpoints.close();
});

it("resolves the package name to the npm build", () => {
  expect(import.meta.resolve(ENTRY)).toMatch(/\/dist\/index\.mjs$/);
});

for (const testCase of runtimeSuite({
  runtime: "node",
  pkg,
  env: endpoints.env,
  envSource: "process",
})) {
  if (testCase.skip) it.skip(`${testCase.name} — ${testCase.skip}`, testCase.run);
  else it(testCase.name, testCase.run);
}

it("each endpoint received exactly what the suite asked for (the rest came from the cache)", () => {
  expect(endpoints.issued).toEqual(expectedTotals("node"));
});
