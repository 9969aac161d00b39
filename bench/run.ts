/**
 * `npm run bench`: our client against @azure/msal-node and @azure/identity, on this machine, in
 * this run. Every figure in the table comes from the measurements below; nothing is typed in.
 * Prints the table and writes it to bench/RESULTS.md. Never part of `npm test`.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { build, type Plugin } from "esbuild";
import { RUNTIME_DETECTION, WEB_ONLY_PLATFORM } from "../tsdown.config.ts";
import {
  COLD_CALLS,
  type ConcurrencyResult,
  LIBRARIES,
  LIBRARY_KEYS,
  type LibraryKey,
  type MemoryResult,
  OUR_BUILD,
  packageVersion,
  RESULT_PREFIX,
  type TimingResult,
} from "./libraries.ts";
import { startImdsEndpoint, TOKEN_LENGTH } from "./server.ts";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
const IMPORT_RUNS = Number(process.env.BENCH_IMPORT_RUNS ?? 15);
const PEERS = ["msal", "identity"] as const;
/** The cache size the issue asks about. */
const FULL_CACHE = 10_000;
/**
 * The cache size every library is measured at. msal-node's cost per new token grows with the
 * tokens it holds (its lookup and its write each walk the whole cache), so filling 10,000 takes
 * it tens of minutes; 1,000 takes seconds. Its 10,000-token heap is estimated from this.
 */
const SMALL_CACHE = 1_000;

const log = (message: string) => process.stderr.write(`${message}\n`);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Builds src/ as the package ships it: one ESM file, dependencies left as imports. */
async function buildOurs(): Promise<void> {
  mkdirSync(fileURLToPath(new URL(".", pathToFileURL(OUR_BUILD))), { recursive: true });
  await build({
    entryPoints: [`${ROOT}src/index.ts`],
    outfile: OUR_BUILD,
    bundle: true,
    packages: "external",
    format: "esm",
    platform: "neutral",
    target: "es2022",
    logLevel: "error",
  });
}

async function child<T>(
  key: LibraryKey,
  task: string,
  host: string,
  extra: string[] = [],
): Promise<T> {
  const gc = task === "memory" ? ["--expose-gc"] : [];
  const { stdout } = await run(
    process.execPath,
    [...gc, "--import", "tsx", "bench/child.ts", key, task, ...extra],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        AZURE_POD_IDENTITY_AUTHORITY_HOST: host,
        ...(process.env.BENCH_TIME_MS ? { BENCH_TIME_MS: process.env.BENCH_TIME_MS } : {}),
      },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 180_000,
    },
  );
  const line = stdout.split("\n").find((text) => text.startsWith(RESULT_PREFIX));
  if (!line) throw new Error(`${key} ${task}: no result in output:\n${stdout}`);
  return JSON.parse(line.slice(RESULT_PREFIX.length)) as T;
}

/** Wall time of a fresh `node` that imports `specifier` (or nothing), in ms. */
function importOnce(specifier: string | undefined): number {
  const code = specifier === undefined ? "" : `await import(${JSON.stringify(specifier)});`;
  const started = performance.now();
  execFileSync(process.execPath, ["--input-type=module", "-e", code], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "" },
    stdio: "ignore",
  });
  return performance.now() - started;
}

const IMPORT_SPECIFIERS: Record<LibraryKey, string> = {
  ours: pathToFileURL(OUR_BUILD).href,
  msal: "@azure/msal-node",
  identity: "@azure/identity",
};

/** Median import time of each package minus the median of a bare node, runs interleaved. */
function importTimes(): Record<LibraryKey, number> {
  const samples: Record<LibraryKey | "bare", number[]> = {
    bare: [],
    ours: [],
    msal: [],
    identity: [],
  };
  // One run of each first, so the file system cache is warm for all alike.
  for (const key of LIBRARY_KEYS) importOnce(IMPORT_SPECIFIERS[key]);
  for (let round = 0; round < IMPORT_RUNS; round++) {
    samples.bare.push(importOnce(undefined));
    for (const key of LIBRARY_KEYS) samples[key].push(importOnce(IMPORT_SPECIFIERS[key]));
  }
  const bare = median(samples.bare);
  return {
    ours: median(samples.ours) - bare,
    msal: median(samples.msal) - bare,
    identity: median(samples.identity) - bare,
  };
}

/**
 * Our source for each esbuild platform: `src/index.ts` is what Node resolves; the `browser`,
 * `worker` and `workerd` export conditions select the web build, `src/index.web.ts`.
 */
function ourEntry(platform: Platform): string {
  const web = `${ROOT}src/index.web.ts`;
  return platform !== "node" && existsSync(web) ? "./src/index.web.ts" : "./src/index.ts";
}

/** The smallest useful program with each library: get a token. */
function bundleEntry(key: LibraryKey, platform: Platform): string {
  if (key === "ours") {
    return `import { ManagedIdentityClient, SystemAssignedManagedIdentity } from "${ourEntry(platform)}";
const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity());
export const getToken = (resource) => client.acquireTokenForClient({ resource });`;
  }
  if (key === "msal") {
    return `import { ManagedIdentityApplication } from "@azure/msal-node";
const application = new ManagedIdentityApplication();
export const getToken = (resource) => application.acquireToken({ resource });`;
  }
  return `import { ManagedIdentityCredential } from "@azure/identity";
const credential = new ManagedIdentityCredential();
export const getToken = (scope) => credential.getToken(scope);`;
}

type Platform = "node" | "browser" | "neutral";

/** The link the web build makes (tsdown.config.ts): the web-only platform module, for esbuild. */
const webPlatform: Plugin = {
  name: "web-platform",
  setup(builder) {
    builder.onResolve({ filter: /platform\/index\.ts$/ }, (args) =>
      resolve(args.resolveDir, args.path) === RUNTIME_DETECTION
        ? { path: WEB_ONLY_PLATFORM }
        : undefined,
    );
  },
};

/** esbuild, bundled and minified, then gzip -9: bytes. */
async function bundleSize(
  key: LibraryKey,
  platform: Platform,
): Promise<{ minified: number; gzipped: number }> {
  const result = await build({
    stdin: {
      contents: bundleEntry(key, platform),
      resolveDir: ROOT,
      loader: "ts",
      sourcefile: "entry.ts",
    },
    bundle: true,
    minify: true,
    format: "esm",
    platform,
    target: "es2022",
    write: false,
    logLevel: "error",
    ...(platform === "neutral" ? { mainFields: ["module", "main"] } : {}),
    ...(key === "ours" && platform !== "node" ? { plugins: [webPlatform] } : {}),
  });
  const code = result.outputFiles[0]?.contents;
  if (!code) throw new Error(`no bundle for ${key}`);
  return { minified: code.byteLength, gzipped: gzipSync(code, { level: 9 }).byteLength };
}

type Figures = Record<LibraryKey, number>;
interface Row {
  metric: string;
  figures: Partial<Figures>;
  format: (value: number) => string;
  /** Lower is better (latency, bytes, requests), else higher is better (ops/s). */
  lowerIsBetter: boolean;
}

function advantage(row: Row, peer: (typeof PEERS)[number]): string {
  const ours = row.figures.ours;
  const theirs = row.figures[peer];
  if (ours === undefined || theirs === undefined || ours <= 0 || theirs <= 0) return "—";
  const ratio = row.lowerIsBetter ? theirs / ours : ours / theirs;
  return `${ratio >= 10 ? ratio.toFixed(0) : ratio.toFixed(1)}×`;
}

const us = (value: number) =>
  `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} µs`;
const ms = (value: number) => `${value.toFixed(1)} ms`;
const count = (value: number) => Math.round(value).toLocaleString("en-US");
const kib = (value: number) => `${(value / 1024).toFixed(1)} KiB`;
const mib = (value: number) => `${(value / 1024 / 1024).toFixed(2)} MiB`;

async function main(): Promise<void> {
  const started = performance.now();
  // Other work on the machine skews every figure: the table says how busy it was.
  const loadAtStart = os.loadavg()[0] ?? 0;
  log("building our client (esbuild, as the package ships)…");
  await buildOurs();
  const endpoint = await startImdsEndpoint();
  // Warm the endpoint's own code first, so the first library measured does not pay for it.
  for (let request = 0; request < 2_000; request++) {
    await (
      await fetch(endpoint.tokenUrl("https://warm-up.bench"), {
        headers: { Metadata: "true" },
      })
    ).json();
  }
  const timing = {} as Record<LibraryKey, TimingResult>;
  const concurrency = {} as Record<LibraryKey, ConcurrencyResult & { requests: number }>;
  const memory = {} as Record<LibraryKey, MemoryResult>;
  let oursFull: MemoryResult | undefined;
  const hitRequests = {} as Record<LibraryKey, number>;
  try {
    // One library at a time, each measurement in a fresh process: nothing runs alongside.
    for (const key of LIBRARY_KEYS) {
      log(`${LIBRARIES[key].label}: cache hit, bare fetch and cold acquisition…`);
      timing[key] = await child<TimingResult>(key, "timing", endpoint.host);
      hitRequests[key] = endpoint.requests(`https://cache-hit.${key}.bench`);
      log(`${LIBRARIES[key].label}: 1,000 concurrent callers…`);
      const result = await child<ConcurrencyResult>(key, "concurrency", endpoint.host);
      concurrency[key] = {
        ...result,
        requests: endpoint.requests(`https://concurrency.${key}.bench`),
      };
      log(`${LIBRARIES[key].label}: heap held by ${count(SMALL_CACHE)} cached tokens…`);
      memory[key] = await child<MemoryResult>(key, "memory", endpoint.host, [String(SMALL_CACHE)]);
      if (key === "ours") {
        log(`${LIBRARIES[key].label}: heap held by ${count(FULL_CACHE)} cached tokens…`);
        oursFull = await child<MemoryResult>(key, "memory", endpoint.host, [String(FULL_CACHE)]);
      }
    }
  } finally {
    await endpoint.close();
  }
  log(`import time (${IMPORT_RUNS} interleaved runs each)…`);
  const imports = importTimes();
  log("bundle sizes (esbuild, minified, gzip -9)…");
  const bundles = {} as Record<LibraryKey, { minified: number; gzipped: number }>;
  for (const key of LIBRARY_KEYS) bundles[key] = await bundleSize(key, "node");
  const oursBrowser = await bundleSize("ours", "browser");
  const oursNeutral = await bundleSize("ours", "neutral");

  const per = <T>(pick: (key: LibraryKey) => T) =>
    Object.fromEntries(LIBRARY_KEYS.map((key) => [key, pick(key)])) as Record<LibraryKey, T>;
  const rows: Row[] = [
    {
      metric: "cache hit, median latency (1 token cached)",
      figures: per((key) => timing[key].cacheHitMedianUs),
      format: us,
      lowerIsBetter: true,
    },
    {
      metric: "cache hit, ops/s (median)",
      figures: per((key) => timing[key].cacheHitOpsPerSecond),
      format: count,
      lowerIsBetter: false,
    },
    {
      metric: `cache hit, median latency, ${COLD_CALLS + 1} tokens cached`,
      figures: per((key) => timing[key].fullCacheHitMedianUs),
      format: us,
      lowerIsBetter: true,
    },
    {
      metric: "cold acquisition, median (local IMDS)",
      figures: per((key) => timing[key].coldMedianUs),
      format: us,
      lowerIsBetter: true,
    },
    {
      metric: "bare fetch of the same endpoint, median",
      figures: per((key) => timing[key].bareFetchMedianUs),
      format: us,
      lowerIsBetter: true,
    },
    {
      metric: "overhead over the bare fetch",
      figures: per((key) => timing[key].coldMedianUs - timing[key].bareFetchMedianUs),
      format: us,
      lowerIsBetter: true,
    },
    {
      metric: "requests for 1,000 concurrent callers (cold)",
      figures: per((key) => concurrency[key].requests),
      format: count,
      lowerIsBetter: true,
    },
    {
      metric: `heap per cached token (cache of ${count(SMALL_CACHE)})`,
      figures: per((key) => memory[key].heapDeltaBytes / memory[key].tokens),
      format: (value) => `${count(value)} B`,
      lowerIsBetter: true,
    },
    {
      metric: `time to cache ${count(SMALL_CACHE)} distinct tokens (100 at a time)`,
      figures: per((key) => memory[key].durationMs),
      format: ms,
      lowerIsBetter: true,
    },
    {
      metric: `heap held by ${count(FULL_CACHE)} cached tokens (peers: estimated ‡)`,
      figures: per((key) =>
        key === "ours" && oursFull
          ? oursFull.heapDeltaBytes
          : (memory[key].heapDeltaBytes / memory[key].tokens) * FULL_CACHE,
      ),
      format: mib,
      lowerIsBetter: true,
    },
    {
      metric: "import time (fresh process minus bare node, median)",
      figures: per((key) => imports[key]),
      format: ms,
      lowerIsBetter: true,
    },
    {
      metric: "bundle, platform node, minified",
      figures: per((key) => bundles[key].minified),
      format: kib,
      lowerIsBetter: true,
    },
    {
      metric: "bundle, platform node, minified + gzip",
      figures: per((key) => bundles[key].gzipped),
      format: kib,
      lowerIsBetter: true,
    },
    {
      metric: `bundle, platform browser (${ourEntry("browser").slice(2)}), minified + gzip`,
      figures: { ours: oursBrowser.gzipped },
      format: kib,
      lowerIsBetter: true,
    },
    {
      metric: `bundle, platform neutral (${ourEntry("neutral").slice(2)}), minified + gzip`,
      figures: { ours: oursNeutral.gzipped },
      format: kib,
      lowerIsBetter: true,
    },
  ];

  const versions = per((key) =>
    key === "ours"
      ? packageVersion("@managed-identity/client")
      : packageVersion(LIBRARIES[key].label),
  );
  const header = `| | ours (${LIBRARIES.ours.label} ${versions.ours}) | ${LIBRARIES.msal.label} ${versions.msal} | ${LIBRARIES.identity.label} ${versions.identity} | ours vs msal-node | ours vs identity |`;
  const table = [
    header,
    "|---|--:|--:|--:|--:|--:|",
    ...rows.map((row) => {
      const cell = (key: LibraryKey) => {
        const value = row.figures[key];
        return value === undefined ? "—" : row.format(value);
      };
      return `| ${row.metric} | ${cell("ours")} | ${cell("msal")} | ${cell("identity")} | ${advantage(row, "msal")} | ${advantage(row, "identity")} |`;
    }),
  ].join("\n");

  const hitRatio = timing.msal.cacheHitMedianUs / timing.ours.cacheHitMedianUs;
  const bundleRatio = bundles.msal.gzipped / bundles.ours.gzipped;
  const verdict = (met: boolean) => (met ? "met" : "MISSED");
  const targets = [
    `- Cache hit at least 40× faster than msal-node: **${hitRatio.toFixed(1)}×**, ${verdict(hitRatio >= 40)}${hitRatio >= 40 ? "" : ` (short by ${(40 - hitRatio).toFixed(1)}×: ours would need ${us(timing.msal.cacheHitMedianUs / 40)} instead of ${us(timing.ours.cacheHitMedianUs)})`}.`,
    `- Exactly 1 request for 1,000 concurrent callers: **${concurrency.ours.requests}**, ${verdict(concurrency.ours.requests === 1)}.`,
    `- Bundle at most 1/7 of msal-node's (node, minified + gzip): **1/${bundleRatio.toFixed(1)}**, ${verdict(bundleRatio >= 7)}.`,
  ].join("\n");

  const checks: string[] = [];
  for (const key of LIBRARY_KEYS) {
    if (hitRequests[key] !== 1)
      checks.push(
        `- ${LIBRARIES[key].label}: the cache-hit resource reached the endpoint ${hitRequests[key]} times (expected once): its cache-hit figures are not cache hits.`,
      );
    if (concurrency[key].fulfilled !== concurrency[key].callers)
      checks.push(
        `- ${LIBRARIES[key].label}: ${concurrency[key].callers - concurrency[key].fulfilled} of ${concurrency[key].callers} concurrent callers failed.`,
      );
  }

  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const machine = `Node ${process.version} on ${cpu} (${os.cpus().length} logical CPUs, ${os.platform()} ${os.release()})`;
  const elapsed = (performance.now() - started) / 1000;
  const markdown = `# Benchmark results

Written by \`npm run bench\` (bench/run.ts) on ${new Date().toISOString().slice(0, 10)}: ${machine}.
Same run, same machine; figures come from this run. The run took ${elapsed.toFixed(0)} s; the
1-minute load average was ${loadAtStart.toFixed(2)} at its start and ${(os.loadavg()[0] ?? 0).toFixed(2)} at its end.

${table}

Targets (issue 7):
${targets}
${checks.length > 0 ? `\nChecks that failed in this run:\n${checks.join("\n")}\n` : ""}
How it was measured:
- Every library asks the same local endpoint (node:http on 127.0.0.1, in the bench's parent
  process) that answers like IMDS, through \`AZURE_POD_IDENTITY_AUTHORITY_HOST\`, with default
  options and the system-assigned identity. Each measurement runs in a fresh child process per
  library (msal-node keeps its cache in static fields), one at a time.
- Latency: tinybench ${packageVersion("tinybench")}, ${Number(process.env.BENCH_TIME_MS ?? 1_500)} ms per task after warm-up; medians (p50).
  Cache hit: the same resource again, 100 sequential calls per sample, reported per call; first
  with that one token cached, then again after the cold calls added ${COLD_CALLS} more. Cold: ${COLD_CALLS} calls, each for a resource never asked
  for, so one request each (no warm-up: every cache grows by the same ${COLD_CALLS} tokens).
  Bare fetch: \`fetch\` of the same endpoint with \`Metadata: true\`, body parsed as JSON, in the
  same child. Overhead: cold median minus bare-fetch median.
- Concurrency: 1,000 calls for one resource started in the same tick on a new client; requests
  counted by the endpoint.
- Memory: \`node --expose-gc\`; heapUsed after GC with N more distinct resources cached (asked
  100 at a time), minus heapUsed after GC with one; each token is ${TOKEN_LENGTH.toLocaleString("en-US")} distinct
  characters (${mib(FULL_CACHE * TOKEN_LENGTH)} of token text for ${count(FULL_CACHE)}, which any cache must hold).
  ‡ Ours is measured with ${count(FULL_CACHE)} tokens (${(oursFull ? oursFull.durationMs / 1000 : 0).toFixed(1)} s to fill). The peers are
  measured with ${count(SMALL_CACHE)} and their per-token figure multiplied by ${count(FULL_CACHE / SMALL_CACHE)}: their
  time per new token grows with the tokens already cached (see the fill-time row), so filling
  ${count(FULL_CACHE)} would take far longer than this benchmark may. Like is compared with like in the
  per-token row (all at ${count(SMALL_CACHE)}); the ${count(FULL_CACHE)} row sets a measurement beside estimates.
- Import: wall time of \`node --input-type=module -e "await import(…)"\` minus \`node -e ""\`,
  medians of ${IMPORT_RUNS} interleaved runs. Ours is src/ built by esbuild with dependencies
  left as imports, as the package ships.
- Bundle: esbuild (bundle, minify, ESM, es2022) of a minimal "get a token" entry per library,
  gzip level 9. Node built-ins are not counted (external on platform node).
`;
  writeFileSync(RESULTS, markdown);
  process.stdout.write(`${markdown}\n`);
  log(`wrote ${RESULTS}`);
}

await main();
