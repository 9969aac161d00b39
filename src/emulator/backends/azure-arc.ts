import { atPath, type Backend, json, oauthError, readSelector } from "./shared.ts";

/** Azure Arc's Hybrid Instance Metadata Service (himds): IMDS's protocol plus a key-file challenge. */
const PATH = "/azure-arc/metadata/identity/oauth2/token";
// 2020-06-01 is current; agents still accept 2019-11-01, which older SDKs send.
const API_VERSIONS = ["2019-11-01", "2020-06-01"];
// Arc spells the resource-id selector msi_res_id and silently ignores mi_res_id.
const SPELLINGS = { clientId: "client_id", objectId: "object_id", resourceId: "msi_res_id" };
const BASIC = /^Basic (.+)$/;

function randomText(bytes: number): string {
  let text = "";
  for (const byte of crypto.getRandomValues(new Uint8Array(bytes)))
    text += byte.toString(16).padStart(2, "0");
  return text;
}

export const azureArcBackend: Backend = {
  source: "azure-arc",
  path: PATH,
  httpsOnly: false,
  matches: (url) => atPath(url, PATH),
  error: (status, message, headers) => oauthError(status, "server_error", message, headers),
  async handle({ request, url, now, wrongIdentity }, services) {
    if (request.method !== "GET")
      return oauthError(405, "invalid_request", "Only GET is supported.");
    if (request.headers.get("metadata")?.toLowerCase() !== "true")
      return oauthError(400, "invalid_request", "Required metadata header not specified");
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null || !API_VERSIONS.includes(apiVersion))
      return oauthError(400, "invalid_request", `Invalid api-version '${apiVersion ?? ""}'.`);
    const resource = url.searchParams.get("resource");
    if (!resource)
      return oauthError(400, "invalid_request", "Required query variable 'resource' is missing");
    const presented = BASIC.exec(request.headers.get("authorization") ?? "")?.[1];
    if (presented === undefined || !services.arcSecrets.has(presented)) {
      if (!services.arcKeys)
        return oauthError(
          500,
          "server_error",
          "This emulator has no folder for Azure Arc key files (give it one to emulate Arc).",
        );
      // The challenge: a fresh secret in a file only a local administrator could read.
      const secret = randomText(32);
      const path = await services.arcKeys.write(`${randomText(16)}.key`, secret);
      services.arcSecrets.add(secret);
      return oauthError(401, "unauthorized", "Authorization required.", {
        "www-authenticate": `Basic realm=${path}`,
      });
    }
    const selector = readSelector(url.searchParams, SPELLINGS);
    if ("problem" in selector) return oauthError(400, "invalid_request", selector.problem);
    const identity = services.select(selector, wrongIdentity);
    if ("problem" in identity) return oauthError(400, "invalid_request", identity.problem);
    const { token, expiresIn } = await services.issue(identity, resource, now);
    // The echo of the identity that answered lets clients catch an agent that ignored the selector.
    return json(200, {
      access_token: token,
      expires_in: String(expiresIn),
      expires_on: String(now + expiresIn),
      not_before: String(now),
      resource,
      token_type: "Bearer",
      client_id: identity.clientId,
      object_id: identity.objectId,
      msi_res_id: identity.resourceId,
    });
  },
};
