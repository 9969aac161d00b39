import { atPath, type Backend, json } from "./shared.ts";

/** Service Fabric's managed identity token service: https with a self-signed certificate. */
const PATH = "/service-fabric/metadata/identity/oauth2/token";
const API_VERSIONS = ["2019-07-01-preview"];
const SECRET_HEADER = "secret";

function error(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, { error: { correlationId: crypto.randomUUID(), code, message } }, headers);
}

export const serviceFabricBackend: Backend = {
  source: "service-fabric",
  path: PATH,
  httpsOnly: true,
  matches: (url) => atPath(url, PATH),
  error: (status, message, headers) => error(status, "InternalServerError", message, headers),
  async handle({ request, url, now, wrongIdentity }, services) {
    if (request.method !== "GET") return error(405, "MethodNotAllowed", "Only GET is supported.");
    const secret = request.headers.get(SECRET_HEADER);
    if (secret === null)
      return error(401, "SecretHeaderNotFound", "Secret is not found in the request headers.");
    if (secret !== services.secrets.serviceFabric)
      return error(401, "InvalidSecret", "The secret header does not match IDENTITY_HEADER.");
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null || !API_VERSIONS.includes(apiVersion))
      return error(
        400,
        "InvalidApiVersion",
        `Unsupported api-version '${apiVersion ?? ""}'; use 2019-07-01-preview.`,
      );
    const resource = url.searchParams.get("resource");
    if (!resource)
      return error(400, "ArgumentNullOrEmpty", "Value cannot be null. Parameter: resource");
    // The cluster's application manifest picks the identity; a request cannot select one.
    const identity = services.select({}, wrongIdentity);
    if ("problem" in identity) return error(404, "ManagedIdentityNotFound", identity.problem);
    const { token, expiresIn } = await services.issue(identity, resource, now);
    return json(200, {
      access_token: token,
      expires_on: now + expiresIn,
      token_type: "Bearer",
      resource,
    });
  },
};
