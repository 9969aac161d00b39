import { atPath, type Backend, json, readSelector, statusCodeError } from "./shared.ts";

/** App Service, Functions, Container Apps and Automation: IDENTITY_ENDPOINT + IDENTITY_HEADER. */
const PATH = "/app-service/msi/token";
const API_VERSIONS = ["2019-08-01"];
const SECRET_HEADER = "x-identity-header";
// App Service spells the resource-id selector mi_res_id; IMDS's msi_res_id is ignored.
const SPELLINGS = { clientId: "client_id", objectId: "object_id", resourceId: "mi_res_id" };

const error = statusCodeError;

export const appServiceBackend: Backend = {
  source: "app-service",
  path: PATH,
  httpsOnly: false,
  matches: (url) => atPath(url, PATH),
  error,
  async handle({ request, url, now, wrongIdentity }, services) {
    if (request.method !== "GET") return error(405, "Only GET is supported.");
    const secret = request.headers.get(SECRET_HEADER);
    if (secret === null) return error(401, "The X-IDENTITY-HEADER header is missing.");
    if (secret !== services.secrets.appService)
      return error(401, "The X-IDENTITY-HEADER header does not match IDENTITY_HEADER.");
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null || !API_VERSIONS.includes(apiVersion))
      return error(400, `Unsupported api-version '${apiVersion ?? ""}'; use 2019-08-01.`);
    const resource = url.searchParams.get("resource");
    if (!resource) return error(400, "The resource parameter is missing.");
    const selector = readSelector(url.searchParams, SPELLINGS);
    if ("problem" in selector) return error(400, selector.problem);
    const identity = services.select(selector, wrongIdentity);
    if ("problem" in identity) return error(400, identity.problem);
    const { token, expiresIn } = await services.issue(identity, resource, now);
    // App Service sends expires_on only, as a string of epoch seconds.
    return json(200, {
      access_token: token,
      expires_on: String(now + expiresIn),
      resource,
      token_type: "Bearer",
      client_id: identity.clientId,
    });
  },
};
