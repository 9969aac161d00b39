/**
 * The CLI's platform shim: the few parts of the `process` global (Node, and Deno and Bun, which
 * provide it) the `managed-identity` command uses, typed structurally so that src/ compiles with
 * the core's `"types": []` (as src/platform/node.ts does). Not part of the core entry.
 */
export interface CliProcess {
  argv: string[];
  env: Record<string, string | undefined>;
  exitCode?: number | string | undefined;
  stdout: { write(text: string): boolean };
  stderr: { write(text: string): boolean };
  once(signal: "SIGINT" | "SIGTERM", listener: () => void): unknown;
  getBuiltinModule?(id: string): unknown;
}

/** The running process. */
export function currentProcess(): CliProcess {
  const process = (globalThis as { process?: CliProcess }).process;
  if (!process) throw new Error("The managed-identity CLI runs on Node, Deno or Bun.");
  return process;
}

/** Where a command writes; tests and the entry point pass the process's streams. */
export interface CliIo {
  env: Record<string, string | undefined>;
  out(line: string): void;
  err(line: string): void;
  /** Resolves when the user asks the process to stop (Ctrl+C, SIGTERM). */
  stopped(): Promise<void>;
  /** Whether a file exists (Arc's agent detection). */
  fileExists(path: string): boolean;
}

/** The I/O of the running process. */
export function processIo(process: CliProcess): CliIo {
  const fs = process.getBuiltinModule?.("node:fs") as
    | { existsSync(path: string): boolean }
    | undefined;
  return {
    env: process.env,
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
    stopped: () =>
      new Promise((resolve) => {
        process.once("SIGINT", () => resolve());
        process.once("SIGTERM", () => resolve());
      }),
    fileExists: (path) => fs?.existsSync(path) ?? false,
  };
}
