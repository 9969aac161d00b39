import { describe, expect, it } from "vitest";
import {
  isServable,
  parseExpiresOn,
  parseTokenResponse,
  TokenResponseProblem,
} from "../src/token.ts";

const AT = Date.UTC(2026, 5, 20, 14, 57, 58) / 1000; // 06/20/2026 14:57:58 UTC

describe("parseExpiresOn", () => {
  it.each([
    [AT, AT],
    [String(AT), AT],
    [` ${AT} `, AT],
    ["2026-06-20T14:57:58Z", AT],
    ["2026-06-20T14:57:58.1234567Z", AT],
    ["2026-06-20T14:57:58+00:00", AT],
    ["2026-06-20T16:57:58+02:00", AT],
    ["2026-06-20T14:57:58", AT],
    ["06/20/2026 14:57:58 +00:00", AT],
    ["6/20/2026 2:57:58 PM +00:00", AT],
    ["06/20/2026 02:57:58 PM +00:00", AT],
    ["06/20/2026 12:00:00 AM +00:00", Date.UTC(2026, 5, 20, 0, 0, 0) / 1000],
    ["06/20/2026 12:00:00 PM +00:00", Date.UTC(2026, 5, 20, 12, 0, 0) / 1000],
    ["06/20/2026 16:57:58 +02:00", AT],
  ])("reads %j", (input, expected) => {
    expect(parseExpiresOn(input)).toBe(expected);
  });

  it.each([
    "",
    "soon",
    "-5",
    "1e10",
    "253402300800",
    9007199254740992,
    "13/45/2026 10:00:00 +00:00",
    "06/20/2026 13:00:00 PM +00:00",
    "06/20/2026 25:00:00 +00:00",
    "2026-13-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T10:60:00Z",
    "01/01/2024 10:75:99 +00:00",
    null,
    {},
    Number.NaN,
    Number.POSITIVE_INFINITY,
    -1,
  ])("refuses %j", (input) => {
    expect(parseExpiresOn(input)).toBeUndefined();
  });
});

describe("parseTokenResponse", () => {
  const now = 1_800_000_000;

  it("prefers expires_on and defaults token_type to Bearer", () => {
    expect(
      parseTokenResponse({ access_token: "t", expires_on: now + 100, expires_in: 5 }, "r", now),
    ).toEqual({
      accessToken: "t",
      tokenType: "Bearer",
      expiresOn: now + 100,
      resource: "r",
    });
  });

  it("falls back to expires_in, as a number or a numeric string", () => {
    expect(parseTokenResponse({ access_token: "t", expires_in: 600 }, "r", now)).toMatchObject({
      expiresOn: now + 600,
    });
    expect(
      parseTokenResponse({ access_token: "t", expires_on: "garbage", expires_in: "600" }, "r", now),
    ).toMatchObject({
      expiresOn: now + 600,
    });
  });

  it("sets refreshOn from refresh_in, else at half a lifetime of two hours or more", () => {
    expect(
      parseTokenResponse({ access_token: "t", expires_in: 86400, refresh_in: 3600 }, "r", now),
    ).toMatchObject({
      refreshOn: now + 3600,
    });
    expect(parseTokenResponse({ access_token: "t", expires_in: 7200 }, "r", now)).toMatchObject({
      refreshOn: now + 3600,
    });
    expect(
      parseTokenResponse({ access_token: "t", expires_in: 7199 }, "r", now),
    ).not.toHaveProperty("refreshOn");
  });

  it.each([
    [{ expires_in: 60 }, "no usable access_token"],
    [{ access_token: "", expires_in: 60 }, "no usable access_token"],
    [{ access_token: "has space", expires_in: 60 }, "no usable access_token"],
    [{ access_token: "t\r\nX-Evil: 1", expires_in: 60 }, "no usable access_token"],
    [{ access_token: 5, expires_in: 60 }, "no usable access_token"],
    [{ access_token: "t" }, "no readable expires_on or expires_in"],
    [{ access_token: "t", expires_on: "never" }, "no readable expires_on or expires_in"],
    [{ access_token: "t", expires_in: 60, token_type: 3 }, "token_type is not valid"],
    [null, "no usable access_token"],
    ["text", "no usable access_token"],
  ])("refuses %j", (body, reason) => {
    const result = parseTokenResponse(body, "r", now);
    expect(result).toBeInstanceOf(TokenResponseProblem);
    expect((result as TokenResponseProblem).reason).toContain(reason);
  });

  it("can require token_type", () => {
    expect(
      parseTokenResponse({ access_token: "t", expires_in: 60 }, "r", now, {
        requireTokenType: true,
      }),
    ).toBeInstanceOf(TokenResponseProblem);
  });
});

describe("isServable", () => {
  it("serves only while more than five minutes remain", () => {
    const token = { accessToken: "t", tokenType: "Bearer", expiresOn: 1000, resource: "r" };
    expect(isServable(token, 1000 - 301)).toBe(true);
    expect(isServable(token, 1000 - 300)).toBe(false);
  });
});
