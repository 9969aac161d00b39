import type { OperatingSystem, Platform } from "./types.ts";

/** The few Deno APIs used here, typed structurally so the core stays free of Deno's types. */
interface DenoNamespace {
  build: { os: string };
  env: { get(key: string): string | undefined };
  statSync(path: string): unknown;
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
 */
export function createDenoPlatform(): Platform {
  const deno = (globalThis as { Deno?: DenoNamespace }).Deno as DenoNamespace;
  return {
    name: "deno",
    os: denoOs(deno.build.os),
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
