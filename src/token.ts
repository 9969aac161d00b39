import * as v from "valibot";

/** A token as the client keeps it. Times are epoch seconds. */
export interface TokenRecord {
  /** The access token: send it as `Authorization: <tokenType> <accessToken>`. */
  accessToken: string;
  /** The token type, normally `Bearer`. */
  tokenType: string;
  /** When the token expires, in epoch seconds. */
  expiresOn: number;
  /** When to fetch a fresh token in the background, in epoch seconds. */
  refreshOn?: number | undefined;
  /** The resource the token is for. */
  resource: string;
}

/** Tokens with less than this many seconds left are never served from the cache. */
export const EXPIRY_MARGIN_SECONDS = 300;
/** Lifetimes at least this long get a `refreshOn` at half the lifetime. */
const HALF_LIFE_REFRESH_THRESHOLD = 7200;

const Numeric = v.union([v.number(), v.string()]);
/** 9999-12-31T23:59:59Z: anything later is not a time a token service meant. */
const MAX_SECONDS = 253_402_300_799;

/** The fields every back-end's token response shares (each sends a subset). */
const TokenResponseSchema = v.looseObject({
  // Printable ASCII without spaces: a token goes into a header, so nothing else is a token.
  access_token: v.pipe(v.string(), v.regex(/^[\x21-\x7e]+$/)),
  token_type: v.optional(v.pipe(v.string(), v.regex(/^[\x21-\x7e]+$/))),
  expires_on: v.optional(v.unknown()),
  expires_in: v.optional(v.unknown()),
  refresh_in: v.optional(v.unknown()),
});

// Minutes and seconds are 00–59 in the patterns themselves; days and hours are checked below.
const LEGACY_DATE =
  /^(\d{1,2})\/(\d{1,2})\/(\d{4}) (\d{1,2}):([0-5]\d):([0-5]\d)(?: ?([AP]M))? ([+-])(\d{2}):?(\d{2})$/i;
const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):([0-5]\d):([0-5]\d)(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/i;

function seconds(value: unknown): number | undefined {
  const parsed = v.safeParse(Numeric, value);
  if (!parsed.success) return undefined;
  const raw = parsed.output;
  if (typeof raw === "string" && !/^\s*\d+(\.\d+)?\s*$/.test(raw)) return undefined;
  const number = Number(raw);
  return Number.isFinite(number) && number >= 0 && number <= MAX_SECONDS
    ? Math.floor(number)
    : undefined;
}

/**
 * Reads an `expires_on` value in any format the back-ends have used: epoch seconds as a number or
 * numeric string, ISO 8601 (with or without a fraction; no zone means UTC), or App Service's 2017
 * form `MM/dd/yyyy HH:mm:ss +00:00` with an optional AM/PM. Returns epoch seconds, or undefined.
 */
export function parseExpiresOn(value: unknown): number | undefined {
  const epoch = seconds(value);
  if (epoch !== undefined) return epoch;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  const iso = ISO_DATE.exec(text);
  if (iso) {
    const [, year, month, day, hour, minute, second, , zone] = iso;
    // Date.parse rolls 2024-02-30 over into March and accepts 24:00: refuse what is not a date.
    const check = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
    if (
      Number(hour) > 23 ||
      check.getUTCMonth() !== Number(month) - 1 ||
      check.getUTCDate() !== Number(day)
    ) {
      return undefined;
    }
    const offset = zone && zone.toUpperCase() !== "Z" ? zone : "Z";
    const ms = Date.parse(
      `${year}-${month}-${day}T${hour}:${minute}:${second}${normalizeOffset(offset)}`,
    );
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
  }
  const legacy = LEGACY_DATE.exec(text);
  if (legacy) {
    const [
      ,
      month,
      day,
      year,
      hourText,
      minute,
      second,
      meridiem,
      sign,
      offsetHours,
      offsetMinutes,
    ] = legacy;
    let hour = Number(hourText);
    if (meridiem) {
      if (hour < 1 || hour > 12) return undefined;
      hour = (hour % 12) + (meridiem.toUpperCase() === "PM" ? 12 : 0);
    }
    const utc = Date.UTC(
      Number(year),
      Number(month) - 1,
      Number(day),
      hour,
      Number(minute),
      Number(second),
    );
    // Date.UTC rolls 13/45/2020 over into 2021: reject what does not round-trip.
    const check = new Date(utc);
    if (
      check.getUTCMonth() !== Number(month) - 1 ||
      check.getUTCDate() !== Number(day) ||
      hour > 23
    ) {
      return undefined;
    }
    const offset =
      (Number(offsetHours) * 60 + Number(offsetMinutes)) * 60 * (sign === "-" ? -1 : 1);
    return Math.floor(utc / 1000) - offset;
  }
  return undefined;
}

function normalizeOffset(offset: string): string {
  return offset === "Z" || offset.includes(":")
    ? offset
    : `${offset.slice(0, 3)}:${offset.slice(3)}`;
}

/** Why a token response could not be used; becomes an `invalid_response` error. */
export class TokenResponseProblem {
  constructor(readonly reason: string) {}
}

/**
 * Reads a token response body. `expires_on` wins over `expires_in`; `refreshOn` comes from
 * `refresh_in`, else half the lifetime when that is at least two hours.
 */
export function parseTokenResponse(
  body: unknown,
  resource: string,
  now: number,
  options: { requireTokenType?: boolean } = {},
): TokenRecord | TokenResponseProblem {
  const result = v.safeParse(TokenResponseSchema, body);
  if (!result.success) {
    const key = result.issues[0]?.path?.[0]?.key;
    return new TokenResponseProblem(
      key === "access_token" || key === undefined
        ? "the response has no usable access_token"
        : `the response's ${String(key)} is not valid`,
    );
  }
  const response = result.output;
  if (options.requireTokenType && !response.token_type) {
    return new TokenResponseProblem("the response has no token_type");
  }
  const expiresIn = seconds(response.expires_in);
  const expiresOn =
    parseExpiresOn(response.expires_on) ??
    (expiresIn === undefined || now + expiresIn > MAX_SECONDS ? undefined : now + expiresIn);
  if (expiresOn === undefined) {
    return new TokenResponseProblem("the response has no readable expires_on or expires_in");
  }
  const record: TokenRecord = {
    accessToken: response.access_token,
    tokenType: response.token_type ?? "Bearer",
    expiresOn,
    resource,
  };
  const refreshIn = seconds(response.refresh_in);
  const lifetime = expiresOn - now;
  if (refreshIn !== undefined && refreshIn > 0 && refreshIn < lifetime) {
    record.refreshOn = now + refreshIn;
  } else if (lifetime >= HALF_LIFE_REFRESH_THRESHOLD) {
    record.refreshOn = now + Math.floor(lifetime / 2);
  }
  return record;
}

/** Whether a cached token may still be served at `now` (by default, more than 5 minutes left). */
export function isServable(
  token: TokenRecord,
  now: number,
  margin: number = EXPIRY_MARGIN_SECONDS,
): boolean {
  return token.expiresOn - now > margin;
}
