/** What the drivers share: launching a runtime as a child process, and bundling a Worker. */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters } from "node:util";
import { build } from "esbuild";
import { type PackageModule, type RuntimeUnderTest, runtimeSuite } from "./suite.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("../..", import.meta.url));

/** A finished child process. */
export interface ChildResult {
  exitCode: number;
  /** stdout and stderr, interleaved as far as the pipes allow. */
  output: string;
  milliseconds: number;
}

/**
 * Runs a binary from node_modules/.bin asynchronously: the local endpoints live in this process,
 * so its event loop must keep serving them while the child runs.
 */
export function runBinary(
  binary: string,
  args: string[],
  env: Record<string, string>,
): Promise<ChildResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(
      `${ROOT}node_modules/.bin/${binary}`,
      args,
      {
        cwd: ROOT,
        env: { ...process.env, ...env, NO_COLOR: "1" },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 120_000,
      },
      (error, stdout, stderr) => {
        const exitCode = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({
          exitCode,
          output: stripVTControlCharacters(`${stdout}\n${stderr}`),
          milliseconds: Math.round(performance.now() - started),
        });
      },
    );
  });
}

/** How many cases a runner must report as passed and as skipped (plus its own resolve check). */
export function expectedCounts(runtime: RuntimeUnderTest): { passed: number; skipped: number } {
  const cases = runtimeSuite({
    runtime,
    // The suite only touches the package inside `run`, which is not called here.
    pkg: {} as PackageModule,
    env: {
      AZURE_POD_IDENTITY_AUTHORITY_HOST: "http://127.0.0.1",
      IDENTITY_ENDPOINT: "http://127.0.0.1",
    },
    envSource: "process",
  });
  const skipped = cases.filter((testCase) => testCase.skip !== undefined).length;
  return { passed: cases.length - skipped + 1, skipped };
}

/** A Worker bundled as Wrangler would bundle it. */
export interface WorkerBundle {
  /** The single module's source. */
  code: string;
  /** The files that went into it, relative to the repository root (`dist/index.web.mjs`, …). */
  inputs: string[];
}

/**
 * Bundles a Worker entry the way Wrangler does (esbuild, ESM, the `workerd`/`worker`/`browser`
 * export conditions), resolving `@managed-identity/client` through package.json `exports` to the
 * npm build: its web build, dist/index.web.mjs.
 */
export async function bundleWorker(entry: string): Promise<WorkerBundle> {
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: ROOT,
    bundle: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error(`esbuild produced nothing for ${entry}`);
  return { code: output.text, inputs: Object.keys(result.metafile.inputs) };
}
