/** How retries are tuned; `false` turns them off. The defaults follow each back-end's guidance. */
export interface RetryOptions {
  /**
   * Retries after the first attempt.
   * @default 3
   */
  maxRetries?: number;
  /**
   * The base delay in ms: IMDS doubles it per retry (1 s, 2 s, 4 s); other back-ends wait the
   * response's `Retry-After`, but never less than this.
   * @default 1000
   */
  delayMs?: number;
  /**
   * IMDS answering 410 first (it is being upgraded): the delay between retries, in ms.
   * @default 10000
   */
  goneDelayMs?: number;
  /**
   * IMDS answering 410 first: how many retries.
   * @default 7
   */
  goneMaxRetries?: number;
}

/** A back-end's retry rules: which statuses are worth another attempt, and how long to wait. */
export interface RetryPolicy {
  /** Whether an answer with this status may succeed on another attempt. */
  retries(status: number): boolean;
  /**
   * The wait before retry number `retry` (1-based), or undefined when no retry is left.
   * `firstStatus` is the status of the first failed attempt; `retryAfterMs` the response's hint.
   */
  delay(
    retry: number,
    firstStatus: number,
    retryAfterMs: number | undefined,
    options: RetryOptions,
  ): number | undefined;
}

const DEFAULT_MAX_RETRIES = 3;
const DEFAULT_DELAY_MS = 1000;

/** Azure's IMDS guidance: exponential back-off, and a long, patient one through a 410 upgrade. */
export const imdsRetry: RetryPolicy = {
  retries: (status) =>
    status === 404 || status === 408 || status === 410 || status === 429 || status >= 500,
  delay(retry, firstStatus, _retryAfterMs, options) {
    if (firstStatus === 410) {
      return retry <= (options.goneMaxRetries ?? 7) ? (options.goneDelayMs ?? 10_000) : undefined;
    }
    if (retry > (options.maxRetries ?? DEFAULT_MAX_RETRIES)) return undefined;
    return (options.delayMs ?? DEFAULT_DELAY_MS) * 2 ** (retry - 1);
  },
};

function retryAfterPolicy(statuses: readonly number[]): RetryPolicy {
  return {
    retries: (status) => statuses.includes(status),
    delay(retry, _firstStatus, retryAfterMs, options) {
      if (retry > (options.maxRetries ?? DEFAULT_MAX_RETRIES)) return undefined;
      return Math.max(retryAfterMs ?? 0, options.delayMs ?? DEFAULT_DELAY_MS);
    },
  };
}

/** App Service, Arc, Machine Learning, Cloud Shell, workload identity (MSAL's default policy). */
export const defaultRetry: RetryPolicy = retryAfterPolicy([404, 408, 429, 500, 503, 504]);

/** Service Fabric: throttling and unavailability only; a 404 there is final. */
export const serviceFabricRetry: RetryPolicy = retryAfterPolicy([429, 503]);

/** The longest `Retry-After` honoured: one hour. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** Reads `Retry-After` (seconds, or an HTTP date) into milliseconds, capped at one hour. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (!Number.isFinite(at) || !/[a-z]/i.test(text)) return undefined;
    ms = Math.max(0, at - nowMs);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}
