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
  | { kind: "wrong-identity" }
  /** Answer with an HTML error page, as a web server or proxy in front of the endpoint does. */
  | {
      kind: "html";
      /** @default 502 */
      status?: number | undefined;
    }
  /** Answer with a redirect to `location`, which a client must never follow. */
  | {
      kind: "redirect";
      location: string;
      /** @default 307 */
      status?: number | undefined;
    }
  /**
   * Send the status, the headers and the first half of the real token answer, then reset the
   * connection (a reset in the middle of the body).
   */
  | { kind: "reset" }
  /** The real token answer without its `access_token`. */
  | { kind: "no-access-token" }
  /** The real token answer with its expiry fields left out, unreadable, or already past. */
  | { kind: "expiry"; expiry: ExpiryFault }
  /** The real token answer after leading whitespace that makes it this many bytes (streamed). */
  | { kind: "large-body"; bytes: number };

/** What an `expiry` fault does to `expires_on` and `expires_in`. */
export type ExpiryFault = "missing" | "garbage" | "past";

const EXPIRY_FAULTS: readonly ExpiryFault[] = ["missing", "garbage", "past"];

/**
 * The faults that reshape a token answer. They fire only on an answer that carries a token (so
 * Arc's 401 challenge passes through them untouched) and count only the answers they reshaped.
 */
export const ANSWER_FAULTS: readonly FaultKind[] = [
  "reset",
  "no-access-token",
  "expiry",
  "large-body",
];

/** The kinds of {@link FaultAction}. */
export type FaultKind = FaultAction["kind"];

/** Which requests a fault applies to. */
export interface FaultScope {
  /** Only requests to this back-end. @default every back-end */
  source?: EmulatorSource | undefined;
  /** Only this many requests, then the fault is spent. @default every request */
  times?: number | undefined;
  /**
   * Only requests for this resource (IMDS's `resource` parameter, Cloud Shell's form field,
   * workload identity's scope without `/.default`), so concurrent tests need not share faults.
   * @default every resource
   */
  resource?: string | undefined;
  /** Let this many matching requests through before the fault fires. @default 0 */
  skip?: number | undefined;
}

/** A fault to inject: what it does and which requests it hits. */
export type EmulatorFault = FaultAction & FaultScope;

/** A fault the emulator holds, with how often it may still fire. */
export interface ActiveFault {
  readonly fault: EmulatorFault;
  /** Emulator time (ms) when it was added; IMDS's 410 window counts from here. */
  readonly addedAt: number;
  remaining: number;
  /** Matching requests still to let through before the fault fires. */
  skip: number;
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
  "status=CODE[,retry-after=SECONDS|retry-after-date=SECONDS] | delay=MS | hang | malformed | empty | drop | imds-410=SECONDS | wrong-identity | html[=STATUS] | redirect=URL[,redirect-status=CODE] | reset | no-access-token | expiry=missing|garbage|past | large-body=BYTES; then optionally ,source=NAME ,times=N ,resource=URL ,skip=N";

/** Splits `key=value` at the first `=` (a URL value may hold more). */
function pair(text: string): [string, string | undefined] {
  const at = text.indexOf("=");
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

function httpStatus(kind: string, value: string | undefined, low = 100, high = 599): number {
  const status = count(kind, value);
  if (!Number.isInteger(status) || status < low || status > high)
    throw new FaultSpecError(`${kind} needs an HTTP status code (${low}-${high}), got "${value}".`);
  return status;
}

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
 * `malformed`, `empty`, `drop`, `imds-410=70`, `wrong-identity,source=azure-arc`, `html=500`,
 * `redirect=http://127.0.0.2:8080/,redirect-status=302`, `reset`, `no-access-token`,
 * `expiry=past`, `large-body=10485760,resource=https://vault.azure.net,skip=1`.
 */
export function parseFault(spec: string): EmulatorFault {
  const parts = spec
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
  const [head, ...options] = parts;
  if (head === undefined) throw new FaultSpecError(`Empty fault. Syntax: ${FAULT_SYNTAX}.`);
  const [kind, value] = pair(head);
  let fault: EmulatorFault;
  switch (kind) {
    case "status":
      fault = { kind, status: httpStatus("status", value) };
      break;
    case "html":
      fault = value === undefined ? { kind } : { kind, status: httpStatus("html", value) };
      break;
    case "redirect":
      if (value === undefined || !URL.canParse(value))
        throw new FaultSpecError(`redirect needs an absolute URL, got "${value ?? ""}".`);
      fault = { kind, location: value };
      break;
    case "expiry":
      if (!EXPIRY_FAULTS.includes(value as ExpiryFault))
        throw new FaultSpecError(
          `expiry needs one of ${EXPIRY_FAULTS.join(", ")}, got "${value ?? ""}".`,
        );
      fault = { kind, expiry: value as ExpiryFault };
      break;
    case "large-body":
      fault = { kind, bytes: count("large-body", value) };
      break;
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
    case "reset":
    case "no-access-token":
      if (value !== undefined) throw new FaultSpecError(`Fault ${kind} takes no value.`);
      fault = { kind };
      break;
    default:
      throw new FaultSpecError(`Unknown fault "${kind}". Syntax: ${FAULT_SYNTAX}.`);
  }
  for (const option of options) {
    const [key, optionValue] = pair(option);
    if (key === "times") fault.times = count(key, optionValue);
    else if (key === "skip") fault.skip = count(key, optionValue);
    else if (key === "resource") {
      if (!optionValue) throw new FaultSpecError("Fault option resource needs a value.");
      fault.resource = optionValue;
    } else if (key === "redirect-status" && fault.kind === "redirect")
      fault.status = httpStatus(key, optionValue, 300, 399);
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
