/**
 * The acceptance test of the emulator: the reference SDKs, `@azure/msal-node`'s
 * ManagedIdentityApplication and `@azure/identity`'s ManagedIdentityCredential, run in a child
 * process pointed at the emulator only by environment variables, get tokens from every back-end
 * they support; and the emulator refuses their requests when a secret or an identity is wrong.
 * This proves it speaks the real protocol, not just ours.
 */
import { execFile } from "node:child_process";
import { accessSync, constants, mkdirSync, readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EmulatorSource,
  HTTPS_ONLY_SOURCES,
  MANAGED_IDENTITY_VARIABLES,
  type RunningEmulator,
  serveEmulator,
} from "../../src/emulator/index.ts";

const PEER = fileURLToPath(new URL("./fixtures/peer.mjs", import.meta.url));
const RESOURCE = "https://management.azure.com";
// MSAL and Azure Identity read Arc's key only from the agent's own folder.
const ARC_TOKENS_FOLDER = "/var/opt/azcmagent/tokens";

interface PeerResult {
  ok: boolean;
  accessToken?: string;
  source?: string;
  error?: string;
}

/** Whether this machine lets the test write Arc key files where the agent would (root on Linux). */
function arcFolderUsable(): { usable: boolean; created: string | undefined } {
  if (process.platform !== "linux") return { usable: false, created: undefined };
  try {
    accessSync(ARC_TOKENS_FOLDER, constants.W_OK);
    return { usable: true, created: undefined };
  } catch {
    try {
      // mkdir returns the first folder it had to create: the one to remove afterwards.
      const created = mkdirSync(ARC_TOKENS_FOLDER, { recursive: true, mode: 0o700 });
      return { usable: true, created };
    } catch {
      return { usable: false, created: undefined };
    }
  }
}

let running: RunningEmulator;
const arcFolder = arcFolderUsable();
const keyFilesBefore = new Set(arcFolder.usable ? readdirSync(ARC_TOKENS_FOLDER) : []);

beforeAll(async () => {
  running = await serveEmulator({
    userAssigned: 2,
    ...(arcFolder.usable ? { arcKeyDirectory: ARC_TOKENS_FOLDER } : {}),
  });
});
afterAll(async () => {
  await running.close();
  if (!arcFolder.usable) return;
  // Remove only the key files this test made the emulator write into the agent's folder.
  if (arcFolder.created) rmSync(arcFolder.created, { recursive: true, force: true });
  else {
    for (const name of readdirSync(ARC_TOKENS_FOLDER)) {
      if (!keyFilesBefore.has(name) && name.endsWith(".key"))
        rmSync(`${ARC_TOKENS_FOLDER}/${name}`, { force: true });
    }
  }
});

function childEnvironment(source: EmulatorSource, overrides: Record<string, string>) {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of MANAGED_IDENTITY_VARIABLES) delete env[name];
  // Peers do not pin Service Fabric's thumbprint: they trust the certificate like any CA.
  if (HTTPS_ONLY_SOURCES.includes(source)) env.NODE_EXTRA_CA_CERTS = running.certificateFile;
  return { ...env, ...running.env(source), ...overrides };
}

/** Runs a peer in a child process (asynchronously: the emulator lives in this process). */
function runPeer(
  peer: "msal" | "identity",
  source: EmulatorSource,
  options: { clientId?: string; env?: Record<string, string> } = {},
): Promise<PeerResult> {
  const args = [PEER, peer, RESOURCE, ...(options.clientId ? [options.clientId] : [])];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { env: childEnvironment(source, options.env ?? {}), timeout: 60_000 },
      (error, stdout, stderr) => {
        const line = stdout.trim().split("\n").at(-1);
        if (!line) return reject(new Error(`peer printed nothing: ${error?.message} ${stderr}`));
        resolve(JSON.parse(line) as PeerResult);
      },
    );
  });
}

async function expectValidToken(result: PeerResult, oid: string | undefined): Promise<void> {
  expect(result.error).toBeUndefined();
  expect(result.ok).toBe(true);
  const { payload } = await jwtVerify(
    result.accessToken ?? "",
    createLocalJWKSet(running.emulator.jwks),
    {
      audience: RESOURCE,
      issuer: running.emulator.issuer,
    },
  );
  expect(payload.oid).toBe(oid);
}

// Arc's cases need the agent's folder (root on Linux); elsewhere they are left out.
const MSAL_SOURCES: EmulatorSource[] = [
  "imds",
  "app-service",
  "service-fabric",
  "machine-learning",
  "cloud-shell",
  ...(arcFolder.usable ? (["azure-arc"] as const) : []),
];
const IDENTITY_SOURCES: EmulatorSource[] = [...MSAL_SOURCES, "workload-identity"];
const MSAL_NAMES: Record<string, string> = {
  imds: "DefaultToImds",
  "app-service": "AppService",
  "service-fabric": "ServiceFabric",
  "machine-learning": "MachineLearning",
  "cloud-shell": "CloudShell",
  "azure-arc": "AzureArc",
};

function expectedOid(source: EmulatorSource): string | undefined {
  if (source === "cloud-shell") return running.emulator.cloudShellUser.objectId;
  if (source === "workload-identity") return running.emulator.userAssigned[0]?.objectId;
  return running.emulator.systemAssigned?.objectId;
}

// Each case starts a Node child process that loads a whole SDK: seconds, not milliseconds.
describe("@azure/msal-node 7.2.3 ManagedIdentityApplication", { timeout: 60_000 }, () => {
  it.each(MSAL_SOURCES.map((source) => [source]))(
    "gets a valid token from the emulated %s",
    async (source) => {
      running.emulator.requests.length = 0;
      const result = await runPeer("msal", source);
      await expectValidToken(result, expectedOid(source));
      expect(result.source).toBe(MSAL_NAMES[source]);
      // It really went through the emulated endpoint.
      const sent = running.emulator.requests.filter((request) => request.source === source);
      expect(sent.at(-1)?.status).toBe(200);
    },
  );

  it("selects a user-assigned identity by client id on IMDS and Arc (echo check passes)", async () => {
    const target = running.emulator.userAssigned[1];
    for (const source of ["imds", ...(arcFolder.usable ? ["azure-arc"] : [])] as EmulatorSource[]) {
      const result = await runPeer("msal", source, { clientId: target?.clientId ?? "" });
      await expectValidToken(result, target?.objectId);
    }
  });

  it("is refused by the emulator when its secret header or identity is wrong", async () => {
    const wrongSecret = await runPeer("msal", "app-service", { env: { IDENTITY_HEADER: "wrong" } });
    expect(wrongSecret.ok).toBe(false);
    expect(running.emulator.requests.at(-1)).toMatchObject({ source: "app-service", status: 401 });
    const wrongMl = await runPeer("msal", "machine-learning", { env: { MSI_SECRET: "wrong" } });
    expect(wrongMl.ok).toBe(false);
    expect(running.emulator.requests.at(-1)).toMatchObject({
      source: "machine-learning",
      status: 401,
    });
    const unknown = await runPeer("msal", "imds", { clientId: crypto.randomUUID() });
    expect(unknown.ok).toBe(false);
    expect(running.emulator.requests.at(-1)).toMatchObject({ source: "imds", status: 400 });
  });

  it.skipIf(!arcFolder.usable)(
    "fails closed when the emulated Arc agent answers for the wrong identity",
    async () => {
      running.emulator.addFault({ kind: "wrong-identity", source: "azure-arc" });
      try {
        const result = await runPeer("msal", "azure-arc", {
          clientId: running.emulator.userAssigned[1]?.clientId ?? "",
        });
        expect(result.ok).toBe(false);
        expect(running.emulator.requests.at(-1)).toMatchObject({
          source: "azure-arc",
          status: 200,
        });
      } finally {
        running.emulator.clearFaults();
      }
    },
  );
});

describe("@azure/identity 4.13.0 ManagedIdentityCredential", { timeout: 60_000 }, () => {
  it.each(IDENTITY_SOURCES.map((source) => [source]))(
    "gets a valid token from the emulated %s",
    async (source) => {
      running.emulator.requests.length = 0;
      const result = await runPeer("identity", source);
      await expectValidToken(result, expectedOid(source));
      const sent = running.emulator.requests.filter((request) => request.source === source);
      expect(sent.at(-1)?.status).toBe(200);
    },
  );

  it("is refused by the emulator when the workload identity's client id is unknown", async () => {
    const result = await runPeer("identity", "workload-identity", {
      env: { AZURE_CLIENT_ID: crypto.randomUUID() },
    });
    expect(result.ok).toBe(false);
    expect(running.emulator.requests.at(-1)).toMatchObject({
      source: "workload-identity",
      status: 400,
    });
  });
});
