/**
 * `npm run soak`: a bounded soak of the client (about a minute; SOAK_SECONDS to change it).
 * Many identities and resources on every back-end of a served emulator, tokens that are servable
 * for 30 s and ask for a refresh after 3 s, and a fault injected every half second (429, 5xx,
 * dropped and reset connections, hangs, IMDS's 410). Prints what happened and the heap, and fails
 * (exit code 1) when the heap grows after warm-up, an unexpected error appears, or a caller gets
 * another identity's or resource's token. On success it does not call process.exit: the process
 * must end on its own, and an unref'd watchdog reports what kept it alive if it does not.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { decodeJwt } from "jose";
import {
  EMULATOR_SOURCES,
  type EmulatorFault,
  type EmulatorSource,
  serveEmulator,
} from "../src/emulator/index.ts";
import {
  isManagedIdentityError,
  ManagedIdentityClient,
  type ManagedIdentityInput,
  type ManagedIdentityLogEvent,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../src/index.ts";
import { defaultPlatform } from "../src/platform/index.ts";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const WARM_UP_SECONDS = Math.min(10, SECONDS / 4);
const WORKERS = 16;
const USER_ASSIGNED = 4;
const RESOURCES = Array.from({ length: 6 }, (_, index) => `https://resource-${index}.soak.test`);
/** Servable for 30 s (the client keeps a 5-minute margin), refreshed in the background after 3 s. */
const TOKEN_LIFETIME_SECONDS = 330;
const REFRESH_IN_SECONDS = 3;
const FAULT_EVERY_MS = 500;
/** Heap growth from the end of warm-up to the end of the run that counts as a leak. */
const HEAP_GROWTH_LIMIT_MB = 4;
/** The share of calls that carry a claims challenge (CAE), which skips the cache. */
const CLAIMS_SHARE = 0.01;
const CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}';
/** Codes a fault may legitimately end in; anything else fails the soak. */
const EXPECTED_CODES = new Set(["throttled", "service_unavailable", "network_error", "timeout"]);

// --expose-gc when run through `node --expose-gc`; otherwise switch it on here.
const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  })();

const started = Date.now();
const watchdog = setTimeout(
  () => {
    console.error(
      `soak: the process did not exit on its own ${Math.round((Date.now() - started) / 1000)} s after starting; still alive: ${process.getActiveResourcesInfo().join(", ")}`,
    );
    if (pending.size > 0)
      console.error(`calls that never settled:\n  ${[...pending.values()].join("\n  ")}`);
    process.exit(2);
  },
  (SECONDS + 40) * 1000,
);
// The watchdog must not be what keeps the process alive.
watchdog.unref();

const unhandled: unknown[] = [];
process.on("unhandledRejection", (reason) => unhandled.push(reason));

function heapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

function increment<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

const emulatorRequests = new Map<string, number>();
const running = await serveEmulator({
  userAssigned: USER_ASSIGNED,
  tokenLifetime: TOKEN_LIFETIME_SECONDS,
  refreshIn: REFRESH_IN_SECONDS,
  onRequest(request) {
    if (request.source) increment(emulatorRequests, request.source);
  },
});
const { emulator } = running;

/** One client per back-end and identity it can select, with the object id its tokens must carry. */
interface Subject {
  source: EmulatorSource;
  label: string;
  client: ManagedIdentityClient;
  objectId: string;
}

const events = new Map<ManagedIdentityLogEvent["type"], number>();
const refreshFailures = new Map<string, number>();
function logger(event: ManagedIdentityLogEvent): void {
  increment(events, event.type);
  if (event.type === "refresh_failed") increment(refreshFailures, event.code ?? "unknown");
}

function subjects(): Subject[] {
  const system = emulator.systemAssigned?.objectId ?? "";
  const users = emulator.userAssigned;
  const list: Subject[] = [];
  const add = (
    source: EmulatorSource,
    label: string,
    identity: ManagedIdentityInput,
    objectId: string,
  ) =>
    list.push({
      source,
      label,
      objectId,
      client: new ManagedIdentityClient(identity, {
        env: running.env(source),
        fetch: running.fetch,
        platform: {
          ...defaultPlatform(),
          azureArc: { tokensFolder: `${running.arcKeyDirectory}/` },
        },
        timeout: 1000,
        deadline: 5000,
        retry: { delayMs: 50, goneDelayMs: 50 },
        logger,
      }),
    });
  for (const source of EMULATOR_SOURCES) {
    // Workload identity's system-assigned stand-in is AZURE_CLIENT_ID: the first user identity.
    const own =
      source === "cloud-shell"
        ? emulator.cloudShellUser.objectId
        : source === "workload-identity"
          ? (users[0]?.objectId ?? "")
          : system;
    add(source, "system", new SystemAssignedManagedIdentity(), own);
    // Service Fabric and Cloud Shell cannot select a user-assigned identity.
    if (source === "service-fabric" || source === "cloud-shell") continue;
    const kinds =
      source === "machine-learning" || source === "workload-identity"
        ? (["clientId"] as const)
        : (["clientId", "objectId", "resourceId"] as const);
    users.forEach((user, index) => {
      const kind = kinds[index % kinds.length] ?? "clientId";
      add(
        source,
        `${kind}#${index}`,
        new UserAssignedManagedIdentity({ [kind]: user[kind] } as { clientId: string }),
        user.objectId,
      );
    });
  }
  return list;
}

const everyone = subjects();
const tokensBySource = new Map<string, number>();
const errors = new Map<string, number>();
const problems: string[] = [];
let problemCount = 0;
/** Records a failure of the soak; the first 20 are kept for the report. */
function problem(text: string): void {
  if (problemCount++ < 20) problems.push(text);
}
let calls = 0;
let claimsCalls = 0;

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls under way, to name any that never settle. */
const pending = new Map<number, string>();

async function call(subject: Subject, resource: string): Promise<void> {
  const id = calls++;
  const claimsChallenge = Math.random() < CLAIMS_SHARE ? CLAIMS : undefined;
  if (claimsChallenge) claimsCalls++;
  pending.set(
    id,
    `${subject.source}/${subject.label} ${resource}${claimsChallenge ? " (claims)" : ""} since ${Math.round((Date.now() - started) / 1000)} s`,
  );
  try {
    const token = await subject.client.acquireTokenForClient({ resource, claimsChallenge });
    increment(tokensBySource, token.tokenSource);
    const claims = decodeJwt(token.accessToken);
    if (claims.aud !== resource || claims.oid !== subject.objectId) {
      problem(
        `${subject.source}/${subject.label} asked for ${resource} and got aud=${String(claims.aud)} oid=${String(claims.oid)}`,
      );
    }
    if (token.expiresIn <= 300) problem(`${subject.source} served a token with <5 min left`);
  } catch (error) {
    const code = isManagedIdentityError(error) ? error.code : `untyped: ${String(error)}`;
    increment(errors, code);
    if (!EXPECTED_CODES.has(code)) problem(`${subject.source}/${subject.label}: ${code}`);
  } finally {
    pending.delete(id);
  }
}

/** A fault every half second, for a few requests to one back-end; the previous one goes. */
function chaos(): () => void {
  const kinds: (() => EmulatorFault)[] = [
    () => ({ kind: "status", status: 429, retryAfter: 1 }),
    () => ({ kind: "status", status: 500 }),
    () => ({ kind: "status", status: 503 }),
    () => ({ kind: "drop" }),
    () => ({ kind: "reset" }),
    () => ({ kind: "hang" }),
    () => ({ kind: "imds-410", seconds: 0.2 }),
  ];
  const injected = new Map<string, number>();
  let current: EmulatorFault | undefined;
  const timer = setInterval(() => {
    if (current) emulator.removeFault(current);
    const fault = pick(kinds)();
    current = {
      ...fault,
      source: pick(EMULATOR_SOURCES),
      times: 1 + Math.floor(Math.random() * 3),
    };
    emulator.addFault(current);
    increment(injected, fault.kind === "status" ? `status ${fault.status}` : fault.kind);
    // The request log is for tests; a soak counts requests in onRequest instead.
    emulator.requests.length = 0;
  }, FAULT_EVERY_MS);
  return () => {
    clearInterval(timer);
    if (current) emulator.removeFault(current);
    console.log(
      `faults injected: ${[...injected].map(([kind, count]) => `${kind} ${count}`).join(", ")}`,
    );
  };
}

const heapAtStart = heapMb();
const stopChaos = chaos();
const endAt = started + SECONDS * 1000;
let heapAfterWarmUp: number | undefined;
const samples: string[] = [];
const sampler = setInterval(() => {
  const heap = heapMb();
  samples.push(heap.toFixed(1));
  if (heapAfterWarmUp === undefined && Date.now() - started >= WARM_UP_SECONDS * 1000)
    heapAfterWarmUp = heap;
}, 5000);

await Promise.all(
  Array.from({ length: WORKERS }, async () => {
    while (Date.now() < endAt) {
      await call(pick(everyone), pick(RESOURCES));
      await pause(Math.random() * 10);
    }
  }),
);
clearInterval(sampler);
stopChaos();
const heapAtEnd = heapMb();
heapAfterWarmUp ??= heapAtStart;
await running.close();

const format = (map: Map<string, number>) =>
  [...map]
    .sort(([, a], [, b]) => b - a)
    .map(([key, count]) => `${key} ${count}`)
    .join(", ") || "none";
const growth = heapAtEnd - heapAfterWarmUp;
console.log(
  [
    `soak: ${SECONDS} s, ${WORKERS} workers, ${everyone.length} identities × ${RESOURCES.length} resources on ${EMULATOR_SOURCES.length} back-ends; tokens live ${TOKEN_LIFETIME_SECONDS} s, refresh_in ${REFRESH_IN_SECONDS} s`,
    `calls: ${calls} (${claimsCalls} with a claims challenge, which skips the cache)`,
    `requests made (client attempts): ${events.get("request") ?? 0}; reached the emulator: ${[...emulatorRequests.values()].reduce((a, b) => a + b, 0)} (${format(emulatorRequests)})`,
    `tokens served: ${format(tokensBySource)}`,
    `errors by code: ${format(errors)}`,
    `refreshes: ${events.get("refresh") ?? 0} done, ${events.get("refresh_failed") ?? 0} failed (${format(refreshFailures)}); retries ${events.get("retry") ?? 0}; answered from throttling memory ${events.get("throttled") ?? 0}`,
    `heap: ${heapAtStart.toFixed(1)} MB at start, ${heapAfterWarmUp.toFixed(1)} MB after warm-up, ${heapAtEnd.toFixed(1)} MB at the end (growth ${growth >= 0 ? "+" : ""}${growth.toFixed(1)} MB, limit ${HEAP_GROWTH_LIMIT_MB} MB); every 5 s: ${samples.join(" ")}`,
  ].join("\n"),
);

const failures =
  problemCount > problems.length
    ? [...problems, `…and ${problemCount - problems.length} more`]
    : [...problems];
if (growth > HEAP_GROWTH_LIMIT_MB)
  failures.push(`the heap grew by ${growth.toFixed(1)} MB after warm-up`);
if (unhandled.length > 0) failures.push(`${unhandled.length} unhandled rejection(s)`);
if ((tokensBySource.get("identity_provider") ?? 0) === 0 || (events.get("refresh") ?? 0) === 0)
  failures.push("no token was fetched or refreshed: the soak exercised nothing");
if (failures.length > 0) {
  console.error(`soak FAILED:\n  ${failures.join("\n  ")}`);
  process.exitCode = 1;
} else {
  console.log("soak passed: heap flat, only expected error codes; now exiting on its own");
}
