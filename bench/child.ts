/**
 * One library, one measurement, in a process of its own (msal-node keeps its cache in static
 * fields, and heap figures need a process that holds nothing else). Started by bench/run.ts:
 *   node [--expose-gc] --import tsx bench/child.ts <ours|msal|identity> <timing|concurrency|memory [tokens]>
 * The environment points every library at the local IMDS (AZURE_POD_IDENTITY_AUTHORITY_HOST).
 * Prints one line: `BENCH_RESULT <json>`.
 */
import { Bench } from "tinybench";
import {
  COLD_CALLS,
  type ConcurrencyResult,
  LIBRARIES,
  LIBRARY_KEYS,
  type LibraryKey,
  type MemoryResult,
  RESULT_PREFIX,
  type TimingResult,
} from "./libraries.ts";

const MEASURE_MS = Number(process.env.BENCH_TIME_MS ?? 1_500);
const HIT_BATCH = 100;

interface Statistics {
  latency: { p50: number; samplesCount: number };
  throughput: { p50: number };
}

function statistics(task: { name: string; result: unknown }): Statistics {
  const result = task.result as Partial<Statistics> & { state: string; error?: Error };
  if (result.state !== "completed" || !result.latency || !result.throughput) {
    throw new Error(
      `${task.name} did not complete (${result.state}): ${result.error?.message ?? ""}`,
    );
  }
  return result as Statistics;
}

async function timing(key: LibraryKey): Promise<TimingResult> {
  const getToken = await LIBRARIES[key].create();
  const hitResource = `https://cache-hit.${key}.bench`;
  await getToken(hitResource);
  const url = `${process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=`;

  // Calls in a batch per sample: one cache hit is shorter than the timer and the harness around
  // it can resolve, for every library alike.
  const hitBench = () => {
    const bench = new Bench({ time: MEASURE_MS, warmupTime: 300, throws: true });
    bench.add("cache hit", async () => {
      for (let call = 0; call < HIT_BATCH; call++) await getToken(hitResource);
    });
    return bench;
  };
  // First with the one token an app asking for one resource holds.
  const hit = hitBench();
  await hit.run();

  // The round trip alone: the same endpoint, the same kind of answer, read and parsed, just
  // before the cold acquisitions.
  const bare = new Bench({ time: MEASURE_MS, warmupTime: 300, throws: true });
  bare.add("bare fetch", async () => {
    const response = await fetch(`${url}https%3A%2F%2Fbare.bench`, {
      headers: { Metadata: "true" },
    });
    await response.json();
  });
  await bare.run();

  // A resource never asked for before, so every call is a cache miss and one request. A fixed
  // number of calls, no warm-up: every library's cache grows by exactly as many tokens (msal-node's
  // cost per miss grows with the number of tokens it holds).
  const cold = new Bench({ iterations: COLD_CALLS, time: 0, warmup: false, throws: true });
  let coldCalls = 0;
  cold.add("cold", async () => {
    coldCalls += 1;
    await getToken(`https://cold-${coldCalls}.${key}.bench`);
  });
  await cold.run();

  // Then again, with the cold acquisitions' tokens cached too.
  const fullHit = hitBench();
  await fullHit.run();

  const [bareResult, coldResult, hitResult, fullHitResult] = [bare, cold, hit, fullHit].map(
    (bench) => statistics(bench.tasks[0] as { name: string; result: unknown }),
  );
  if (!bareResult || !coldResult || !hitResult || !fullHitResult) {
    throw new Error("missing statistics");
  }
  return {
    cacheHitMedianUs: (hitResult.latency.p50 * 1000) / HIT_BATCH,
    cacheHitOpsPerSecond: hitResult.throughput.p50 * HIT_BATCH,
    cacheHitSamples: hitResult.latency.samplesCount,
    fullCacheHitMedianUs: (fullHitResult.latency.p50 * 1000) / HIT_BATCH,
    coldMedianUs: coldResult.latency.p50 * 1000,
    coldSamples: coldResult.latency.samplesCount,
    bareFetchMedianUs: bareResult.latency.p50 * 1000,
  };
}

async function concurrency(key: LibraryKey): Promise<ConcurrencyResult> {
  const getToken = await LIBRARIES[key].create();
  const callers = 1_000;
  const started = performance.now();
  // All callers start in the same tick, on a cold cache, for the same resource.
  const outcomes = await Promise.allSettled(
    Array.from({ length: callers }, () => getToken(`https://concurrency.${key}.bench`)),
  );
  return {
    callers,
    fulfilled: outcomes.filter((outcome) => outcome.status === "fulfilled").length,
    durationMs: performance.now() - started,
  };
}

async function settledHeap(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  for (let round = 0; round < 4; round++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

async function memory(key: LibraryKey): Promise<MemoryResult> {
  const getToken = await LIBRARIES[key].create();
  const tokens = Number(process.argv[4] ?? 10_000);
  // One token first, so code, connections and first-use structures are not counted as cache.
  await getToken(`https://warm-up.${key}.bench`);
  const before = await settledHeap();
  const started = performance.now();
  const batch = 100;
  for (let first = 0; first < tokens; first += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, tokens - first) }, (_, offset) =>
        getToken(`https://memory-${first + offset}.${key}.bench`),
      ),
    );
  }
  const durationMs = performance.now() - started;
  const after = await settledHeap();
  // The client must still be alive here, or its cache could have been collected.
  await getToken(`https://memory-0.${key}.bench`);
  return { tokens, heapDeltaBytes: after - before, durationMs };
}

const [key, task] = process.argv.slice(2) as [LibraryKey, string];
if (!LIBRARY_KEYS.includes(key)) throw new Error(`unknown library ${key}`);
const tasks = { timing, concurrency, memory } as Record<
  string,
  (key: LibraryKey) => Promise<unknown>
>;
const run = tasks[task];
if (!run) throw new Error(`unknown task ${task}`);
const result = await run(key);
process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
// Keep-alive sockets and library timers must not hold the process open.
process.exit(0);
