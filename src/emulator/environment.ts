import { EMULATOR_PATHS, type Emulator } from "./emulator.ts";
import type { EmulatorSource } from "./faults.ts";

/** Where a served emulator listens, and what a client needs besides the address. */
export interface EmulatorEndpoints {
  /** The plain http origin, e.g. `http://127.0.0.1:40342`. */
  http: string;
  /** The https origin (Service Fabric, workload identity), e.g. `https://127.0.0.1:40343`. */
  https: string;
  /** SHA-1 thumbprint of the https certificate. */
  thumbprint: string;
  /** The file holding workload identity's federated token. */
  federatedTokenFile: string;
}

/**
 * The environment variables that point a client (this package, MSAL, Azure Identity, any SDK) at
 * one emulated back-end, exactly as Azure sets them on that kind of host.
 */
export function emulatorEnvironment(
  emulator: Emulator,
  source: EmulatorSource,
  endpoints: EmulatorEndpoints,
): Record<string, string> {
  const http = endpoints.http.replace(/\/+$/, "");
  const https = endpoints.https.replace(/\/+$/, "");
  switch (source) {
    case "imds":
      return { AZURE_POD_IDENTITY_AUTHORITY_HOST: http };
    case "app-service":
      return {
        IDENTITY_ENDPOINT: `${http}${EMULATOR_PATHS["app-service"]}`,
        IDENTITY_HEADER: emulator.secrets.appService,
      };
    case "service-fabric":
      return {
        IDENTITY_ENDPOINT: `${https}${EMULATOR_PATHS["service-fabric"]}`,
        IDENTITY_HEADER: emulator.secrets.serviceFabric,
        IDENTITY_SERVER_THUMBPRINT: endpoints.thumbprint,
      };
    case "machine-learning": {
      const env: Record<string, string> = {
        MSI_ENDPOINT: `${http}${EMULATOR_PATHS["machine-learning"]}`,
        MSI_SECRET: emulator.secrets.machineLearning,
      };
      // Machine Learning compute names its system-assigned identity's client id here.
      if (emulator.systemAssigned)
        env.DEFAULT_IDENTITY_CLIENT_ID = emulator.systemAssigned.clientId;
      return env;
    }
    case "cloud-shell":
      return { MSI_ENDPOINT: `${http}${EMULATOR_PATHS["cloud-shell"]}` };
    case "azure-arc":
      return { IDENTITY_ENDPOINT: `${http}${EMULATOR_PATHS["azure-arc"]}`, IMDS_ENDPOINT: http };
    case "workload-identity": {
      const clientId = emulator.userAssigned[0]?.clientId ?? emulator.systemAssigned?.clientId;
      const env: Record<string, string> = {
        AZURE_AUTHORITY_HOST: https,
        AZURE_TENANT_ID: emulator.tenantId,
        AZURE_FEDERATED_TOKEN_FILE: endpoints.federatedTokenFile,
      };
      if (clientId) env.AZURE_CLIENT_ID = clientId;
      return env;
    }
  }
}

/** Every variable any back-end is selected by: clear them all before pointing at one back-end. */
export const MANAGED_IDENTITY_VARIABLES: readonly string[] = [
  "IDENTITY_ENDPOINT",
  "IDENTITY_HEADER",
  "IDENTITY_SERVER_THUMBPRINT",
  "IMDS_ENDPOINT",
  "MSI_ENDPOINT",
  "MSI_SECRET",
  "DEFAULT_IDENTITY_CLIENT_ID",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_AUTHORITY_HOST",
  "AZURE_TENANT_ID",
  "AZURE_CLIENT_ID",
];
