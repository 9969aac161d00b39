import { ManagedIdentityError, type ManagedIdentityErrorCode, sanitize } from "../errors.ts";
import type { UserAssignedIdKind } from "../identity.ts";
import type { Platform } from "../platform/types.ts";
import { identityQuery } from "./shared.ts";
import type { SourceDefinition, SourceResponse, TokenRequest } from "./types.ts";

/** Azure Arc-enabled servers: the Hybrid Instance Metadata Service (himds) of the Arc agent. */
const API_VERSION = "2020-06-01";
const ENDPOINT_VARIABLE = "IDENTITY_ENDPOINT";
const IMDS_VARIABLE = "IMDS_ENDPOINT";
const DEFAULT_ENDPOINT = "http://127.0.0.1:40342/metadata/identity/oauth2/token";
// Arc spells the resource-id selector msi_res_id; it silently ignores App Service's mi_res_id and
// answers with the system-assigned identity.
const ID_PARAMETERS = {
  clientId: "client_id",
  objectId: "object_id",
  resourceId: "msi_res_id",
} as const;
/** The response fields that must echo each requested id kind. */
const ECHO_FIELDS: Readonly<Record<UserAssignedIdKind, readonly string[]>> = {
  clientId: ["client_id"],
  objectId: ["object_id"],
  resourceId: ["msi_res_id", "mi_res_id"],
};
const LINUX_AGENT_FILE = "/opt/azcmagent/bin/himds";
const LINUX_TOKENS_FOLDER = "/var/opt/azcmagent/tokens/";
/** Under %ProgramFiles% and %ProgramData%, read from the machine's environment. */
const WINDOWS_AGENT_FILE = "\\AzureConnectedMachineAgent\\himds.exe";
const WINDOWS_TOKENS_FOLDER = "\\AzureConnectedMachineAgent\\Tokens\\";
const CHALLENGE = /^\s*Basic\s+realm=(.+?)\s*$/i;
const KEY_FILE_NAME = /^[\w.-]+\.key$/;
const MAX_KEY_BYTES = 4096;

/** Where the agent keeps its files on this machine; undefined outside Linux and Windows. */
function locations(platform: Platform): { agentFile?: string; tokensFolder?: string } | undefined {
  const override = platform.azureArc ?? {};
  if (platform.os === "linux") {
    return {
      agentFile: override.agentFile ?? LINUX_AGENT_FILE,
      tokensFolder: override.tokensFolder ?? LINUX_TOKENS_FOLDER,
    };
  }
  if (platform.os !== "windows") return undefined;
  const programFiles = platform.getEnv("ProgramFiles");
  const programData = platform.getEnv("ProgramData");
  const agentFile = override.agentFile ?? (programFiles && programFiles + WINDOWS_AGENT_FILE);
  const tokensFolder =
    override.tokensFolder ?? (programData && programData + WINDOWS_TOKENS_FOLDER);
  return { ...(agentFile ? { agentFile } : {}), ...(tokensFolder ? { tokensFolder } : {}) };
}

function fail(code: ManagedIdentityErrorCode, message: string): never {
  // A refused challenge came with the agent's 401; a missing capability has no status of its own.
  const status = code === "capability_unavailable" ? undefined : 401;
  throw new ManagedIdentityError(code, message, { source: "azure-arc", status });
}

/**
 * Fails before anything is sent where the challenge could never be answered: outside Linux and
 * Windows, or on a runtime without file access (Workers).
 */
function requireKeyFileAccess(platform: Platform): void {
  const where = locations(platform);
  if (where?.tokensFolder && platform.realPath && platform.readTextFile) return;
  throw new ManagedIdentityError(
    "capability_unavailable",
    where
      ? `The Azure Arc challenge needs the agent's tokens folder on the file system, which this runtime (${platform.name}) cannot read; nothing was sent.`
      : `Azure Arc managed identity is supported on Linux and Windows only, not on ${platform.os ?? `this runtime (${platform.name})`}; nothing was sent.`,
    { source: "azure-arc" },
  );
}

/** Validates the challenge's key file path and reads the key, refusing anything unexpected. */
async function readKey(realm: string, platform: Platform): Promise<string> {
  const shown = sanitize(realm);
  const refuse = (why: string): never =>
    fail(
      "invalid_response",
      `The Azure Arc challenge's key file ${shown} ${why}; it was not read.`,
    );
  const where = locations(platform);
  if (!where) {
    fail(
      "capability_unavailable",
      `Azure Arc managed identity is supported on Linux and Windows only, not on ${platform.os ?? "this runtime"}.`,
    );
  }
  const { realPath, readTextFile } = platform;
  if (!where.tokensFolder || !realPath || !readTextFile) {
    fail(
      "capability_unavailable",
      `The Azure Arc challenge needs the agent's tokens folder on the file system, which this runtime (${platform.name}) cannot read.`,
    );
  }
  const folder = where.tokensFolder;
  const separators = platform.os === "windows" ? /[\\/]/ : /\//;
  if (realm.includes("..")) refuse("contains '..'");
  const name = realm.split(separators).pop() ?? "";
  if (!name.endsWith(".key")) refuse("is not a .key file");
  if (realm !== folder + name) refuse(`is not in the Azure Arc tokens folder ${folder}`);
  if (!KEY_FILE_NAME.test(name)) refuse("has characters a key file name never has");
  let real: string;
  let realFolder: string;
  try {
    [real, realFolder] = await Promise.all([realPath(realm), realPath(folder)]);
  } catch {
    return refuse("does not exist");
  }
  // A symbolic link is followed only when it stays directly inside the tokens folder.
  const prefix = separators.test(realFolder.slice(-1))
    ? realFolder
    : realFolder + (platform.os === "windows" ? "\\" : "/");
  const leaf = real.startsWith(prefix) ? real.slice(prefix.length) : "";
  if (leaf === "" || separators.test(leaf)) {
    refuse("is a symbolic link that leads outside the tokens folder");
  }
  let key: string;
  try {
    key = await readTextFile(real, { maxBytes: MAX_KEY_BYTES });
  } catch (error) {
    return refuse(
      `could not be read (${error instanceof Error ? sanitize(error.message) : "unknown failure"})`,
    );
  }
  if (key.length === 0) refuse("is empty");
  return key;
}

export const azureArc: SourceDefinition = {
  name: "azure-arc",
  label: "Azure Arc",
  selectedBy: `${ENDPOINT_VARIABLE} and ${IMDS_VARIABLE}, or the Azure Arc agent installed`,
  idKinds: ["clientId", "objectId", "resourceId"],
  partitionVariables: [ENDPOINT_VARIABLE],
  detect(env, platform) {
    if (env(ENDPOINT_VARIABLE) !== undefined && env(IMDS_VARIABLE) !== undefined) return true;
    const agentFile = locations(platform)?.agentFile;
    return agentFile !== undefined && platform.fileExists?.(agentFile) === true;
  },
  createRequest({ env, identity, resource, platform }) {
    requireKeyFileAccess(platform);
    return {
      method: "GET",
      url: env(ENDPOINT_VARIABLE) ?? DEFAULT_ENDPOINT,
      query: { "api-version": API_VERSION, resource, ...identityQuery(identity, ID_PARAMETERS) },
      headers: { Metadata: "true" },
      endpointKind: "local",
      secrets: [],
    };
  },
  async challenge(response: SourceResponse, request: TokenRequest, { platform }) {
    if (response.status !== 401) return undefined;
    const header = response.headers.get("www-authenticate");
    if (header === null) {
      fail(
        "invalid_response",
        "The Azure Arc endpoint answered 401 without a WWW-Authenticate header; it should name its key file as `Basic realm=<path>`.",
      );
    }
    const realm = CHALLENGE.exec(header)?.[1]?.replace(/^"(.*)"$/, "$1");
    if (realm === undefined) {
      fail(
        "invalid_response",
        "The Azure Arc endpoint's WWW-Authenticate header is not `Basic realm=<path to a .key file>`.",
      );
    }
    const key = await readKey(realm, platform);
    // The key goes back as the agent wrote it: not trimmed, not re-encoded.
    return {
      ...request,
      headers: { ...request.headers, Authorization: `Basic ${key}` },
      secrets: [...request.secrets, key],
    };
  },
  checkResponse(body, { identity }) {
    if (identity.kind === "systemAssigned") return undefined;
    const fields = ECHO_FIELDS[identity.kind];
    const wanted = identity.id.toLowerCase();
    const echoed = fields.some((field) => {
      const value = (body as Record<string, unknown>)[field];
      return typeof value === "string" && value.toLowerCase() === wanted;
    });
    return echoed
      ? undefined
      : `did not echo the requested user-assigned identity (${identity.kind}) in ${fields.join(" or ")}, so it may have answered for the system-assigned identity`;
  },
};
