/**
 * `npm start`: the main job on a fresh clone. Starts the emulator in-process, then for every
 * back-end the client supports acquires a token through the public `ManagedIdentityClient` three
 * times (from the identity provider, from the cache, with a claims challenge) and prints one table.
 * Back-ends join the table as they are added to `DETECTION_ORDER`.
 */
import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { EMULATOR_SOURCES, type EmulatorSource, serveEmulator } from "../src/emulator/index.ts";
import {
  type AccessTokenResult,
  DETECTION_ORDER,
  isManagedIdentityError,
  ManagedIdentityClient,
  type ManagedIdentityClientOptions,
  SystemAssignedManagedIdentity,
} from "../src/index.ts";
import { defaultPlatform } from "../src/platform/index.ts";

const RESOURCE = "https://management.azure.com";
// What a resource sends in WWW-Authenticate after the tenant revoked tokens (a CAE challenge).
const CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}';
const STEPS = [
  { name: "first", claimsChallenge: undefined },
  { name: "again", claimsChallenge: undefined },
  { name: "claims", claimsChallenge: CLAIMS },
] as const;

type Row = Record<
  "backEnd" | "step" | "tokenSource" | "latency" | "expires" | "aud" | "oid" | "signature",
  string
>;

const HEADINGS: Row = {
  backEnd: "back-end",
  step: "call",
  tokenSource: "token source",
  latency: "latency",
  expires: "expires",
  aud: "aud",
  oid: "oid",
  signature: "JWKS",
};

function duration(seconds: number): string {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return hours > 0 ? `in ${hours}h${String(minutes).padStart(2, "0")}m` : `in ${minutes}m`;
}

function printTable(rows: Row[]): void {
  const columns = Object.keys(HEADINGS) as (keyof Row)[];
  const widths = columns.map((column) =>
    Math.max(HEADINGS[column].length, ...rows.map((row) => row[column].length)),
  );
  const line = (row: Row) =>
    columns
      .map((column, index) => row[column].padEnd(widths[index] ?? 0))
      .join("  ")
      .trimEnd();
  console.log(line(HEADINGS));
  console.log(widths.map((width) => "-".repeat(width)).join("  "));
  for (const row of rows) console.log(line(row));
}

const running = await serveEmulator({ userAssigned: 1 });
const keys = createLocalJWKSet(running.emulator.jwks);
const supported = DETECTION_ORDER.map((definition) => definition.name).filter(
  (name): name is EmulatorSource => EMULATOR_SOURCES.includes(name as EmulatorSource),
);
const rows: Row[] = [];
let failures = 0;

try {
  for (const source of supported) {
    const options: ManagedIdentityClientOptions = {
      // Detection, not a forced source: the emulator's variables must select this back-end.
      env: running.env(source),
      // Arc's challenge names a key file in the emulator's folder instead of the agent's.
      platform: { ...defaultPlatform(), azureArc: { tokensFolder: `${running.arcKeyDirectory}/` } },
      // Workload identity's authority is https with the emulator's self-signed certificate
      // (Service Fabric needs no such help: the client pins IDENTITY_SERVER_THUMBPRINT).
      fetch: running.fetch,
    };
    const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), options);
    for (const step of STEPS) {
      const started = performance.now();
      try {
        const detected = client.getManagedIdentitySource();
        if (detected !== source) throw new Error(`detected ${detected} instead of ${source}`);
        const token: AccessTokenResult = await client.acquireTokenForClient({
          resource: RESOURCE,
          claimsChallenge: step.claimsChallenge,
        });
        const latency = `${(performance.now() - started).toFixed(1)} ms`;
        const claims = decodeJwt(token.accessToken);
        const verified = await jwtVerify(token.accessToken, keys, {
          audience: RESOURCE,
          issuer: running.emulator.issuer,
        }).then(
          () => "valid",
          (error: Error) => `INVALID (${error.message})`,
        );
        rows.push({
          backEnd: source,
          step: step.name,
          tokenSource: token.tokenSource,
          latency,
          expires: duration(token.expiresIn),
          aud: String(claims.aud),
          oid: String(claims.oid),
          signature: verified,
        });
      } catch (error) {
        failures++;
        const reason = isManagedIdentityError(error)
          ? `${error.code}: ${error.message}`
          : error instanceof Error
            ? error.message
            : String(error);
        rows.push({
          backEnd: source,
          step: step.name,
          tokenSource: "FAILED",
          latency: `${(performance.now() - started).toFixed(1)} ms`,
          expires: "-",
          aud: reason.length > 110 ? `${reason.slice(0, 110)}…` : reason,
          oid: "",
          signature: "",
        });
      }
    }
  }
  console.log(
    `Managed identity emulator on ${running.http} and ${running.https} (Service Fabric thumbprint ${running.thumbprint})`,
  );
  console.log("");
  printTable(rows);
  const sent = running.emulator.requests.filter((request) => request.source !== undefined);
  const revocation = sent.find((request) => request.query.token_sha256_to_refresh);
  console.log("");
  const missing = EMULATOR_SOURCES.filter((name) => !supported.includes(name));
  console.log(
    `${sent.length} requests reached the emulator for ${supported.length} back-ends${missing.length > 0 ? ` (not yet in the client: ${missing.join(", ")})` : ""}.` +
      (revocation
        ? ` Service Fabric's claims request carried token_sha256_to_refresh=${revocation.query.token_sha256_to_refresh?.slice(0, 12)}…`
        : ""),
  );
} finally {
  await running.close();
}
if (failures > 0) {
  console.error(`${failures} token request(s) failed.`);
  process.exitCode = 1;
}
