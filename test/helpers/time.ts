import { vi } from "vitest";
import type { ManagedIdentityLogEvent } from "../../src/logger.ts";

/** Fakes the clock and timers, but not setImmediate: real sockets still make progress. */
export function fakeTime(at = "2026-01-01T00:00:00Z"): void {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  vi.setSystemTime(new Date(at));
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Settles `promise` under fake time: whenever the client announces a retry (through its logger),
 * the fake clock jumps by exactly that delay. Nothing sleeps. Returns the promise's outcome.
 */
export async function driveRetries<T>(
  promise: Promise<T>,
  events: ManagedIdentityLogEvent[],
): Promise<T> {
  let settled = false;
  promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  let seen = 0;
  while (!settled) {
    await tick();
    const retries = events.filter((event) => event.type === "retry");
    const next = retries[seen];
    if (next) {
      seen += 1;
      await vi.advanceTimersByTimeAsync(next.delayMs ?? 0);
    }
  }
  return promise;
}

/** Lets pending I/O and promise callbacks run (real time, no timers). */
export async function flush(rounds = 20): Promise<void> {
  for (let index = 0; index < rounds; index++) await tick();
}
