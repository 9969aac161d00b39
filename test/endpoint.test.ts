import { describe, expect, it } from "vitest";
import { assertEndpointAllowed } from "../src/endpoint.ts";
import type { TokenRequest } from "../src/sources/types.ts";

const request = (
  url: string,
  endpointKind: TokenRequest["endpointKind"] = "local",
): TokenRequest => ({
  method: "GET",
  url,
  headers: {},
  endpointKind,
  secrets: [],
});

describe("assertEndpointAllowed", () => {
  it.each([
    "http://169.254.169.254/metadata/identity/oauth2/token",
    "http://127.0.0.1:41741/msi/token",
    "http://127.8.9.10/x",
    "http://localhost:50342/oauth2/token",
    "http://[::1]:8080/x",
    "https://LOCALHOST/x",
    // URL normalisation turns these spellings into 127.0.0.1: still loopback.
    "http://0x7f.1/x",
    "http://2130706433/x",
  ])("allows the local endpoint %s", (url) => {
    expect(() => assertEndpointAllowed(request(url), "imds", [])).not.toThrow();
  });

  it.each([
    ["http://127.0.0.1@evil.example/x", "user name"],
    ["http://user:pw@127.0.0.1/x", "user name"],
    ["http://169.254.169.254.evil.example/x", "neither loopback nor link-local"],
    ["http://127.0.0.1.nip.io/x", "neither loopback nor link-local"],
    ["http://10.0.0.1/x", "neither loopback nor link-local"],
    ["http://example.com/x", "neither loopback nor link-local"],
    ["http://[::ffff:8.8.8.8]/x", "neither loopback nor link-local"],
    ["ftp://127.0.0.1/x", "http or https"],
    ["file:///etc/passwd", "http or https"],
    ["not a url", "not a valid URL"],
  ])("refuses %s", (url, why) => {
    expect(() => assertEndpointAllowed(request(url), "app-service", [])).toThrow(
      expect.objectContaining({
        code: "endpoint_not_allowed",
        source: "app-service",
        message: expect.stringContaining(why),
      }),
    );
  });

  it("allows a host listed in allowedHosts, case-insensitively", () => {
    expect(() =>
      assertEndpointAllowed(request("http://emulator:8080/x"), "imds", ["Emulator"]),
    ).not.toThrow();
    expect(() =>
      assertEndpointAllowed(request("http://other:8080/x"), "imds", ["emulator"]),
    ).toThrow();
  });

  it("lets a pinned https endpoint be any host (the pin is the trust anchor), but never http", () => {
    const pinned = {
      ...request("https://10.0.0.4:2377/metadata/identity/oauth2/token"),
      pinnedThumbprint: "a".repeat(40),
    };
    expect(() => assertEndpointAllowed(pinned, "service-fabric", [])).not.toThrow();
    expect(() =>
      assertEndpointAllowed({ ...pinned, url: "http://10.0.0.4:2377/x" }, "service-fabric", []),
    ).toThrow(/pinned to a certificate and must use https/);
  });

  it("requires https for a token authority, wherever it is", () => {
    expect(() =>
      assertEndpointAllowed(
        request("https://login.microsoftonline.com/t", "authority"),
        "workload-identity",
        [],
      ),
    ).not.toThrow();
    expect(() =>
      assertEndpointAllowed(request("http://127.0.0.1/t", "authority"), "workload-identity", []),
    ).toThrow(/must use https/);
  });
});
