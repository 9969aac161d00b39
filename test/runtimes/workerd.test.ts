/** Driver: runs the neutral suite inside workerd (miniflare), from the bundled npm build. */
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleWorker, ROOT, type WorkerBundle } from "./children.ts";
import { type LocalEndpoints, startLocalEndpoints } from "./endpoints.ts";
import { expectedTotals, type PackageModule, runtimeSuite } from "./suite.ts";

interface WorkerReport {
  userAgent: string;
  results: { name: string; status: "pass" | "fail" | "skip"; detail?: string }[];
}

let endpoints: LocalEndpoints;
let report: WorkerReport;
let bundle: WorkerBundle;

beforeAll(async () => {
  endpoints = await startLocalEndpoints();
  const started = performance.now();
  bundle = await bundleWorker(`${ROOT}test/runtimes/workerd/worker.js`);
  const worker = new Miniflare({
    modules: true,
    script: bundle.code,
    // No nodejs_compat flag: the core must run on Web APIs alone.
    compatibilityDate: "2025-09-01",
    // The Worker's env: the only place the client may find its environment.
    bindings: endpoints.env,
  });
  try {
    const response = await worker.dispatchFetch("http://worker.test/");
    report = (await response.json()) as WorkerReport;
  } finally {
    await worker.dispose();
  }
  console.log(`workerd: ${Math.round(performance.now() - started)} ms`);
});

afterAll(() => endpoints?.close());

it("ran inside workerd", () => {
  expect(report.userAgent).toBe("Cloudflare-Workers");
});

it("the Worker got the web build, without the Node, Deno and Bun platforms", () => {
  expect(bundle.inputs).toContain("dist/index.web.mjs");
  expect(bundle.inputs).not.toContain("dist/index.mjs");
  // The pinned TLS code loads node:tls by name; the web build never mentions it.
  expect(bundle.code).not.toContain("node:tls");
});

describe("workerd", () => {
  const cases = runtimeSuite({
    runtime: "workerd",
    pkg: {} as PackageModule,
    env: {
      AZURE_POD_IDENTITY_AUTHORITY_HOST: "http://127.0.0.1",
      IDENTITY_ENDPOINT: "http://127.0.0.1",
    },
    envSource: "option",
  });
  for (const testCase of cases) {
    const register = testCase.skip ? it.skip : it;
    register(testCase.name, () => {
      const outcome = report.results.find((result) => result.name === testCase.name);
      expect(outcome?.status, outcome?.detail).toBe("pass");
    });
  }
  it("the Worker reported every case", () => {
    expect(report.results.map((result) => result.name)).toEqual(cases.map((c) => c.name));
  });
});

it("the Worker's endpoints received exactly what the suite asked for: nothing for Arc or Fabric", () => {
  expect(endpoints.issued).toEqual(expectedTotals("workerd"));
});
