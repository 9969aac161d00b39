import { atPath, type Backend, json, statusCodeError } from "./shared.ts";

/** Azure Machine Learning compute: MSI_ENDPOINT + MSI_SECRET, the 2017 protocol. */
const PATH = "/machine-learning/MSI/auth";
const API_VERSIONS = ["2017-09-01"];
const SECRET_HEADER = "secret";
// Machine Learning reads `clientid` without an underscore; a `client_id` is ignored.
const CLIENT_ID_PARAMETER = "clientid";

const error = statusCodeError;

export const machineLearningBackend: Backend = {
  source: "machine-learning",
  path: PATH,
  httpsOnly: false,
  matches: (url) => atPath(url, PATH),
  error,
  async handle({ request, url, now, wrongIdentity }, services) {
    if (request.method !== "GET") return error(405, "Only GET is supported.");
    const secret = request.headers.get(SECRET_HEADER);
    if (secret === null) return error(401, "The secret header is missing.");
    if (secret !== services.secrets.machineLearning)
      return error(401, "The secret header does not match MSI_SECRET.");
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null || !API_VERSIONS.includes(apiVersion))
      return error(400, `Unsupported api-version '${apiVersion ?? ""}'; use 2017-09-01.`);
    const resource = url.searchParams.get("resource");
    if (!resource) return error(400, "The resource parameter is missing.");
    const clientId = url.searchParams.get(CLIENT_ID_PARAMETER) ?? undefined;
    const identity = services.select({ clientId }, wrongIdentity);
    if ("problem" in identity) return error(400, identity.problem);
    const { token, expiresIn } = await services.issue(identity, resource, now);
    return json(200, {
      access_token: token,
      expires_on: String(now + expiresIn),
      resource,
      token_type: "Bearer",
    });
  },
};
