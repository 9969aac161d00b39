import type { ManagedIdentitySource } from "./sources/types.ts";

/**
 * Stable error codes. Branch on these, never on messages.
 *
 * Raised before any request (configuration): `invalid_managed_identity`, `invalid_resource`,
 * `invalid_option`, `source_unavailable`, `unsupported_identity`, `endpoint_not_allowed`,
 * `capability_unavailable` (the runtime lacks files or pinned TLS that the back-end needs).
 * Raised by the transport: `network_error`, `timeout`, `aborted`, `redirect_refused`,
 * `certificate_mismatch` (a pinned endpoint presented another certificate; nothing was sent).
 * Raised on a response: `invalid_response` (unparseable or incomplete), `identity_mismatch` (the
 * endpoint answered for another identity; nothing is cached), and for an error status
 * the service's OAuth-style code when it sent a known one (`invalid_request`, `invalid_client`,
 * `unauthorized_client`, `invalid_scope`, `invalid_grant`), else one derived from the status:
 * `throttled` (429), `service_unavailable` (5xx), `unauthorized_client` (401/403),
 * `not_found` (404) or `invalid_request` (other 4xx).
 */
export type ManagedIdentityErrorCode =
  | "invalid_managed_identity"
  | "invalid_resource"
  | "invalid_option"
  | "source_unavailable"
  | "unsupported_identity"
  | "endpoint_not_allowed"
  | "capability_unavailable"
  | "network_error"
  | "timeout"
  | "aborted"
  | "redirect_refused"
  | "certificate_mismatch"
  | "invalid_response"
  | "identity_mismatch"
  | "invalid_request"
  | "invalid_client"
  | "unauthorized_client"
  | "invalid_scope"
  | "invalid_grant"
  | "not_found"
  | "throttled"
  | "service_unavailable";

/** Details attached to a {@link ManagedIdentityError}. */
export interface ManagedIdentityErrorDetails {
  /** The back-end that was in use, when one had been chosen. */
  source?: ManagedIdentitySource | undefined;
  /** The HTTP status the endpoint answered with, when it answered. */
  status?: number | undefined;
  /** The service's own error code (for example `SecretHeaderNotFound`), when it sent one. */
  serviceCode?: string | undefined;
  /** The service's correlation id, when it sent one: quote it in a support request. */
  correlationId?: string | undefined;
  /** The underlying error. Never carries a token or a secret. */
  cause?: unknown;
}

/**
 * The one error type this package throws. `code` is stable; `message` says what was wrong and
 * what to do. Neither the message nor any enumerable field contains a token or a secret.
 */
export class ManagedIdentityError extends Error {
  /** A stable code to branch on. */
  readonly code: ManagedIdentityErrorCode;
  /** The back-end that was in use, when one had been chosen. */
  readonly source?: ManagedIdentitySource;
  /** The HTTP status the endpoint answered with, when it answered. */
  readonly status?: number;
  /** The service's own error code, when it sent one. */
  readonly serviceCode?: string;
  /** The service's correlation id, when it sent one. */
  readonly correlationId?: string;

  constructor(
    code: ManagedIdentityErrorCode,
    message: string,
    details: ManagedIdentityErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "ManagedIdentityError";
    this.code = code;
    if (details.source !== undefined) this.source = details.source;
    if (details.status !== undefined) this.status = details.status;
    if (details.serviceCode !== undefined) this.serviceCode = details.serviceCode;
    if (details.correlationId !== undefined) this.correlationId = details.correlationId;
  }

  /** A plain object for structured logs: name, code, message and the details, never `cause`. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      source: this.source,
      status: this.status,
      serviceCode: this.serviceCode,
      correlationId: this.correlationId,
    };
  }
}

/** Whether `value` is a {@link ManagedIdentityError}, across realms and bundled copies. */
export function isManagedIdentityError(value: unknown): value is ManagedIdentityError {
  return (
    value instanceof ManagedIdentityError ||
    (value instanceof Error &&
      value.name === "ManagedIdentityError" &&
      typeof (value as { code?: unknown }).code === "string")
  );
}

/**
 * Every form in which a secret may have been sent: as configured and trimmed (`Headers` strips
 * surrounding whitespace, so an IDENTITY_HEADER or key file ending in a newline goes out trimmed).
 */
export function secretForms(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    for (const form of [secret, secret.trim()]) if (form.length > 0) forms.add(form);
  }
  return [...forms];
}

/** Replaces every form of every secret in `text` with `[redacted]`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let safe = text;
  for (const secret of secretForms(secrets)) safe = safe.split(secret).join("[redacted]");
  return safe;
}

const JWT_PATTERN = /eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*/g;
const MAX_SERVICE_MESSAGE = 300;

/**
 * Makes text from a service safe to put in an error: removes every known secret, anything shaped
 * like a JWT, and control characters, and caps its length. A misbehaving endpoint may echo what
 * it was sent.
 */
export function sanitize(text: string, secrets: readonly string[] = []): string {
  let safe = redactSecrets(text, secrets);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  safe = safe.replace(JWT_PATTERN, "[redacted]").replace(/[\u0000-\u001f\u007f]+/g, " ");
  return safe.length > MAX_SERVICE_MESSAGE ? `${safe.slice(0, MAX_SERVICE_MESSAGE)}…` : safe;
}
