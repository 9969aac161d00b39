import { describe, expect, it } from "vitest";
import { isManagedIdentityError, ManagedIdentityError, sanitize } from "../src/errors.ts";

describe("ManagedIdentityError", () => {
  it("carries a stable code and its details, and serialises without cause", () => {
    const error = new ManagedIdentityError("throttled", "slow down", {
      source: "imds",
      status: 429,
      serviceCode: "TooMany",
      correlationId: "c-1",
      cause: new Error("inner"),
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("ManagedIdentityError");
    expect(String(error)).toBe("ManagedIdentityError: slow down");
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      name: "ManagedIdentityError",
      code: "throttled",
      message: "slow down",
      source: "imds",
      status: 429,
      serviceCode: "TooMany",
      correlationId: "c-1",
    });
    expect((error.cause as Error).message).toBe("inner");
  });

  it("is recognised across copies by name and code", () => {
    const foreign = Object.assign(new Error("x"), {
      name: "ManagedIdentityError",
      code: "timeout",
    });
    expect(isManagedIdentityError(foreign)).toBe(true);
    expect(isManagedIdentityError(new Error("x"))).toBe(false);
  });
});

describe("sanitize", () => {
  it("removes secrets, JWT-shaped strings and control characters, and caps the length", () => {
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    expect(sanitize(`secret s3cr3t and ${jwt}\r\nX`, ["s3cr3t"])).toBe(
      "secret [redacted] and [redacted] X",
    );
    expect(sanitize("x".repeat(1000)).length).toBeLessThanOrEqual(301);
  });
});
