import { FaultSpecError } from "../emulator/faults.ts";
import { isManagedIdentityError } from "../index.ts";

/** A command line that cannot be run as given: exit code 2, with a pointer to `--help`. */
export class CliUsageError extends Error {
  /** Stable code for callers. */
  readonly code = "usage" as const;
  constructor(message: string) {
    super(message);
    this.name = "CliUsageError";
  }
}

/** Exit codes: 0 success, 1 the operation failed, 2 the command line is wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** One line for stderr, and the exit code, for anything a command threw. */
export function describeFailure(error: unknown, command: string): { line: string; exit: number } {
  const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ").trim();
  if (error instanceof CliUsageError || error instanceof FaultSpecError) {
    return {
      line: `managed-identity: ${oneLine(error.message)} (see: managed-identity ${command} --help)`.replace(
        "  ",
        " ",
      ),
      exit: EXIT.usage,
    };
  }
  if (isManagedIdentityError(error)) {
    return {
      line: `managed-identity: ${error.code}: ${oneLine(error.message)}`,
      exit: EXIT.failed,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { line: `managed-identity: ${oneLine(message)}`, exit: EXIT.failed };
}
