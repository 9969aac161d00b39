import type { OperatingSystem, Platform } from "./types.ts";

/** The few Node APIs used here, typed structurally so the core stays free of @types/node. */
interface NodeProcess {
  env: Record<string, string | undefined>;
  platform: string;
  getBuiltinModule?(id: string): unknown;
}
interface NodeFs {
  existsSync(path: string): boolean;
  promises: {
    open(
      path: string,
      flags: string,
    ): Promise<{
      stat(): Promise<{ size: number; isFile(): boolean }>;
      readFile(options: { encoding: "utf8" }): Promise<string>;
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

/**
 * Node.js (and runtimes that provide its `process` global, such as Bun). Built-in modules come
 * from `process.getBuiltinModule`, so bundlers for other runtimes never see a `node:` import.
 */
export function createNodePlatform(name: "node" | "bun" = "node"): Platform {
  const process = (globalThis as { process?: NodeProcess }).process;
  const fs = process?.getBuiltinModule?.("node:fs") as NodeFs | undefined;
  const platform: Platform = {
    name,
    os: process ? nodeOs(process.platform) : undefined,
    getEnv: (key) => process?.env[key],
  };
  if (fs) {
    platform.fileExists = (path) => fs.existsSync(path);
    platform.readTextFile = async (path, { maxBytes }) => {
      // Size and contents come from one open handle, so the file cannot be swapped in between.
      const handle = await fs.promises.open(path, "r");
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) throw new Error("not a regular file");
        if (stat.size > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
        return await handle.readFile({ encoding: "utf8" });
      } finally {
        await handle.close();
      }
    };
  }
  return platform;
}
