import { requireEnv } from "./shared.ts";
import type { SourceDefinition } from "./types.ts";

/** Azure Machine Learning compute (instances and clusters): an older App Service-like protocol. */
const API_VERSION = "2017-09-01";
const ENDPOINT_VARIABLE = "MSI_ENDPOINT";
const SECRET_VARIABLE = "MSI_SECRET";
const SECRET_HEADER = "secret";
// Spelled clientid, without the underscore of client_id; a client_id parameter would be ignored.
const CLIENT_ID_PARAMETER = "clientid";
/** The compute's own identity: what a system-assigned request must name, when it is set. */
const DEFAULT_CLIENT_ID_VARIABLE = "DEFAULT_IDENTITY_CLIENT_ID";

/**
 * Azure Machine Learning. Only a client id selects a user-assigned identity; the system-assigned
 * request names `DEFAULT_IDENTITY_CLIENT_ID` when the compute sets it.
 */
export const machineLearning: SourceDefinition = {
  name: "machine-learning",
  label: "Azure Machine Learning",
  selectedBy: `${ENDPOINT_VARIABLE} and ${SECRET_VARIABLE}`,
  idKinds: ["clientId"],
  partitionVariables: [ENDPOINT_VARIABLE, SECRET_VARIABLE, DEFAULT_CLIENT_ID_VARIABLE],
  detect: (env) => env(ENDPOINT_VARIABLE) !== undefined && env(SECRET_VARIABLE) !== undefined,
  createRequest({ env, identity, resource }) {
    const endpoint = requireEnv(env, ENDPOINT_VARIABLE, "machine-learning");
    const secret = requireEnv(env, SECRET_VARIABLE, "machine-learning");
    const clientId = identity.kind === "clientId" ? identity.id : env(DEFAULT_CLIENT_ID_VARIABLE);
    return {
      method: "GET",
      url: endpoint,
      query: {
        "api-version": API_VERSION,
        resource,
        ...(clientId === undefined ? {} : { [CLIENT_ID_PARAMETER]: clientId }),
      },
      headers: { [SECRET_HEADER]: secret, Metadata: "true" },
      endpointKind: "local",
      secrets: [secret],
    };
  },
};
