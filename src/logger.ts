import type { ManagedIdentityErrorCode } from "./errors.ts";
import type { ManagedIdentitySource } from "./sources/types.ts";

/** What happened. */
export type ManagedIdentityLogEventType =
  | "cache_hit"
  | "cache_miss"
  | "request"
  | "retry"
  | "throttled"
  | "refresh"
  | "refresh_failed"
  | "storage_error";

/**
 * One structured log event. It never holds a token, a secret header value, a key or an
 * assertion: only what happened, where, and how long it took.
 */
export interface ManagedIdentityLogEvent {
  type: ManagedIdentityLogEventType;
  source: ManagedIdentitySource;
  /** The resource the token is for (cache, refresh events). */
  resource?: string;
  /** 1 for the first attempt of a request, 2 for the first retry… */
  attempt?: number;
  /** HTTP status, when there was a response. */
  status?: number;
  /** The error code, for failures. */
  code?: ManagedIdentityErrorCode;
  /** Wait before the next attempt, or how long a throttled answer is remembered. */
  delayMs?: number;
  /** How long the operation took. */
  durationMs?: number;
}

/** Receives log events; it is called synchronously and anything it throws is ignored. */
export type ManagedIdentityLogger = (event: ManagedIdentityLogEvent) => void;
