import { atPath, type Backend, json, oauthError, readSelector } from "./shared.ts";

/** IMDS as VMs, scale sets, AKS nodes and Container Instances see it at 169.254.169.254. */
const PATH = "/metadata/identity/oauth2/token";
const API_VERSIONS = ["2018-02-01"];
// IMDS spells the resource-id selector msi_res_id; App Service's mi_res_id is ignored.
const SPELLINGS = { clientId: "client_id", objectId: "object_id", resourceId: "msi_res_id" };

export const imdsBackend: Backend = {
  source: "imds",
  path: PATH,
  httpsOnly: false,
  matches: (url) => atPath(url, PATH),
  error: (status, message, headers) => oauthError(status, "server_error", message, headers),
  async handle({ request, url, now, wrongIdentity }, services) {
    if (request.method !== "GET")
      return oauthError(405, "invalid_request", "Only GET is supported.");
    if (request.headers.get("metadata")?.toLowerCase() !== "true")
      return oauthError(400, "invalid_request", "Required metadata header not specified");
    // IMDS refuses anything that came through a proxy.
    if (request.headers.has("x-forwarded-for"))
      return oauthError(400, "invalid_request", "Request cannot contain X-Forwarded-For header");
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null)
      return oauthError(400, "invalid_request", "Required query variable 'api-version' is missing");
    if (!API_VERSIONS.includes(apiVersion))
      return oauthError(400, "invalid_request", `Invalid api-version '${apiVersion}'.`);
    const resource = url.searchParams.get("resource");
    if (!resource)
      return oauthError(400, "invalid_request", "Required query variable 'resource' is missing");
    const selector = readSelector(url.searchParams, SPELLINGS);
    if ("problem" in selector) return oauthError(400, "invalid_request", selector.problem);
    const identity = services.select(selector, wrongIdentity);
    if ("problem" in identity) return oauthError(400, "invalid_request", identity.problem);
    const { token, expiresIn } = await services.issue(identity, resource, now);
    return json(200, {
      access_token: token,
      client_id: identity.clientId,
      expires_in: String(expiresIn),
      expires_on: String(now + expiresIn),
      ext_expires_in: String(expiresIn),
      not_before: String(now),
      resource,
      token_type: "Bearer",
    });
  },
};
