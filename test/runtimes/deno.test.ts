/** Driver: runs the Deno runner (`deno test`, the JSR entry point) against the local endpoints. */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type ChildResult, expectedCounts, runBinary } from "./children.ts";
import { type LocalEndpoints, startLocalEndpoints } from "./endpoints.ts";

let endpoints: LocalEndpoints;
let result: ChildResult;

beforeAll(async () => {
  endpoints = await startLocalEndpoints();
  result = await runBinary(
    "deno",
    [
      "test",
      // Only the variables the suite sets: the package reads nothing else.
      `--allow-env=${Object.keys(endpoints.env).join(",")}`,
      "--allow-net=127.0.0.1",
      "--allow-read",
      "test/runtimes/deno/runtime_test.ts",
    ],
    { ...endpoints.env, DENO_NO_UPDATE_CHECK: "1" },
  );
  console.log(`deno test: exit ${result.exitCode} in ${result.milliseconds} ms`);
});

afterAll(() => endpoints?.close());

it("deno test runs the whole neutral suite and passes", () => {
  const { passed, skipped } = expectedCounts("deno");
  const summary = `ok | ${passed} passed | 0 failed | ${skipped} ignored`;
  expect(result.output.includes(summary), `expected "${summary}" in:\n${result.output}`).toBe(true);
  expect(result.exitCode).toBe(0);
});

it("the Deno client went to the network once per back-end and client, then to its cache", () => {
  expect(endpoints.issued).toEqual({ imds: 2, appService: 1 });
});

// Runtime detection looks only at globals, so a restricted --allow-env is enough (it once used
// std-env, which reads NODE_ENV, CI and dozens more variables on import and threw NotCapable).
it("runs with --allow-env limited to the managed identity variables", async () => {
  const allowed = Object.keys(endpoints.env).join(",");
  const result = await runBinary(
    "deno",
    ["run", `--allow-env=${allowed}`, "--allow-net=127.0.0.1", "examples/deno/main.ts"],
    { ...endpoints.env, DENO_NO_UPDATE_CHECK: "1" },
  );
  expect(result.exitCode, result.output).toBe(0);
});
