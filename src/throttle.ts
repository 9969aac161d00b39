import * as v from "valibot";
import { redactSecrets } from "./errors.ts";
import { sha256Hex } from "./hash.ts";
import { type HttpResponse, requestBody, requestUrl } from "./http.ts";
import { type KeyValueStorage, withStorageTimeout } from "./memory-storage.ts";
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from "./retry.ts";
import type { TokenRequest } from "./sources/types.ts";

/** Prefix of every throttling entry, so a shared storage can be inspected or cleared. */
export const THROTTLE_KEY_PREFIX = "managed-identity:throttle:v1:";
/** How long a throttling answer without a readable `Retry-After` is remembered. */
const DEFAULT_REMEMBER_MS = 5000;

const Remembered = v.object({
  status: v.number(),
  body: v.string(),
  retryAfter: v.optional(v.string()),
  until: v.number(),
});

/**
 * The body with every secret removed. A JSON body is redacted value by value and re-serialised,
 * so a secret the server wrote in another JSON spelling (`\u002B` for `+`) is caught too.
 */
function redactBody(body: string, secrets: readonly string[]): string {
  if (secrets.length === 0) return body;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return redactSecrets(body, secrets);
  }
  const redact = (value: unknown): unknown => {
    if (typeof value === "string") return redactSecrets(value, secrets);
    if (Array.isArray(value)) return value.map(redact);
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([key, item]) => [redactSecrets(key, secrets), redact(item)]),
      );
    }
    return value;
  };
  return JSON.stringify(redact(parsed));
}

/** Whether an answer is one the endpoint asked us not to repeat at once. */
function isThrottling(response: HttpResponse): boolean {
  if (response.status >= 200 && response.status < 300) return false;
  // Arc's challenge is a 401 with WWW-Authenticate: it must reach the challenge step every time.
  if (response.status === 401 && response.headers.has("www-authenticate")) return false;
  return response.status === 429 || response.status >= 500 || response.headers.has("retry-after");
}

/**
 * The seed library's `http_cache`: an answer of 429, 5xx or with `Retry-After` is remembered for
 * `Retry-After` (5 s when absent or unreadable, at most an hour), and the identical request (method,
 * URL with its query, body; headers do not count) gets it back without touching the network.
 * Successful answers and tokens are never stored here.
 */
export class ThrottleCache {
  readonly #storage: KeyValueStorage;
  readonly #onError: () => void;

  /** `onError` hears of a storage operation that failed or took too long (it never throws). */
  constructor(storage: KeyValueStorage, onError: () => void = () => {}) {
    this.#storage = storage;
    this.#onError = onError;
  }

  async #key(request: TokenRequest): Promise<string> {
    return (
      THROTTLE_KEY_PREFIX +
      (await sha256Hex(`${request.method} ${requestUrl(request)}\n${requestBody(request) ?? ""}`))
    );
  }

  /** The remembered answer to this request, when one is still in force. */
  async recall(request: TokenRequest, nowMs: number): Promise<HttpResponse | undefined> {
    let stored: unknown;
    const key = await this.#key(request);
    try {
      stored = await withStorageTimeout(() => this.#storage.getItem(key));
    } catch {
      this.#onError();
      return undefined;
    }
    const parsed = v.safeParse(Remembered, stored);
    if (!parsed.success) return undefined;
    const { status, body, retryAfter, until } = parsed.output;
    if (until <= nowMs) {
      await withStorageTimeout(() => this.#storage.removeItem(key)).catch(this.#onError);
      return undefined;
    }
    const headers = new Headers({ "content-type": "application/json" });
    if (retryAfter !== undefined) headers.set("retry-after", retryAfter);
    return { status, headers, body };
  }

  /** Remembers a throttling answer; returns for how many ms, or undefined when it is not one. */
  async remember(
    request: TokenRequest,
    response: HttpResponse,
    nowMs: number,
  ): Promise<number | undefined> {
    if (!isThrottling(response)) return undefined;
    const retryAfter = response.headers.get("retry-after");
    const forMs = Math.min(
      parseRetryAfter(retryAfter, nowMs) || DEFAULT_REMEMBER_MS,
      MAX_RETRY_AFTER_MS,
    );
    const body = redactBody(response.body, request.secrets);
    const entry: v.InferOutput<typeof Remembered> = {
      status: response.status,
      body,
      until: nowMs + forMs,
    };
    if (retryAfter !== null) entry.retryAfter = retryAfter;
    try {
      const key = await this.#key(request);
      await withStorageTimeout(() =>
        this.#storage.setItem(key, entry, { ttl: Math.ceil(forMs / 1000) }),
      );
    } catch {
      // Forgetting a throttling answer only costs one more request.
      this.#onError();
    }
    return forMs;
  }
}
