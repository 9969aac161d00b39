import { arcLocations, type PlatformOptions } from "./node.ts";
import { createPinnedFetch } from "./pinned-tls.ts";
import type { OperatingSystem, Platform } from "./types.ts";

/** The few Deno APIs used here, typed structurally so the core stays free of Deno's types. */
interface DenoNamespace {
  build: { os: string };
  env: { get(key: string): string | undefined };
  statSync(path: string): unknown;
  realPath(path: string): Promise<string>;
  open(
    path: string,
    options: { read: true },
  ): Promise<{
    stat(): Promise<{ size: number; isFile: boolean }>;
    read(buffer: Uint8Array): Promise<number | null>;
    close(): void;
  }>;
}

function denoOs(os: string): OperatingSystem {
  if (os === "linux") return "linux";
  if (os === "windows") return "windows";
  if (os === "darwin") return "darwin";
  return "other";
}

/**
 * Deno. Reading the environment needs `--allow-env` (it may be limited to the variables named in
 * the README); without it every variable reads as unset and IMDS is chosen.
 *
 * TLS pinning (Service Fabric) goes through Deno's Node compatibility layer. Deno's own API cannot
 * pin (checked with Deno 2.9): `Deno.connectTls` and `Deno.startTls` always verify the chain and the
 * host name (a self-signed endpoint fails with `UnknownIssuer`; `caCerts` would need the certificate
 * itself, which the client does not have, and the host name is still checked), short of the
 * process-wide `--unsafely-ignore-certificate-errors`; and their handshake info carries only the
 * ALPN protocol, never the peer's certificate. Its `node:tls` does what pinning needs, as Node's
 * does: `rejectUnauthorized: false`, the raw leaf certificate at `secureConnect` before any byte is
 * written, and `node:http` sending over the socket given by `createConnection`
 * (test/platform/runtime-pinning.test.ts runs it). It needs `--allow-net` for the endpoint.
 */
export function createDenoPlatform(options: PlatformOptions = {}): Platform {
  const deno = (globalThis as { Deno?: DenoNamespace }).Deno as DenoNamespace;
  // Deno 2 provides Node's `process` global, with getBuiltinModule, next to its own namespace.
  const process = (globalThis as { process?: { getBuiltinModule?(id: string): unknown } }).process;
  const load = process?.getBuiltinModule?.bind(process);
  const pinnedFetch = load ? createPinnedFetch(load) : undefined;
  const azureArc = arcLocations(options);
  return {
    name: "deno",
    os: denoOs(deno.build.os),
    ...(azureArc ? { azureArc } : {}),
    ...(pinnedFetch ? { pinnedFetch } : {}),
    realPath: (path) => deno.realPath(path),
    getEnv(key) {
      try {
        return deno.env.get(key);
      } catch {
        // Permission denied: the variable is not visible to this program.
        return undefined;
      }
    },
    async readTextFile(path, { maxBytes }) {
      // Size and contents come from one open handle, so the file cannot be swapped in between.
      const file = await deno.open(path, { read: true });
      try {
        const stat = await file.stat();
        if (!stat.isFile) throw new Error("not a regular file");
        if (stat.size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
        const buffer = new Uint8Array(stat.size);
        let offset = 0;
        while (offset < buffer.length) {
          const read = await file.read(buffer.subarray(offset));
          if (read === null) break;
          offset += read;
        }
        return new TextDecoder().decode(buffer.subarray(0, offset));
      } finally {
        file.close();
      }
    },
    fileExists(path) {
      try {
        deno.statSync(path);
        return true;
      } catch {
        return false;
      }
    },
  };
}
