/**
 * The examples under examples/ run as their README says, each against the local endpoints with
 * App Service's variables set (as Azure Functions and App Service set them).
 */

import { mkdtemp, rm } from "node:fs/promises";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleWorker, ROOT, runBinary } from "./children.ts";
import { type LocalEndpoints, startLocalEndpoints } from "./endpoints.ts";

interface TokenSummary {
  source: string;
  resource: string;
  expiresOn: number;
  tokenSource?: string;
}

let endpoints: LocalEndpoints;

beforeAll(async () => {
  endpoints = await startLocalEndpoints();
});
afterAll(() => endpoints?.close());

function expectSummary(summary: TokenSummary, resource: string): void {
  expect(summary.source).toBe("app-service");
  expect(summary.resource).toBe(resource);
  expect(summary.expiresOn).toBeGreaterThan(Date.now() / 1000 + 3000);
  expect(JSON.stringify(summary)).not.toContain("appsvc-");
}

describe("examples", () => {
  it("deno: examples/deno/main.ts", async () => {
    const before = endpoints.issued.appService;
    const result = await runBinary(
      "deno",
      [
        "run",
        "--allow-env",
        "--allow-net=127.0.0.1",
        "examples/deno/main.ts",
        "https://vault.azure.net",
      ],
      { ...endpoints.env, DENO_NO_UPDATE_CHECK: "1" },
    );
    expect(result.exitCode, result.output).toBe(0);
    expectSummary(JSON.parse(result.output.trim().split("\n")[0] ?? ""), "https://vault.azure.net");
    expect(endpoints.issued.appService).toBe(before + 1);
  });

  it("bun: examples/bun/main.ts", async () => {
    const before = endpoints.issued.appService;
    const result = await runBinary(
      "bun",
      ["run", "examples/bun/main.ts", "https://storage.azure.com"],
      endpoints.env,
    );
    expect(result.exitCode, result.output).toBe(0);
    expectSummary(
      JSON.parse(result.output.trim().split("\n")[0] ?? ""),
      "https://storage.azure.com",
    );
    expect(endpoints.issued.appService).toBe(before + 1);
  });

  it("Cloudflare Worker: examples/cloudflare-worker, bundled, env from bindings", async () => {
    const before = endpoints.issued.appService;
    const bundle = await bundleWorker(`${ROOT}examples/cloudflare-worker/src/index.ts`);
    // Wrangler's conditions pick the web build: no Node platform code in the Worker.
    expect(bundle.inputs).toContain("dist/index.web.mjs");
    expect(bundle.code).not.toContain("node:tls");
    const worker = new Miniflare({
      modules: true,
      script: bundle.code,
      compatibilityDate: "2025-09-01",
      bindings: endpoints.env,
    });
    try {
      const url = "http://worker.test/?resource=https://vault.azure.net";
      const first = (await (await worker.dispatchFetch(url)).json()) as TokenSummary;
      const second = (await (await worker.dispatchFetch(url)).json()) as TokenSummary;
      expectSummary(first, "https://vault.azure.net");
      expect([first.tokenSource, second.tokenSource]).toEqual(["identity_provider", "cache"]);
      expect(endpoints.issued.appService).toBe(before + 1);
    } finally {
      await worker.dispose();
    }
  });

  it("Node serverless: examples/node-serverless, bundled by esbuild into one file", async () => {
    const folder = await mkdtemp(join(tmpdir(), "node-serverless-"));
    const previous = { ...process.env };
    try {
      const outfile = join(folder, "handler.mjs");
      const result = await build({
        entryPoints: [`${ROOT}examples/node-serverless/handler.ts`],
        absWorkingDir: ROOT,
        bundle: true,
        platform: "node",
        format: "esm",
        outfile,
        metafile: true,
        logLevel: "silent",
      });
      // A deployable bundle: nothing left to resolve from node_modules at run time.
      const imports = Object.values(result.metafile.outputs).flatMap((output) => output.imports);
      const builtin = (path: string) => builtinModules.includes(path.replace(/^node:/, ""));
      expect(imports.filter((entry) => entry.external && !builtin(entry.path))).toEqual([]);
      Object.assign(process.env, endpoints.env);
      const before = endpoints.issued.appService;
      const { handler } = (await import(pathToFileURL(outfile).href)) as {
        handler(request: Request): Promise<Response>;
      };
      const request = new Request("http://function.test/?resource=https://database.windows.net");
      const first = (await (await handler(request)).json()) as TokenSummary;
      const second = (await (await handler(request)).json()) as TokenSummary;
      expectSummary(first, "https://database.windows.net");
      expect([first.tokenSource, second.tokenSource]).toEqual(["identity_provider", "cache"]);
      expect(endpoints.issued.appService).toBe(before + 1);
    } finally {
      process.env = previous;
      await rm(folder, { recursive: true, force: true });
    }
  });
});
