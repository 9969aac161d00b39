/**
 * Bun runner: the neutral suite against the npm build, imported by package name as a Bun script
 * would. Launched by test/runtimes/bun.test.ts (`bun test ./test/runtimes/bun`) with the local
 * endpoints' URLs in the environment. Plain JavaScript: `bun:test` has no types installed here.
 */
import { expect, test } from "bun:test";
import * as pkg from "@managed-identity/client";
import { runtimeSuite } from "../suite.ts";

const ENTRY = "@managed-identity/client";

test("resolves the package name to the npm build", () => {
  expect(import.meta.resolve(ENTRY)).toMatch(/\/dist\/index\.mjs$/);
});

for (const testCase of runtimeSuite({
  runtime: "bun",
  pkg,
  env: process.env,
  envSource: "process",
})) {
  if (testCase.skip) test.skip(`${testCase.name} — ${testCase.skip}`, testCase.run);
  else test(testCase.name, testCase.run);
}
