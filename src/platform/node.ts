import { createPinnedFetch } from "./pinned-tls.ts";
import type { AzureArcLocations, OperatingSystem, Platform } from "./types.ts";

/** Options of {@link createNodePlatform}, `createBunPlatform` and `createDenoPlatform`. */
export interface PlatformOptions {
  /**
   * The folder where Azure Arc's challenge key files are accepted, instead of the agent's; for
   * tests (a temporary folder) and unusual installs. End it with the path separator.
   * @default the agent's folder: `/var/opt/azcmagent/tokens/`, or `%ProgramData%\AzureConnectedMachineAgent\Tokens\`
   */
  arcTokensFolder?: string | undefined;
  /**
   * The file whose presence selects Azure Arc, instead of the agent's executable; for tests.
   * @default `/opt/azcmagent/bin/himds`, or `%ProgramFiles%\AzureConnectedMachineAgent\himds.exe`
   */
  arcAgentFile?: string | undefined;
}

/** The few Node APIs used here, typed structurally so the core stays free of @types/node. */
interface NodeProcess {
  env: Record<string, string | undefined>;
  platform: string;
  getBuiltinModule?(id: string): unknown;
}
interface NodeFs {
  existsSync(path: string): boolean;
  promises: {
    realpath(path: string): Promise<string>;
    open(
      path: string,
      flags: string,
    ): Promise<{
      stat(): Promise<{ size: number; isFile(): boolean }>;
      read(
        buffer: Uint8Array,
        offset: number,
        length: number,
        position: number,
      ): Promise<{ bytesRead: number }>;
      close(): Promise<void>;
    }>;
  };
}

function nodeOs(platform: string): OperatingSystem {
  if (platform === "linux") return "linux";
  if (platform === "win32") return "windows";
  if (platform === "darwin") return "darwin";
  return "other";
}

/** The Azure Arc overrides of the options, or undefined when there are none. */
export function arcLocations(options: PlatformOptions): AzureArcLocations | undefined {
  const { arcTokensFolder, arcAgentFile } = options;
  // The challenge's path must be exactly folder + file name: supply a forgotten separator.
  const tokensFolder =
    arcTokensFolder === undefined || /[\\/]$/.test(arcTokensFolder)
      ? arcTokensFolder
      : `${arcTokensFolder}${arcTokensFolder.includes("\\") && !arcTokensFolder.includes("/") ? "\\" : "/"}`;
  return tokensFolder === undefined && arcAgentFile === undefined
    ? undefined
    : { tokensFolder, agentFile: arcAgentFile };
}

/** Node.js: its environment, files and pinned TLS. */
export function createNodePlatform(options: PlatformOptions = {}): Platform {
  return createNodeLikePlatform("node", options);
}

/**
 * Node.js (and runtimes that provide its `process` global, such as Bun). Built-in modules come
 * from `process.getBuiltinModule`, so bundlers for other runtimes never see a `node:` import.
 * TLS pinning uses `node:tls`: the leaf certificate is checked before the request is written.
 */
export function createNodeLikePlatform(name: "node" | "bun", options: PlatformOptions): Platform {
  const process = (globalThis as { process?: NodeProcess }).process;
  const load = process?.getBuiltinModule?.bind(process);
  const fs = load?.("node:fs") as NodeFs | undefined;
  const azureArc = arcLocations(options);
  const platform: Platform = {
    name,
    os: process ? nodeOs(process.platform) : undefined,
    getEnv: (key) => process?.env[key],
    ...(azureArc ? { azureArc } : {}),
  };
  if (fs) {
    platform.fileExists = (path) => fs.existsSync(path);
    platform.realPath = (path) => fs.promises.realpath(path);
    platform.readTextFile = async (path, { maxBytes }) => {
      // Size and contents come from one open handle, so the file cannot be swapped in between.
      const handle = await fs.promises.open(path, "r");
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) throw new Error("not a regular file");
        if (stat.size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
        // Read one byte more than allowed, so a file that grew since the check is still refused.
        const buffer = new Uint8Array(maxBytes + 1);
        let length = 0;
        for (;;) {
          const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
          if (bytesRead === 0) break;
          length += bytesRead;
          if (length > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
        }
        return new TextDecoder().decode(buffer.subarray(0, length));
      } finally {
        await handle.close();
      }
    };
  }
  const pinnedFetch = load ? createPinnedFetch(load) : undefined;
  if (pinnedFetch) platform.pinnedFetch = pinnedFetch;
  return platform;
}
