import { describe, expect, it } from "vitest";
import { createWebPlatform } from "../../src/platform/web.ts";
import { imds } from "../../src/sources/imds.ts";
import { sourceConformance, sourceContext } from "./conformance.ts";

sourceConformance({
  source: "imds",
  // A trailing slash on the override host must not produce a double slash in the path.
  env: (url) => ({ AZURE_POD_IDENTITY_AUTHORITY_HOST: `${url}//` }),
  path: "/metadata/identity/oauth2/token",
  method: "GET",
  parameters: { "api-version": "2018-02-01" },
  headers: { metadata: "true" },
  idParameters: { clientId: "client_id", objectId: "object_id", resourceId: "msi_res_id" },
  success: (token, expiresOn) => ({
    access_token: token,
    expires_in: String(expiresOn - Math.floor(Date.now() / 1000)),
    expires_on: String(expiresOn),
    ext_expires_in: "86399",
    not_before: String(expiresOn - 3600),
    resource: "https://vault.azure.net",
    token_type: "Bearer",
    client_id: "11111111-2222-3333-4444-555555555555",
  }),
  error: {
    status: 400,
    body: { error: "invalid_request", error_description: "Identity not found" },
    code: "invalid_request",
    serviceCode: "invalid_request",
  },
});

describe("imds", () => {
  it("defaults to the link-local IMDS address", async () => {
    const request = await imds.createRequest(sourceContext({}));
    expect(request.url).toBe("http://169.254.169.254/metadata/identity/oauth2/token");
  });

  it("is the default: detected with no variables at all", () => {
    expect(imds.detect(() => undefined, createWebPlatform(), { kind: "systemAssigned" })).toBe(
      true,
    );
  });
});
