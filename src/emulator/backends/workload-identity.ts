import { type Backend, json } from "./shared.ts";

/** Entra ID's token endpoint as AKS workload identity uses it: a client-assertion POST. */
const PATH_PATTERN = /^\/([^/]+)\/oauth2\/v2\.0\/token$/;
const GRANT_TYPE = "client_credentials";
const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEFAULT_SCOPE_SUFFIX = "/.default";

function error(
  status: number,
  code: string,
  aadsts: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  const traceId = crypto.randomUUID();
  const correlationId = crypto.randomUUID();
  return json(
    status,
    {
      error: code,
      error_description: `AADSTS${aadsts}: ${message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${new Date().toISOString()}`,
      error_codes: [aadsts],
      timestamp: new Date().toISOString(),
      trace_id: traceId,
      correlation_id: correlationId,
    },
    headers,
  );
}

export const workloadIdentityBackend: Backend = {
  source: "workload-identity",
  path: "/{tenant}/oauth2/v2.0/token",
  httpsOnly: true,
  matches: (url) => PATH_PATTERN.test(url.pathname),
  error: (status, message, headers) =>
    error(
      status,
      status === 429 ? "temporarily_unavailable" : "server_error",
      50000,
      message,
      headers,
    ),
  async handle({ request, url, form, now, wrongIdentity }, services) {
    if (request.method !== "POST")
      return error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.");
    const tenant = PATH_PATTERN.exec(url.pathname)?.[1] ?? "";
    if (tenant.toLowerCase() !== services.tenantId.toLowerCase())
      return error(400, "invalid_request", 90002, `Tenant '${tenant}' not found.`);
    const type = request.headers.get("content-type") ?? "";
    if (!form || !type.toLowerCase().startsWith("application/x-www-form-urlencoded"))
      return error(400, "invalid_request", 900144, "The request body must be a form.");
    const grantType = form.get("grant_type");
    if (grantType !== GRANT_TYPE)
      return error(
        400,
        "unsupported_grant_type",
        70003,
        `Unsupported grant type '${grantType ?? ""}'.`,
      );
    const clientId = form.get("client_id");
    if (!clientId)
      return error(400, "invalid_request", 900144, "The request body must contain 'client_id'.");
    const scope = form.get("scope") ?? "";
    const scopes = scope.split(" ").filter(Boolean);
    if (scopes.length !== 1 || !scopes[0]?.endsWith(DEFAULT_SCOPE_SUFFIX))
      return error(
        400,
        "invalid_scope",
        1002012,
        `The provided value for scope '${scope}' is not valid. Client credential flows must have one scope value with /.default suffixed to the resource identifier.`,
      );
    if (form.get("client_assertion_type") !== ASSERTION_TYPE)
      return error(400, "invalid_request", 700023, "Invalid client_assertion_type.");
    const assertion = form.get("client_assertion");
    if (!assertion) return error(400, "invalid_client", 7000216, "'client_assertion' is required.");
    const identity = services.findByClientId(clientId);
    if (!identity)
      return error(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory.`,
      );
    const verified = await services.verifyFederatedToken(assertion, now);
    if ("problem" in verified)
      return error(
        400,
        "invalid_client",
        700211,
        `No matching federated identity record found for presented assertion (${verified.problem}).`,
      );
    const answering = wrongIdentity ? services.select({}, true) : identity;
    if ("problem" in answering) return error(400, "invalid_client", 700016, answering.problem);
    const resource = (scopes[0] ?? "").slice(0, -DEFAULT_SCOPE_SUFFIX.length);
    const { token, expiresIn } = await services.issue(answering, resource, now);
    return json(200, {
      token_type: "Bearer",
      expires_in: expiresIn,
      ext_expires_in: expiresIn,
      access_token: token,
    });
  },
};
