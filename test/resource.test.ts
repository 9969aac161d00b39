import { describe, expect, it } from "vitest";
import { ManagedIdentityError } from "../src/index.ts";
import { normalizeResource } from "../src/resource.ts";

describe("normalizeResource", () => {
  it.each([
    ["https://management.azure.com", "https://management.azure.com"],
    ["https://management.azure.com/", "https://management.azure.com/"],
    ["https://management.azure.com/.default", "https://management.azure.com"],
    ["https://management.azure.com//.default", "https://management.azure.com/"],
    ["  https://vault.azure.net  ", "https://vault.azure.net"],
    ["api://my-app/.default", "api://my-app"],
  ])("%j becomes %j", (input, expected) => {
    expect(normalizeResource(input)).toBe(expected);
  });

  it.each([
    ["", "empty"],
    ["   ", "empty"],
    ["/.default", "empty"],
    ["https://a https://b", "single resource"],
    ["https://a\thttps://b", "single resource"],
    [undefined, "got undefined"],
    [null, "got null"],
    [["https://a"], "got object"],
  ])("refuses %j", (input, mention) => {
    let caught: unknown;
    try {
      normalizeResource(input);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ManagedIdentityError);
    expect(caught).toMatchObject({ code: "invalid_resource" });
    expect((caught as Error).message).toContain(mention);
  });
});
