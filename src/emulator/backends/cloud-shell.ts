import { atPath, type Backend, json } from "./shared.ts";

/** Azure Cloud Shell: a POST form to MSI_ENDPOINT; the token is the signed-in user's. */
const PATH = "/cloud-shell/oauth2/token";

function error(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, { error: { code, message } }, headers);
}

export const cloudShellBackend: Backend = {
  source: "cloud-shell",
  path: PATH,
  httpsOnly: false,
  matches: (url) => atPath(url, PATH),
  error: (status, message, headers) => error(status, "InternalServerError", message, headers),
  async handle({ request, form, now }, services) {
    if (request.method !== "POST")
      return error(405, "MethodNotAllowed", "Cloud Shell's token endpoint takes a POST form.");
    if (request.headers.get("metadata")?.toLowerCase() !== "true")
      return error(400, "BadRequest", "Required metadata header not specified");
    const type = request.headers.get("content-type") ?? "";
    if (!type.toLowerCase().startsWith("application/x-www-form-urlencoded"))
      return error(400, "BadRequest", "The body must be application/x-www-form-urlencoded.");
    const resource = form?.get("resource");
    if (!resource) return error(400, "BadRequest", "The resource form field is missing.");
    const { token, expiresIn } = await services.issueForUser(resource, now);
    return json(200, {
      access_token: token,
      expires_in: String(expiresIn),
      expires_on: String(now + expiresIn),
      not_before: String(now),
      resource,
      token_type: "Bearer",
    });
  },
};
