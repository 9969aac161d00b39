/**
 * A faithful emulator of every Azure managed identity back-end (IMDS, App Service, Service
 * Fabric, Azure Arc, Machine Learning, Cloud Shell, workload identity): a Web-standard fetch
 * handler, a serve helper for Node, Deno and Bun, fault injection, IMDS's limits on callers
 * (opt-in) and a request log.
 *
 * @example
 * ```ts
 * import { serveEmulator } from "@managed-identity/client/emulator";
 *
 * const running = await serveEmulator();
 * console.log(running.env("imds")); // { AZURE_POD_IDENTITY_AUTHORITY_HOST: "http://127.0.0.1:…" }
 * await running.close();
 * ```
 * @module
 */
export type {
  ArcKeyStore,
  EmulatorIdentity,
  EmulatorSecrets,
} from "./backends/shared.ts";
export {
  createSelfSignedCertificate,
  type SelfSignedCertificate,
  type SelfSignedCertificateOptions,
} from "./certificate.ts";
export {
  createEmulator,
  createIdentity,
  EMULATOR_PATHS,
  type Emulator,
  type EmulatorOptions,
  type EmulatorRequest,
  HTTPS_ONLY_SOURCES,
  type ImdsLimits,
} from "./emulator.ts";
export {
  type EmulatorEndpoints,
  emulatorEnvironment,
  MANAGED_IDENTITY_VARIABLES,
} from "./environment.ts";
export {
  type ActiveFault,
  EMULATOR_SOURCES,
  type EmulatorFault,
  type EmulatorSource,
  FAULT_SYNTAX,
  type FaultAction,
  type FaultKind,
  type FaultScope,
  FaultSpecError,
  parseFault,
} from "./faults.ts";
export { IMDS_LIMITS } from "./limits.ts";
export { type RunningEmulator, type ServeEmulatorOptions, serveEmulator } from "./serve.ts";
export { FEDERATED_TOKEN_AUDIENCE, tokenIssuer } from "./tokens.ts";
