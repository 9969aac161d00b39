/** Driver: runs the Bun runner (`bun test`, the npm build) against the local endpoints. */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type ChildResult, expectedCounts, runBinary } from "./children.ts";
import { type LocalEndpoints, startLocalEndpoints } from "./endpoints.ts";
import { expectedTotals } from "./suite.ts";

let endpoints: LocalEndpoints;
let result: ChildResult;

beforeAll(async () => {
  endpoints = await startLocalEndpoints();
  // A folder, not a filter: `bun test` alone would also pick up the other runtimes' test files.
  result = await runBinary("bun", ["test", "./test/runtimes/bun"], endpoints.env);
  console.log(`bun test: exit ${result.exitCode} in ${result.milliseconds} ms`);
});

afterAll(() => endpoints?.close());

it("bun test runs the whole neutral suite and passes", () => {
  const { passed, skipped } = expectedCounts("bun");
  const counts = {
    pass: Number(/^\s*(\d+) pass$/m.exec(result.output)?.[1]),
    skip: Number(/^\s*(\d+) skip$/m.exec(result.output)?.[1] ?? 0),
    fail: Number(/^\s*(\d+) fail$/m.exec(result.output)?.[1]),
  };
  expect(counts, result.output).toEqual({ pass: passed, skip: skipped, fail: 0 });
  expect(result.exitCode).toBe(0);
});

it("the endpoints received exactly what the suite asked for (the rest came from the cache)", () => {
  expect(endpoints.issued).toEqual(expectedTotals("bun"));
});
