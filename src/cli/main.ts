import { type CommandDef, renderUsage, runCommand } from "citty";
import type { CliIo } from "../platform/cli-process.ts";
import { emulateCommand } from "./emulate.ts";
import { CliUsageError, describeFailure, EXIT } from "./errors.ts";
import { sourceCommand } from "./source.ts";
import { tokenCommand } from "./token.ts";

// citty's own runMain prints stack traces and usage on every error; errors here are one line.
const COMMANDS: Record<string, CommandDef> = {
  token: tokenCommand,
  source: sourceCommand,
  emulate: emulateCommand,
};

/** The top-level command, for help. */
export const mainCommand: CommandDef = {
  meta: {
    name: "managed-identity",
    description:
      "Azure managed identity tokens from the command line, and an emulator of every back-end.",
  },
  subCommands: COMMANDS,
};

const HELP = new Set(["--help", "-h"]);

async function knownOptions(command: CommandDef): Promise<Set<string>> {
  const args = (await (typeof command.args === "function" ? command.args() : command.args)) ?? {};
  return new Set(Object.entries(args).map(([name]) => name));
}

async function checkOptions(command: CommandDef, rawArgs: readonly string[]): Promise<void> {
  const known = await knownOptions(command);
  for (const arg of rawArgs) {
    if (!arg.startsWith("--")) continue;
    const name = arg.slice(2).split("=", 1)[0] ?? "";
    if (!known.has(name) && !(name.startsWith("no-") && known.has(name.slice(3))))
      throw new CliUsageError(`Unknown option --${name}.`);
  }
}

/**
 * Runs the CLI with `argv` (without the node and script paths); returns the exit code:
 * 0 on success, 1 when the operation failed, 2 for a wrong command line.
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || HELP.has(name)) {
    io.out(await renderUsage(mainCommand));
    if (name === undefined) {
      io.err("managed-identity: no command given (token, source or emulate).");
      return EXIT.usage;
    }
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(
      `managed-identity: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(", ")} (see: managed-identity --help)`,
    );
    return EXIT.usage;
  }
  if (rest.some((arg) => HELP.has(arg))) {
    io.out(await renderUsage(command, mainCommand));
    return EXIT.ok;
  }
  try {
    await checkOptions(command, rest);
    await runCommand(command, { rawArgs: [...rest], data: io });
    return EXIT.ok;
  } catch (error) {
    // citty reports a missing required option with its own error class.
    const usage =
      error instanceof Error && error.name === "CLIError"
        ? new CliUsageError(error.message)
        : error;
    const { line, exit } = describeFailure(usage, name);
    io.err(line);
    return exit;
  }
}
