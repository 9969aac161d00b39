import { ManagedIdentityError } from "../errors.ts";
import { sha256Hex } from "../hash.ts";
import { serviceFabricRetry } from "../retry.ts";
import { requireEnv } from "./shared.ts";
import type { SourceDefinition } from "./types.ts";

/** Service Fabric's managed identity token service, reached over TLS pinned to its certificate. */
const API_VERSION = "2019-07-01-preview";
const ENDPOINT_VARIABLE = "IDENTITY_ENDPOINT";
const SECRET_VARIABLE = "IDENTITY_HEADER";
const THUMBPRINT_VARIABLE = "IDENTITY_SERVER_THUMBPRINT";
// The header is named `secret` here, not App Service's X-IDENTITY-HEADER.
const SECRET_HEADER = "secret";
/** Revocation: the SHA-256 of the token a claims challenge rejected, so the service replaces it. */
const REVOKED_TOKEN_PARAMETER = "token_sha256_to_refresh";
const CAPABILITIES_PARAMETER = "xms_cc";

/**
 * A SHA-1 thumbprint as 40 lower-case hex characters: `:` and whitespace are dropped (certificate
 * tools print both forms), case is ignored. Undefined when what remains is not a SHA-1 thumbprint.
 */
export function normalizeThumbprint(value: string): string | undefined {
  const compact = value.replace(/[:\s]/g, "").toLowerCase();
  return /^[0-9a-f]{40}$/.test(compact) ? compact : undefined;
}

function refuse(message: string): never {
  throw new ManagedIdentityError("source_unavailable", message, { source: "service-fabric" });
}

export const serviceFabric: SourceDefinition = {
  name: "service-fabric",
  label: "Service Fabric",
  selectedBy: `${ENDPOINT_VARIABLE}, ${SECRET_VARIABLE} and ${THUMBPRINT_VARIABLE}`,
  // User-assigned identities are chosen in the cluster's application manifest, not per request.
  idKinds: [],
  partitionVariables: [ENDPOINT_VARIABLE, SECRET_VARIABLE],
  requireTokenType: true,
  // Throttling and unavailability only: a 404 from Service Fabric is final.
  retry: serviceFabricRetry,
  errorCodes: {
    SecretHeaderNotFound: "unauthorized_client",
    ManagedIdentityNotFound: "invalid_client",
    ArgumentNullOrEmpty: "invalid_scope",
  },
  detect: (env) =>
    env(ENDPOINT_VARIABLE) !== undefined &&
    env(SECRET_VARIABLE) !== undefined &&
    env(THUMBPRINT_VARIABLE) !== undefined,
  async createRequest({ env, resource, claimsChallenge, previousToken, clientCapabilities }) {
    const endpoint = requireEnv(env, ENDPOINT_VARIABLE, "service-fabric");
    const secret = requireEnv(env, SECRET_VARIABLE, "service-fabric");
    const thumbprint = normalizeThumbprint(requireEnv(env, THUMBPRINT_VARIABLE, "service-fabric"));
    if (thumbprint === undefined) {
      refuse(
        `${THUMBPRINT_VARIABLE} is not a SHA-1 certificate thumbprint (40 hexadecimal characters; ':' and spaces are allowed); nothing was sent.`,
      );
    }
    if (!/^https:/i.test(endpoint)) {
      throw new ManagedIdentityError(
        "endpoint_not_allowed",
        `The Service Fabric endpoint in ${ENDPOINT_VARIABLE} must use https: its certificate pin is what makes it trusted.`,
        { source: "service-fabric" },
      );
    }
    const query: Record<string, string> = { "api-version": API_VERSION, resource };
    if (claimsChallenge !== undefined && previousToken !== undefined) {
      query[REVOKED_TOKEN_PARAMETER] = await sha256Hex(previousToken);
    }
    if (clientCapabilities.length > 0) {
      query[CAPABILITIES_PARAMETER] = clientCapabilities.join(",");
    }
    return {
      method: "GET",
      url: endpoint,
      query,
      headers: { [SECRET_HEADER]: secret },
      endpointKind: "local",
      secrets: [secret],
      pinnedThumbprint: thumbprint,
    };
  },
};
