import { ManagedIdentityError, sanitize } from "../errors.ts";
import type { ManagedIdentityId } from "../identity.ts";
import { requireEnv } from "./shared.ts";
import type { EnvReader, SourceContext, SourceDefinition } from "./types.ts";

/** AKS workload identity: a Kubernetes service account token exchanged at Microsoft Entra ID. */
const TOKEN_FILE_VARIABLE = "AZURE_FEDERATED_TOKEN_FILE";
const TENANT_VARIABLE = "AZURE_TENANT_ID";
const CLIENT_ID_VARIABLE = "AZURE_CLIENT_ID";
// Sovereign clouds set this; it may end in a slash, which must not double the path's.
const AUTHORITY_VARIABLE = "AZURE_AUTHORITY_HOST";
const DEFAULT_AUTHORITY = "https://login.microsoftonline.com";
const TOKEN_PATH = "/oauth2/v2.0/token";
// The v2.0 endpoint takes a scope, not a resource: the resource plus /.default.
const SCOPE_SUFFIX = "/.default";
const GRANT_TYPE = "client_credentials";
const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** The kubelet rotates the projected token file, so a copy older than this is read again. */
const ASSERTION_MAX_AGE_MS = 5 * 60 * 1000;
/** A projected service account token is a few kilobytes. */
const MAX_ASSERTION_BYTES = 64 * 1024;
/** A tenant id (GUID) or domain name: anything else would change the token URL's path. */
const TENANT_PATTERN = /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/;
const STATE_KEY = "workload-identity:assertion";

interface CachedAssertion {
  path: string;
  assertion: string;
  readAt: number;
}

/** The application (client) id: the configured user-assigned client id, else AZURE_CLIENT_ID. */
function clientIdOf(env: EnvReader, identity: ManagedIdentityId | undefined): string | undefined {
  return identity?.kind === "clientId" ? identity.id : env(CLIENT_ID_VARIABLE);
}

function unavailable(message: string, cause?: unknown): ManagedIdentityError {
  return new ManagedIdentityError("source_unavailable", message, {
    source: "workload-identity",
    cause,
  });
}

/** The federated token, from the copy in `state` while it is at most five minutes old. */
async function readAssertion({ env, platform, state }: SourceContext): Promise<string> {
  const path = requireEnv(env, TOKEN_FILE_VARIABLE, "workload-identity");
  const now = Date.now();
  const cached = state.get(STATE_KEY) as CachedAssertion | undefined;
  const age = cached ? now - cached.readAt : -1;
  if (cached?.path === path && age >= 0 && age <= ASSERTION_MAX_AGE_MS) return cached.assertion;
  if (!platform.readTextFile) {
    throw new ManagedIdentityError(
      "capability_unavailable",
      `Workload identity reads the federated token file named by ${TOKEN_FILE_VARIABLE}, but this runtime (${platform.name}) cannot read files; nothing was sent.`,
      { source: "workload-identity" },
    );
  }
  let text: string;
  try {
    text = await platform.readTextFile(path, { maxBytes: MAX_ASSERTION_BYTES });
  } catch (error) {
    // File system errors name the path, never the contents.
    const reason = error instanceof Error ? sanitize(error.message) : "unknown failure";
    throw unavailable(
      `Could not read the federated token file ${path} named by ${TOKEN_FILE_VARIABLE} (${reason}). Is the service account token projected into this pod?`,
      error,
    );
  }
  const assertion = text.trim();
  if (assertion.length === 0) {
    throw unavailable(`The federated token file ${path} named by ${TOKEN_FILE_VARIABLE} is empty.`);
  }
  state.set(STATE_KEY, { path, assertion, readAt: now } satisfies CachedAssertion);
  return assertion;
}

/**
 * Workload identity on AKS (and any Kubernetes federated with Microsoft Entra ID): the pod's
 * projected service account token is posted as a client assertion to the tenant's token endpoint.
 * Only a client id selects the identity (the app registration or user-assigned identity the
 * service account is federated with); without one, `AZURE_CLIENT_ID` is used.
 */
export const workloadIdentity: SourceDefinition = {
  name: "workload-identity",
  label: "Workload identity",
  selectedBy: `${TOKEN_FILE_VARIABLE}, ${TENANT_VARIABLE} and a client id (the user-assigned clientId, else ${CLIENT_ID_VARIABLE})`,
  idKinds: ["clientId"],
  partitionVariables: [AUTHORITY_VARIABLE, TENANT_VARIABLE, CLIENT_ID_VARIABLE],
  detect: (env, _platform, identity: ManagedIdentityId) =>
    env(TOKEN_FILE_VARIABLE) !== undefined &&
    env(TENANT_VARIABLE) !== undefined &&
    clientIdOf(env, identity) !== undefined,
  async createRequest(context) {
    const { env, identity, resource } = context;
    const tenant = requireEnv(env, TENANT_VARIABLE, "workload-identity");
    if (!TENANT_PATTERN.test(tenant)) {
      throw unavailable(`${TENANT_VARIABLE} must be a tenant id or domain name.`);
    }
    const clientId = clientIdOf(env, identity);
    if (clientId === undefined) {
      throw unavailable(
        `Workload identity needs a client id: select the identity with UserAssignedManagedIdentity({ clientId }) or set ${CLIENT_ID_VARIABLE}.`,
      );
    }
    const assertion = await readAssertion(context);
    const authority = (env(AUTHORITY_VARIABLE) ?? DEFAULT_AUTHORITY).replace(/\/+$/, "");
    return {
      method: "POST",
      url: `${authority}/${tenant}${TOKEN_PATH}`,
      headers: {},
      form: {
        grant_type: GRANT_TYPE,
        client_id: clientId,
        scope: `${resource}${SCOPE_SUFFIX}`,
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: assertion,
      },
      // The client refuses a non-https authority before anything is sent.
      endpointKind: "authority",
      secrets: [assertion],
    };
  },
};
