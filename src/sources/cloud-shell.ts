import { requireEnv } from "./shared.ts";
import type { SourceDefinition } from "./types.ts";

/** Azure Cloud Shell's local token endpoint, usually http://localhost:50342/oauth2/token. */
const ENDPOINT_VARIABLE = "MSI_ENDPOINT";
// Cloud Shell sets MSI_ENDPOINT without MSI_SECRET; with the secret it is Machine Learning.
const SECRET_VARIABLE = "MSI_SECRET";

/**
 * Azure Cloud Shell. Its tokens are the signed-in user's (delegated), not an application's: code
 * run in Cloud Shell acts as the person using it, with that person's permissions. Only the
 * "system-assigned" identity is accepted; a user-assigned identity is refused before any request.
 */
export const cloudShell: SourceDefinition = {
  name: "cloud-shell",
  label: "Cloud Shell",
  selectedBy: `${ENDPOINT_VARIABLE} without ${SECRET_VARIABLE}`,
  idKinds: [],
  partitionVariables: [ENDPOINT_VARIABLE],
  detect: (env) => env(ENDPOINT_VARIABLE) !== undefined && env(SECRET_VARIABLE) === undefined,
  createRequest({ env, resource }) {
    const endpoint = requireEnv(env, ENDPOINT_VARIABLE, "cloud-shell");
    return {
      method: "POST",
      url: endpoint,
      headers: { Metadata: "true" },
      // The transport sends a form as application/x-www-form-urlencoded.
      form: { resource },
      endpointKind: "local",
      secrets: [],
    };
  },
};
