/** Driver: runs the Deno runner (`deno test`, the JSR entry point) against the local endpoints. */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type ChildResult, expectedCounts, runBinary } from "./children.ts";
import { type LocalEndpoints, startLocalEndpoints } from "./endpoints.ts";
import { expectedTotals } from "./suite.ts";

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
      // The runner's dynamic import of the entry needs it too, besides Arc's key file.
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
  // Deno leaves out "| 0 ignored" when nothing was ignored.
  const summary = /^ok \| (\d+) passed \| (\d+) failed(?: \| (\d+) ignored)? /m.exec(result.output);
  expect(
    {
      passed: Number(summary?.[1]),
      failed: Number(summary?.[2]),
      ignored: Number(summary?.[3] ?? 0),
    },
    result.output,
  ).toEqual({ passed, failed: 0, ignored: skipped });
  expect(result.exitCode).toBe(0);
});

it("the endpoints received exactly what the suite asked for (the rest came from the cache)", () => {
  expect(endpoints.issued).toEqual(expectedTotals("deno"));
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
