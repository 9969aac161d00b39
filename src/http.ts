import { ManagedIdentityError, type ManagedIdentityErrorCode, sanitize } from "./errors.ts";
import type { SourceDefinition, TokenRequest } from "./sources/types.ts";

/** A fetch-compatible function. */
export type FetchLike = (input: Request | string | URL, init?: RequestInit) => Promise<Response>;

/** A response whose body has been read (and capped). */
export interface HttpResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** How one request is sent. */
export interface Transport {
  fetch: FetchLike;
  /** Per-attempt timeout in milliseconds. */
  timeout: number;
  /** The caller's abort signal. */
  signal?: AbortSignal | undefined;
}

/** Token responses are a few kilobytes; anything far larger is not one. */
const MAX_BODY_BYTES = 256 * 1024;

const OAUTH_ERROR_CODES = new Set<string>([
  "invalid_request",
  "invalid_client",
  "unauthorized_client",
  "invalid_scope",
  "invalid_grant",
]);

/** The request's full URL, query included. */
export function requestUrl(request: TokenRequest): string {
  const url = new URL(request.url);
  for (const [name, value] of Object.entries(request.query ?? {}))
    url.searchParams.set(name, value);
  return url.href;
}

/** The request's form body, encoded, or undefined for a request without one. */
export function requestBody(request: TokenRequest): string | undefined {
  return request.form ? new URLSearchParams(request.form).toString() : undefined;
}

/**
 * Rejects when `signal` aborts. Raced against fetch and every body read, so a timeout or an abort
 * takes effect even with a fetch that ignores `init.signal` (a wrapper that rebuilds the Request,
 * say): a call must settle, or every caller sharing it would wait for ever.
 */
function whenAborted(signal: AbortSignal): Promise<never> {
  const aborted = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  aborted.catch(() => {});
  return aborted;
}

async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  source: SourceDefinition,
  aborted: Promise<never>,
): Promise<string> {
  if (!body) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let size = 0;
  let text = "";
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await Promise.race([reader.read(), aborted]);
    } catch (error) {
      reader.cancel().catch(() => {});
      throw error;
    }
    const { done, value } = chunk;
    if (done) return text + decoder.decode();
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw new ManagedIdentityError(
        "invalid_response",
        `The ${source.label} endpoint sent a response larger than ${MAX_BODY_BYTES} bytes; a token response is a few kilobytes.`,
        { source: source.name },
      );
    }
    text += decoder.decode(value, { stream: true });
  }
}

/**
 * Sends one request: no redirects followed (a 3xx is an error), a per-attempt timeout, the
 * caller's signal honoured, the body capped. Errors never carry the request's secrets.
 */
export async function send(
  request: TokenRequest,
  source: SourceDefinition,
  transport: Transport,
): Promise<HttpResponse> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), transport.timeout);
  const signal = transport.signal
    ? AbortSignal.any([transport.signal, timeout.signal])
    : timeout.signal;
  const headers: Record<string, string> = {
    ...request.headers,
    "x-ms-client-request-id": crypto.randomUUID(),
  };
  const body = requestBody(request);
  if (body !== undefined) headers["Content-Type"] = "application/x-www-form-urlencoded";
  try {
    // Plain fetch, not a wrapper: redirects stay manual, retries and timeouts are ours, and the
    // body is read as a capped stream.
    const init: RequestInit = { method: request.method, headers, redirect: "manual", signal };
    if (body !== undefined) init.body = body;
    const aborted = whenAborted(signal);
    const fetching = transport.fetch(requestUrl(request), init);
    fetching.catch(() => {});
    const response = await Promise.race([fetching, aborted]);
    // Browsers hide a manual redirect behind an opaque response with status 0.
    if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
      await response.body?.cancel().catch(() => {});
      throw new ManagedIdentityError(
        "redirect_refused",
        `The ${source.label} endpoint answered with a redirect (HTTP ${response.status}); managed identity requests never follow redirects.`,
        { source: source.name, status: response.status },
      );
    }
    return {
      status: response.status,
      headers: response.headers,
      body: await readCapped(response.body, source, aborted),
    };
  } catch (error) {
    if (error instanceof ManagedIdentityError) throw error;
    if (transport.signal?.aborted) {
      throw new ManagedIdentityError("aborted", "The token request was aborted by the caller.", {
        source: source.name,
        cause: transport.signal.reason,
      });
    }
    if (timeout.signal.aborted) {
      throw new ManagedIdentityError(
        "timeout",
        `The ${source.label} endpoint did not answer within ${transport.timeout} ms.`,
        { source: source.name },
      );
    }
    if (causes(error).some((cause) => cause.name === "CertificateMismatchError")) {
      throw new ManagedIdentityError(
        "certificate_mismatch",
        `The ${source.label} endpoint presented a TLS certificate whose SHA-1 thumbprint is not the pinned one; nothing was sent.`,
        { source: source.name },
      );
    }
    const reason =
      error instanceof Error ? sanitize(error.message, request.secrets) : "unknown failure";
    throw new ManagedIdentityError(
      "network_error",
      `Could not reach the ${source.label} endpoint (${reason}). Is this code running where that managed identity source is available?`,
      { source: source.name },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** The error and its `cause` chain (a caller's fetch may wrap what it caught). */
function causes(error: unknown): Error[] {
  const chain: Error[] = [];
  for (let current = error; current instanceof Error && chain.length < 5; current = current.cause) {
    chain.push(current);
  }
  return chain;
}

/** Parses a body as JSON, or undefined when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === "object"
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

function codeForStatus(status: number): ManagedIdentityErrorCode {
  if (status === 429) return "throttled";
  // 410 is IMDS being upgraded: temporary, like a 5xx.
  if (status === 410) return "service_unavailable";
  if (status >= 500) return "service_unavailable";
  if (status === 401 || status === 403) return "unauthorized_client";
  if (status === 404) return "not_found";
  return "invalid_request";
}

/**
 * Turns an error response into a {@link ManagedIdentityError}. Reads every back-end's error body:
 * OAuth's `{error, error_description}`, App Service's `{statusCode, message, correlationId}`, and
 * Service Fabric's and Cloud Shell's `{error: {code, message, correlationId}}`.
 */
export function responseError(
  response: HttpResponse,
  source: SourceDefinition,
  secrets: readonly string[],
): ManagedIdentityError {
  const body = parseJson(response.body);
  const nested = field(body, "error");
  const serviceCode = text(nested) ?? text(field(nested, "code"));
  const description =
    text(field(body, "error_description")) ??
    text(field(nested, "message")) ??
    text(field(body, "message"));
  const correlationId =
    text(field(nested, "correlationId")) ??
    text(field(body, "correlationId")) ??
    text(field(body, "correlation_id"));
  let code = codeForStatus(response.status);
  if (code !== "throttled" && code !== "service_unavailable" && serviceCode !== undefined) {
    // Own properties only: a service code such as "constructor" must not find Object's.
    const codes = source.errorCodes;
    const mapped = codes && Object.hasOwn(codes, serviceCode) ? codes[serviceCode] : undefined;
    // A back-end with its own code table maps every other code of its to invalid_request.
    code =
      mapped ??
      (OAUTH_ERROR_CODES.has(serviceCode)
        ? (serviceCode as ManagedIdentityErrorCode)
        : source.errorCodes
          ? "invalid_request"
          : code);
  }

  const detail =
    body === undefined
      ? response.body.length === 0
        ? " with an empty body"
        : " with a body that is not JSON"
      : description === undefined && serviceCode === undefined
        ? " with an error body of an unknown shape"
        : `: ${serviceCode ? `${sanitize(serviceCode, secrets)}: ` : ""}${sanitize(description ?? "no description", secrets)}`;
  return new ManagedIdentityError(
    code,
    `The ${source.label} endpoint returned HTTP ${response.status}${detail}`,
    {
      source: source.name,
      status: response.status,
      serviceCode: serviceCode === undefined ? undefined : sanitize(serviceCode, secrets),
      correlationId: correlationId === undefined ? undefined : sanitize(correlationId, secrets),
    },
  );
}
