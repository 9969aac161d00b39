/** The back-ends the emulator speaks, by the names the client reports. */
export type EmulatorSource =
  | "imds"
  | "app-service"
  | "service-fabric"
  | "machine-learning"
  | "cloud-shell"
  | "azure-arc"
  | "workload-identity";

/** Every back-end the emulator speaks, in the client's detection order. */
export const EMULATOR_SOURCES: readonly EmulatorSource[] = [
  "service-fabric",
  "app-service",
  "machine-learning",
  "cloud-shell",
  "azure-arc",
  "workload-identity",
  "imds",
];

/** What a fault does to a matching request. */
export type FaultAction =
  /** Answer with this status (and `Retry-After` when given) in the back-end's error format. */
  | {
      kind: "status";
      status: number;
      /** `Retry-After`: seconds, or this HTTP date. */
      retryAfter?: number | Date | undefined;
      /** `Retry-After` as an HTTP date this many seconds after the answer is sent. */
      retryAfterDateIn?: number | undefined;
    }
  /** Wait this long, then answer normally (or with the next matching fault). */
  | { kind: "delay"; ms: number }
  /** Never answer; the connection stays open until the client gives up or the emulator closes. */
  | { kind: "hang" }
  /** Answer 200 with a body that is not valid JSON. */
  | { kind: "malformed" }
  /** Answer 200 with an empty body. */
  | { kind: "empty" }
  /** Close the connection without answering. */
  | { kind: "drop" }
  /** IMDS answers 410 (platform upgrade) for this many seconds from when the fault was added. */
  | { kind: "imds-410"; seconds: number }
  /** Answer with the system-assigned identity whatever identity was asked for (Arc's old agents). */
  | { kind: "wrong-identity" };

/** The kinds of {@link FaultAction}. */
export type FaultKind = FaultAction["kind"];

/** Which requests a fault applies to. */
export interface FaultScope {
  /** Only requests to this back-end. @default every back-end */
  source?: EmulatorSource | undefined;
  /** Only this many requests, then the fault is spent. @default every request */
  times?: number | undefined;
}

/** A fault to inject: what it does and which requests it hits. */
export type EmulatorFault = FaultAction & FaultScope;

/** A fault the emulator holds, with how often it may still fire. */
export interface ActiveFault {
  readonly fault: EmulatorFault;
  /** Emulator time (ms) when it was added; IMDS's 410 window counts from here. */
  readonly addedAt: number;
  remaining: number;
}

/** Thrown for a fault specification that cannot be read (CLI `--fault`). */
export class FaultSpecError extends Error {
  /** Stable code for callers. */
  readonly code = "invalid_fault" as const;
  constructor(message: string) {
    super(message);
    this.name = "FaultSpecError";
  }
}

/** The `--fault` syntax, for help texts. */
export const FAULT_SYNTAX =
  "status=CODE[,retry-after=SECONDS|retry-after-date=SECONDS] | delay=MS | hang | malformed | empty | drop | imds-410=SECONDS | wrong-identity; then optionally ,source=NAME ,times=N";

function count(key: string, value: string | undefined): number {
  const number = Number(value);
  if (value === undefined || value === "" || !Number.isFinite(number) || number < 0) {
    throw new FaultSpecError(
      `Fault option ${key} needs a non-negative number, got "${value ?? ""}".`,
    );
  }
  return number;
}

/**
 * Reads a fault from its command-line form, e.g. `status=429,retry-after=5,times=2,source=imds`,
 * `status=503,retry-after-date=30` (an HTTP date 30 s after the answer), `delay=500`, `hang`,
 * `malformed`, `empty`, `drop`, `imds-410=70`, `wrong-identity,source=azure-arc`.
 */
export function parseFault(spec: string): EmulatorFault {
  const parts = spec
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  const [head, ...options] = parts;
  if (head === undefined) throw new FaultSpecError(`Empty fault. Syntax: ${FAULT_SYNTAX}.`);
  const [kind = "", value] = head.split("=", 2) as [string, string | undefined];
  let fault: EmulatorFault;
  switch (kind) {
    case "status": {
      const status = count("status", value);
      if (!Number.isInteger(status) || status < 100 || status > 599)
        throw new FaultSpecError(`status needs an HTTP status code (100-599), got "${value}".`);
      fault = { kind, status };
      break;
    }
    case "delay":
      fault = { kind, ms: count("delay", value) };
      break;
    case "imds-410":
      fault = { kind, seconds: count("imds-410", value) };
      break;
    case "hang":
    case "malformed":
    case "empty":
    case "drop":
    case "wrong-identity":
      if (value !== undefined) throw new FaultSpecError(`Fault ${kind} takes no value.`);
      fault = { kind };
      break;
    default:
      throw new FaultSpecError(`Unknown fault "${kind}". Syntax: ${FAULT_SYNTAX}.`);
  }
  for (const option of options) {
    const [key = "", optionValue] = option.split("=", 2) as [string, string | undefined];
    if (key === "times") fault.times = count(key, optionValue);
    else if (key === "source") {
      if (!EMULATOR_SOURCES.includes(optionValue as EmulatorSource))
        throw new FaultSpecError(
          `Unknown source "${optionValue ?? ""}"; known: ${EMULATOR_SOURCES.join(", ")}.`,
        );
      fault.source = optionValue as EmulatorSource;
    } else if ((key === "retry-after" || key === "retry-after-date") && fault.kind === "status") {
      const seconds = count(key, optionValue);
      // The date is computed when the answer is sent, so "30 s from now" stays 30 s from then.
      if (key === "retry-after") fault.retryAfter = seconds;
      else fault.retryAfterDateIn = seconds;
    } else throw new FaultSpecError(`Unknown option "${key}" for fault ${fault.kind}.`);
  }
  return fault;
}

/** The `Retry-After` header value for a status fault at emulator time `now` (ms). */
export function retryAfterHeader(fault: EmulatorFault, now: number): string | undefined {
  if (fault.kind !== "status") return undefined;
  if (fault.retryAfterDateIn !== undefined)
    return new Date(now + fault.retryAfterDateIn * 1000).toUTCString();
  if (fault.retryAfter === undefined) return undefined;
  return fault.retryAfter instanceof Date
    ? fault.retryAfter.toUTCString()
    : String(Math.round(fault.retryAfter));
}
