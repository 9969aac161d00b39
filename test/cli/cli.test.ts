/**
 * The `managed-identity` CLI, run as a child process exactly as a user runs it: output, stderr and
 * exit codes asserted. The emulator that `token` talks to runs in this process (or is started by
 * `emulate` in another child).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EmulatorSource,
  MANAGED_IDENTITY_VARIABLES,
  type RunningEmulator,
  serveEmulator,
} from "../../src/emulator/index.ts";

const CLI = fileURLToPath(new URL("../../src/cli/index.ts", import.meta.url));
const NODE_ARGS = ["--import", "tsx", CLI];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function baseEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  for (const name of MANAGED_IDENTITY_VARIABLES) delete env[name];
  return { ...env, ...extra };
}

/** Runs the CLI to completion (asynchronously: an emulator may be serving in this process). */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...NODE_ARGS, ...args],
      { env: baseEnv(env), timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let running: RunningEmulator;
beforeAll(async () => {
  running = await serveEmulator({ userAssigned: 2 });
});
afterAll(() => running.close());

describe("help", { timeout: 30_000 }, () => {
  it("every command has help, exit code 0", async () => {
    const top = await cli(["--help"]);
    expect(top.code).toBe(0);
    for (const command of ["token", "source", "emulate"]) expect(top.stdout).toContain(command);
    const expected: Record<string, string[]> = {
      token: ["--resource", "--client-id", "--object-id", "--resource-id", "--json"],
      source: ["--json"],
      emulate: ["--source", "--port", "--fault", "imds-410", "--imds-limits"],
    };
    for (const [command, options] of Object.entries(expected)) {
      const help = await cli([command, "--help"]);
      expect(help.code, command).toBe(0);
      for (const option of options) expect(help.stdout, command).toContain(option);
    }
  });

  it("no command, an unknown command or an unknown option: exit 2 and one line on stderr", async () => {
    for (const args of [[], ["fly"], ["source", "--verbose"], ["token"]]) {
      const run = await cli(args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(run.stderr).toMatch(/^managed-identity: /);
    }
  });
});

describe("source", { timeout: 30_000 }, () => {
  it.each([
    ["imds"],
    ["app-service"],
    ["service-fabric"],
    ["machine-learning"],
    ["cloud-shell"],
    ["azure-arc"],
    ["workload-identity"],
  ] as [EmulatorSource][])(
    "reports %s and the variables that selected it, never their values",
    async (source) => {
      const env = running.env(source);
      const run = await cli(["source"], env);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^source: ${source} `));
      for (const name of Object.keys(env)) expect(run.stdout).toContain(name);
      for (const value of Object.values(running.emulator.secrets))
        expect(run.stdout).not.toContain(value);
      const json = JSON.parse((await cli(["source", "--json"], env)).stdout);
      expect(json).toMatchObject({ source, variables: expect.arrayContaining(Object.keys(env)) });
    },
  );
});

describe("token", { timeout: 30_000 }, () => {
  it("prints the access token alone, from the emulated back-end the environment selects", async () => {
    const run = await cli(
      ["token", "--resource", "https://vault.azure.net"],
      running.env("app-service"),
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    const claims = decodeJwt(run.stdout.trim());
    expect(claims).toMatchObject({
      aud: "https://vault.azure.net",
      oid: running.emulator.systemAssigned?.objectId,
    });
  });

  it("--json with --client-id, --object-id or --resource-id selects the user-assigned identity", async () => {
    const target = running.emulator.userAssigned[1] ?? expect.fail("no identity");
    for (const [flag, value] of [
      ["--client-id", target.clientId],
      ["--object-id", target.objectId],
      ["--resource-id", target.resourceId],
    ] as const) {
      const run = await cli(
        ["token", "--resource", "https://vault.azure.net/.default", flag, value, "--json"],
        running.env("imds"),
      );
      expect(run.code, flag).toBe(0);
      const json = JSON.parse(run.stdout);
      expect(json).toMatchObject({
        resource: "https://vault.azure.net",
        source: "imds",
        tokenSource: "identity_provider",
        tokenType: "Bearer",
      });
      expect(decodeJwt(json.accessToken).oid, flag).toBe(target.objectId);
      expect(json.expiresOn).toBeGreaterThan(Date.now() / 1000);
    }
  });

  it("a refused request: exit 1, one line on stderr with the error code, nothing on stdout", async () => {
    const run = await cli(
      ["token", "--resource", "https://vault.azure.net", "--client-id", crypto.randomUUID()],
      running.env("imds"),
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    const lines = run.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^managed-identity: invalid_request: .*HTTP 400.*Identity not found/);
  });

  it("a wrong secret is reported without the secret", async () => {
    const env = { ...running.env("app-service"), IDENTITY_HEADER: "not-the-secret-value" };
    const run = await cli(["token", "--resource", "https://vault.azure.net"], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^managed-identity: unauthorized_client: .*401/);
    expect(run.stderr).not.toContain("not-the-secret-value");
  });

  it("two identity options or an unknown source are usage errors (exit 2)", async () => {
    const both = await cli(["token", "--resource", "r", "--client-id", "a", "--object-id", "b"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("at most one of --client-id, --object-id and --resource-id");
    const source = await cli(["token", "--resource", "r", "--source", "mainframe"]);
    expect(source.code).toBe(2);
    expect(source.stderr).toContain('Unknown source "mainframe"');
  });
});

/** Starts `emulate` and waits for its ready line on stderr. */
async function startEmulate(args: string[]): Promise<{
  child: ChildProcess;
  env: Record<string, string>;
  stdout: string;
  stderr: () => string;
}> {
  const child = spawn(process.execPath, [...NODE_ARGS, "emulate", ...args], {
    env: baseEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
      if (stderr.includes("Press Ctrl+C to stop.")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`emulate exited ${code}: ${stderr}`)));
  });
  const env = Object.fromEntries(
    stdout
      .split("\n")
      .filter((line) => line.includes("=") && !line.startsWith("#"))
      .map((line) => {
        const index = line.indexOf("=");
        return [line.slice(0, index), line.slice(index + 1)];
      }),
  );
  return { child, env, stdout, stderr: () => stderr };
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

describe("emulate", { timeout: 60_000 }, () => {
  it("serves one back-end, prints its env lines, applies --fault, logs requests, exits 0 on SIGTERM", async () => {
    const { child, env, stderr } = await startEmulate([
      "--source",
      "imds",
      "--fault",
      "status=503,retry-after=7,times=1",
      "--fault",
      "malformed,times=1",
    ]);
    try {
      expect(Object.keys(env)).toEqual(["AZURE_POD_IDENTITY_AUTHORITY_HOST"]);
      const url = `${env.AZURE_POD_IDENTITY_AUTHORITY_HOST}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`;
      const first = await fetch(url, { headers: { Metadata: "true" } });
      expect(first.status).toBe(503);
      expect(first.headers.get("retry-after")).toBe("7");
      const second = await fetch(url, { headers: { Metadata: "true" } });
      expect(second.status).toBe(200);
      await expect(second.clone().json()).rejects.toThrow();
      const third = await fetch(url, { headers: { Metadata: "true" } });
      expect(decodeJwt(((await third.json()) as { access_token: string }).access_token).aud).toBe(
        "https://vault.azure.net",
      );
      // The CLI's own token command against the CLI's emulator.
      const token = await cli(["token", "--resource", "https://vault.azure.net"], env);
      expect(token.code).toBe(0);
      expect(stderr()).toMatch(
        /GET \/metadata\/identity\/oauth2\/token -> 503 \[imds\] faults: status/,
      );
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exitCode(child)).toBe(0);
  });

  it("without --source prints every back-end; NODE_EXTRA_CA_CERTS makes its https authority trusted", async () => {
    const { child, stdout } = await startEmulate(["--quiet"]);
    try {
      for (const source of [
        "imds",
        "app-service",
        "service-fabric",
        "azure-arc",
        "workload-identity",
      ]) {
        expect(stdout).toContain(`# ${source}\n`);
      }
      // The workload identity block, used as-is: Node's fetch trusts the emulator's certificate.
      const block = stdout.split("# workload-identity\n")[1]?.split("\n# ")[0] ?? "";
      const env = Object.fromEntries(
        block
          .trim()
          .split("\n")
          .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
      );
      expect(env.NODE_EXTRA_CA_CERTS).toBeTruthy();
      const token = await cli(["token", "--resource", "https://vault.azure.net", "--json"], env);
      expect(token.stderr).toBe("");
      expect(JSON.parse(token.stdout)).toMatchObject({ source: "workload-identity" });
    } finally {
      child.kill("SIGINT");
    }
    expect(await exitCode(child)).toBe(0);
  });

  it("--imds-limits=CONCURRENT,PER_SECOND throttles IMDS with 429 and Retry-After", async () => {
    const { child, env, stderr } = await startEmulate(["--source", "imds", "--imds-limits=1,2"]);
    try {
      expect(stderr()).toContain("IMDS throttles beyond 1 at once or 2 per second");
      const url = `${env.AZURE_POD_IDENTITY_AUTHORITY_HOST}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`;
      const answers = [];
      for (let index = 0; index < 3; index++)
        answers.push(await fetch(url, { headers: { Metadata: "true" } }));
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 429]);
      expect(answers[2]?.headers.get("retry-after")).toBe("1");
      expect(await answers[2]?.json()).toMatchObject({ error: "server_error" });
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exitCode(child)).toBe(0);
  });

  it("--imds-limits alone is accepted (IMDS's 5 at once, 20 per second); a bad value is exit 2", async () => {
    const { child, stderr } = await startEmulate(["--quiet", "--imds-limits"]);
    try {
      expect(stderr()).toContain("IMDS throttles beyond 5 at once or 20 per second");
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exitCode(child)).toBe(0);
    const run = await cli(["emulate", "--imds-limits=5"]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain("--imds-limits needs CONCURRENT,PER_SECOND");
  });

  it("refuses a fault it cannot read: exit 2, one line", async () => {
    const run = await cli(["emulate", "--fault", "explode"]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain('Unknown fault "explode"');
  });
});
