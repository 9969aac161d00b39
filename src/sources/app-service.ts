import { identityQuery, requireEnv } from "./shared.ts";
import type { SourceDefinition } from "./types.ts";

/** App Service, Azure Functions, Container Apps and Azure Automation share this protocol. */
const API_VERSION = "2019-08-01";
const ENDPOINT_VARIABLE = "IDENTITY_ENDPOINT";
const SECRET_VARIABLE = "IDENTITY_HEADER";
const SECRET_HEADER = "X-IDENTITY-HEADER";
// App Service spells the resource-id selector mi_res_id; IMDS's msi_res_id would be ignored.
const ID_PARAMETERS = {
  clientId: "client_id",
  objectId: "object_id",
  resourceId: "mi_res_id",
} as const;

export const appService: SourceDefinition = {
  name: "app-service",
  label: "App Service",
  selectedBy: `${ENDPOINT_VARIABLE} and ${SECRET_VARIABLE}`,
  idKinds: ["clientId", "objectId", "resourceId"],
  partitionVariables: [ENDPOINT_VARIABLE, SECRET_VARIABLE],
  detect: (env) => env(ENDPOINT_VARIABLE) !== undefined && env(SECRET_VARIABLE) !== undefined,
  createRequest({ env, identity, resource }) {
    const endpoint = requireEnv(env, ENDPOINT_VARIABLE, "app-service");
    const secret = requireEnv(env, SECRET_VARIABLE, "app-service");
    return {
      method: "GET",
      url: endpoint,
      query: { "api-version": API_VERSION, resource, ...identityQuery(identity, ID_PARAMETERS) },
      // Metadata is harmless on App Service and required by Azure Automation.
      headers: { [SECRET_HEADER]: secret, Metadata: "true" },
      endpointKind: "local",
      secrets: [secret],
    };
  },
};
