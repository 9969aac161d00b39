import type { ManagedIdentityId } from "../identity.ts";
import type { Platform } from "../platform/types.ts";
import { appService } from "./app-service.ts";
import { azureArc } from "./azure-arc.ts";
import { cloudShell } from "./cloud-shell.ts";
import { imds } from "./imds.ts";
import { machineLearning } from "./machine-learning.ts";
import { serviceFabric } from "./service-fabric.ts";
import type { EnvReader, ManagedIdentitySource, SourceDefinition } from "./types.ts";
import { workloadIdentity } from "./workload-identity.ts";

export type { ManagedIdentitySource, SourceDefinition } from "./types.ts";

/**
 * The detection order, in the one place it lives: the first back-end whose `detect` matches wins.
 * Service Fabric sets the App Service variables too, so it must come first; IMDS is the default.
 */
export const DETECTION_ORDER: readonly SourceDefinition[] = [
  serviceFabric,
  appService,
  machineLearning,
  cloudShell,
  azureArc,
  workloadIdentity,
  imds,
];

/** Every back-end by name, for a forced `source`. */
export const SOURCES: Readonly<Record<string, SourceDefinition>> = Object.fromEntries(
  DETECTION_ORDER.map((definition) => [definition.name, definition]),
);

/** The names a caller may force. */
export const SOURCE_NAMES: readonly ManagedIdentitySource[] = DETECTION_ORDER.map(
  (definition) => definition.name,
);

/** The back-end the environment selects. */
export function detectSource(
  env: EnvReader,
  platform: Platform,
  identity: ManagedIdentityId = { kind: "systemAssigned" },
): SourceDefinition {
  // IMDS is last and always matches.
  return DETECTION_ORDER.find((definition) => definition.detect(env, platform, identity)) ?? imds;
}
