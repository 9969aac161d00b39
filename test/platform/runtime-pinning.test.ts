import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createCertificate,
  type RawTlsServer,
  receivedText,
  startRawTlsServer,
  type TestCertificate,
} from "./tls.ts";

const run = promisify(execFile);
const RUNNER = fileURLToPath(new URL("./pinned-fetch-runner.ts", import.meta.url));
const BIN = fileURLToPath(new URL("../../node_modules/.bin/", import.meta.url));

/** The same pinned fetch under Bun (its Node built-ins) and Deno (its Node compatibility layer). */
const RUNTIMES = {
  bun: [`${BIN}bun`, ["run", RUNNER]],
  deno: [`${BIN}deno`, ["run", "--no-config", "--allow-net=127.0.0.1", RUNNER]],
} as const;

let certificate: TestCertificate;
let other: TestCertificate;
beforeAll(async () => {
  [certificate, other] = await Promise.all([createCertificate(), createCertificate("impostor")]);
}, 30_000);

describe.each(Object.entries(RUNTIMES))("%s platform: pinnedFetch", (runtime, [command, args]) => {
  let server: RawTlsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function runPinned(url: string, thumbprint: string): Promise<Record<string, unknown>> {
    const { stdout } = await run(command, [...args, url, thumbprint], { timeout: 30_000 });
    return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}");
  }

  it("gets the response when the pin matches", async () => {
    server = await startRawTlsServer(certificate);
    const outcome = await runPinned(`${server.url}/token?resource=r`, certificate.thumbprint);
    expect(outcome).toEqual({ runtime, status: 200, body: '{"ok":true}' });
    expect(receivedText(server.connections[0])).toMatch(/^GET \/token\?resource=r HTTP\/1\.1\r\n/);
    expect(receivedText(server.connections[0])).toContain("secret: runner-secret\r\n");
  }, 30_000);

  it("rejects on a mismatch and the server receives no byte", async () => {
    server = await startRawTlsServer(other);
    const outcome = await runPinned(`${server.url}/token`, certificate.thumbprint);
    expect(outcome.error).toMatch(/did not match the pinned SHA-1 thumbprint/);
    expect(server.connections).toHaveLength(1);
    await server.connections[0]?.closed;
    expect(server.connections[0]?.received).toEqual([]);
  }, 30_000);
});
