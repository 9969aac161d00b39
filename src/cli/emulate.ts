import type { CommandDef } from "citty";
import { HTTPS_ONLY_SOURCES } from "../emulator/emulator.ts";
import {
  EMULATOR_SOURCES,
  type EmulatorFault,
  type EmulatorSource,
  FAULT_SYNTAX,
  parseFault,
} from "../emulator/faults.ts";
import { IMDS_LIMITS, type ImdsLimits } from "../emulator/limits.ts";
import { serveEmulator } from "../emulator/serve.ts";
import type { CliIo } from "../platform/cli-process.ts";
import { command } from "./command.ts";
import { CliUsageError } from "./errors.ts";

function port(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 65_535)
    throw new CliUsageError(`--${name} needs a port number (0-65535), got "${value}".`);
  return number;
}

function shellValue(value: string): string {
  return /^[\w@%+=:,./-]*$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/** Every `--fault` of the command line: citty keeps only one value per option. */
export function faultArguments(rawArgs: readonly string[]): string[] {
  const faults: string[] = [];
  rawArgs.forEach((arg, index) => {
    if (arg === "--fault") {
      const value = rawArgs[index + 1];
      if (value === undefined || value.startsWith("--"))
        throw new CliUsageError(`--fault needs a value: ${FAULT_SYNTAX}.`);
      faults.push(value);
    } else if (arg.startsWith("--fault=")) faults.push(arg.slice("--fault=".length));
  });
  return faults;
}

/**
 * `--imds-limits` (IMDS's own 5 at once and 20 per second) or `--imds-limits=CONCURRENT,PER_SECOND`;
 * read from the command line because citty turns a boolean's `=value` into `true`.
 */
export function imdsLimitsArgument(rawArgs: readonly string[]): ImdsLimits | undefined {
  let limits: ImdsLimits | undefined;
  for (const arg of rawArgs) {
    if (arg === "--imds-limits") limits = { ...IMDS_LIMITS };
    else if (arg === "--no-imds-limits") limits = undefined;
    else if (arg.startsWith("--imds-limits=")) {
      const value = arg.slice("--imds-limits=".length);
      const match = /^(\d+),(\d+)$/.exec(value.trim());
      const [concurrent, perSecond] = [Number(match?.[1]), Number(match?.[2])];
      if (!match || concurrent < 1 || perSecond < 1)
        throw new CliUsageError(
          `--imds-limits needs CONCURRENT,PER_SECOND, two whole numbers of at least 1 (e.g. 5,20), got "${value}".`,
        );
      limits = { concurrent, perSecond };
    }
  }
  return limits;
}

/** `managed-identity emulate`: serves the emulator and prints the variables that point at it. */
export const emulateCommand: CommandDef = command({
  meta: {
    name: "emulate",
    description:
      "Serve the managed identity emulator on 127.0.0.1 and print the environment lines (KEY=value) that point an app or SDK at it. Runs until Ctrl+C.",
  },
  args: {
    source: {
      type: "string",
      description: `Print the variables of this back-end only (${EMULATOR_SOURCES.join(", ")}); default: every back-end, each under a # comment`,
      valueHint: "NAME",
    },
    port: {
      type: "string",
      description: "The http port (0: any free port)",
      valueHint: "PORT",
      default: "0",
    },
    "https-port": {
      type: "string",
      description: "The https port for Service Fabric and workload identity (0: any free port)",
      valueHint: "PORT",
      default: "0",
    },
    fault: {
      type: "string",
      description: `Inject a fault; repeatable. ${FAULT_SYNTAX}. (IMDS's own throttling: --imds-limits)`,
      valueHint: "SPEC",
    },
    "imds-limits": {
      type: "boolean",
      description: `Throttle IMDS as Azure does: 429 with Retry-After beyond ${IMDS_LIMITS.concurrent} requests at once or ${IMDS_LIMITS.perSecond} per second; --imds-limits=CONCURRENT,PER_SECOND sets other limits`,
    },
    "user-assigned": {
      type: "string",
      description: "How many user-assigned identities to make up",
      valueHint: "N",
      default: "1",
    },
    "arc-key-directory": {
      type: "string",
      description:
        "Where Azure Arc's key files go (clients that check the agent's folder need /var/opt/azcmagent/tokens)",
      valueHint: "DIR",
    },
    quiet: { type: "boolean", description: "Do not log requests on stderr" },
  },
  async run({ args, rawArgs, data }) {
    const io = data as CliIo;
    const source = args.source as EmulatorSource | undefined;
    if (source !== undefined && !EMULATOR_SOURCES.includes(source))
      throw new CliUsageError(`Unknown source "${source}"; known: ${EMULATOR_SOURCES.join(", ")}.`);
    const faults: EmulatorFault[] = faultArguments(rawArgs).map(parseFault);
    const imdsLimits = imdsLimitsArgument(rawArgs);
    const userAssigned = Number(args["user-assigned"]);
    if (!Number.isInteger(userAssigned) || userAssigned < 0 || userAssigned > 100)
      throw new CliUsageError(
        `--user-assigned needs a count (0-100), got "${args["user-assigned"]}".`,
      );
    const running = await serveEmulator({
      port: port("port", args.port),
      httpsPort: port("https-port", args["https-port"]),
      faults,
      userAssigned,
      ...(imdsLimits ? { imdsLimits } : {}),
      ...(args["arc-key-directory"] ? { arcKeyDirectory: args["arc-key-directory"] } : {}),
      ...(args.quiet
        ? {}
        : {
            onRequest: (request) =>
              io.err(
                `${request.method} ${request.path} -> ${request.status || "no answer"}${request.source ? ` [${request.source}]` : ""}${request.faults.length > 0 ? ` faults: ${request.faults.join(", ")}` : ""}`,
              ),
          }),
    });
    const print = (name: EmulatorSource) => {
      for (const [key, value] of Object.entries(running.env(name)))
        io.out(`${key}=${shellValue(value)}`);
      // Clients that do not pin the thumbprint (MSAL, Azure Identity) must trust the certificate.
      if (HTTPS_ONLY_SOURCES.includes(name))
        io.out(`NODE_EXTRA_CA_CERTS=${shellValue(running.certificateFile)}`);
    };
    if (source) print(source);
    else {
      for (const name of EMULATOR_SOURCES) {
        io.out(`# ${name}`);
        print(name);
      }
    }
    const { emulator } = running;
    io.err(
      `managed-identity emulator: http ${running.http}, https ${running.https} (thumbprint ${running.thumbprint}); system-assigned client id ${emulator.systemAssigned?.clientId ?? "none"}; user-assigned client ids ${emulator.userAssigned.map((identity) => identity.clientId).join(", ") || "none"}; JWKS ${running.http}/discovery/keys${imdsLimits ? `; IMDS throttles beyond ${imdsLimits.concurrent} at once or ${imdsLimits.perSecond} per second` : ""}. Press Ctrl+C to stop.`,
    );
    await io.stopped();
    await running.close();
  },
});
