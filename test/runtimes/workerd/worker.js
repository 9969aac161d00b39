/**
 * workerd runner: a Worker that runs the neutral suite against the npm build, bundled by esbuild
 * as Wrangler would bundle a user's Worker. Its `env` (string bindings set by
 * test/runtimes/workerd.test.ts) is the only environment; the suite passes it as the client's
 * `env` option. Answers every request with the results as JSON.
 */
import * as pkg from "@managed-identity/client";
import { runtimeSuite } from "../suite.ts";

export default {
  async fetch(_request, env) {
    const results = [];
    for (const testCase of runtimeSuite({ runtime: "workerd", pkg, env, envSource: "option" })) {
      if (testCase.skip) {
        results.push({ name: testCase.name, status: "skip", detail: testCase.skip });
        continue;
      }
      try {
        await testCase.run();
        results.push({ name: testCase.name, status: "pass" });
      } catch (error) {
        results.push({
          name: testCase.name,
          status: "fail",
          detail: String(error?.stack ?? error),
        });
      }
    }
    return Response.json({ userAgent: navigator.userAgent, results });
  },
};
