/** IMDS's limits on callers (emulator option `imdsLimits`, CLI `--imds-limits`). */
export interface ImdsLimits {
  /** Requests answered at once; one more is refused. @default 5 */
  concurrent?: number | undefined;
  /** Requests admitted in any one second; one more is refused. @default 20 */
  perSecond?: number | undefined;
}

/** What PROTOCOL.md says IMDS allows: 5 requests at once and about 20 per second. */
export const IMDS_LIMITS: { readonly concurrent: number; readonly perSecond: number } = {
  concurrent: 5,
  perSecond: 20,
};

/** Admits requests within the limits; counts only the requests it admitted. */
export interface RequestLimiter {
  /** Admits a request at emulator time `now` (ms): undefined, or `Retry-After` seconds. */
  admit(now: number): number | undefined;
  /** An admitted request was answered. */
  release(): void;
}

function limit(name: string, value: number | undefined, fallback: number): number {
  const number = value ?? fallback;
  if (!(Number.isInteger(number) && number >= 1) && number !== Number.POSITIVE_INFINITY)
    throw new RangeError(`imdsLimits.${name} needs a whole number of at least 1, got ${value}.`);
  return number;
}

/** The limiter for an `imdsLimits` option; undefined when the option leaves IMDS unlimited. */
export function createLimiter(
  option: ImdsLimits | boolean | undefined,
): RequestLimiter | undefined {
  if (!option) return undefined;
  const given = option === true ? {} : option;
  const concurrent = limit("concurrent", given.concurrent, IMDS_LIMITS.concurrent);
  const perSecond = limit("perSecond", given.perSecond, IMDS_LIMITS.perSecond);
  let inFlight = 0;
  // When each request admitted in the last second arrived, oldest first.
  const admitted: number[] = [];
  return {
    admit(now) {
      while (admitted.length > 0 && now - (admitted[0] ?? now) >= 1000) admitted.shift();
      if (inFlight >= concurrent) return 1;
      if (admitted.length >= perSecond)
        return Math.max(1, Math.ceil(((admitted[0] ?? now) + 1000 - now) / 1000));
      inFlight++;
      admitted.push(now);
      return undefined;
    },
    release() {
      inFlight--;
    },
  };
}
