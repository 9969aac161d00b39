import { imdsRetry } from "../retry.ts";
import { identityQuery } from "./shared.ts";
import type { SourceDefinition } from "./types.ts";

/** Azure Instance Metadata Service: VMs, scale sets, AKS nodes, Container Instances. */
const API_VERSION = "2018-02-01";
const DEFAULT_HOST = "http://169.254.169.254";
const TOKEN_PATH = "/metadata/identity/oauth2/token";
/** AAD Pod Identity (and test rigs) point IMDS elsewhere with this variable. */
const HOST_VARIABLE = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
// IMDS spells the resource-id selector msi_res_id; App Service's mi_res_id would be ignored.
const ID_PARAMETERS = {
  clientId: "client_id",
  objectId: "object_id",
  resourceId: "msi_res_id",
} as const;

export const imds: SourceDefinition = {
  name: "imds",
  label: "IMDS",
  selectedBy: "default, when no other source's variables are set",
  idKinds: ["clientId", "objectId", "resourceId"],
  partitionVariables: [HOST_VARIABLE],
  detect: () => true,
  retry: imdsRetry,
  createRequest({ env, identity, resource }) {
    const host = (env(HOST_VARIABLE) ?? DEFAULT_HOST).replace(/\/+$/, "");
    return {
      method: "GET",
      url: `${host}${TOKEN_PATH}`,
      query: { "api-version": API_VERSION, resource, ...identityQuery(identity, ID_PARAMETERS) },
      headers: { Metadata: "true" },
      endpointKind: "local",
      secrets: [],
    };
  },
};
