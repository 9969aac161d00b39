import type { EmulatorSource } from "../faults.ts";

/** One managed identity: the three ids Azure knows it by. */
export interface EmulatorIdentity {
  /** The application (client) id, a GUID. */
  clientId: string;
  /** The service principal's object id, a GUID. */
  objectId: string;
  /** The ARM resource id, e.g. `/subscriptions/…/userAssignedIdentities/name`. */
  resourceId: string;
}

/** How a request names a user-assigned identity; at most one is set. */
export interface IdentitySelector {
  clientId?: string | undefined;
  objectId?: string | undefined;
  resourceId?: string | undefined;
}

/** Where a key file for Azure Arc's challenge goes: the serve helper writes real files. */
export interface ArcKeyStore {
  /** Writes `contents` into a file named `fileName`; returns the path the challenge reports. */
  write(fileName: string, contents: string): Promise<string>;
}

/** What a back-end gets to answer one request. */
export interface BackendRequest {
  request: Request;
  url: URL;
  /** The form body of a POST, already read. */
  form: URLSearchParams | undefined;
  /** Emulator time, epoch seconds. */
  now: number;
  /** A `wrong-identity` fault is active: answer as the system-assigned identity. */
  wrongIdentity: boolean;
}

/** What a back-end may use of the emulator. */
export interface BackendServices {
  readonly tenantId: string;
  readonly secrets: Readonly<EmulatorSecrets>;
  readonly arcKeys: ArcKeyStore | undefined;
  /** Arc key file secrets issued so far. */
  readonly arcSecrets: Set<string>;
  readonly cloudShellUser: { objectId: string; userPrincipalName: string };
  readonly federatedIssuer: string;
  /** Finds the identity a request selects; `undefined` when it names none that exists. */
  select(
    selector: IdentitySelector,
    wrongIdentity: boolean,
  ): EmulatorIdentity | { problem: string };
  /** A signed access token for `identity` and `resource`, and its lifetime. */
  issue(
    identity: EmulatorIdentity,
    resource: string,
    now: number,
  ): Promise<{ token: string; expiresIn: number }>;
  /** A signed token for Cloud Shell's signed-in user. */
  issueForUser(resource: string, now: number): Promise<{ token: string; expiresIn: number }>;
  verifyFederatedToken(
    token: string,
    now: number,
  ): Promise<{ subject: string } | { problem: string }>;
  /** Every identity a workload identity's client id may name. */
  findByClientId(clientId: string): EmulatorIdentity | undefined;
}

/** The secrets the back-ends check. */
export interface EmulatorSecrets {
  /** `IDENTITY_HEADER` of App Service. */
  appService: string;
  /** `IDENTITY_HEADER` of Service Fabric. */
  serviceFabric: string;
  /** `MSI_SECRET` of Machine Learning. */
  machineLearning: string;
}

/** One emulated back-end: where it listens and how it answers. */
export interface Backend {
  readonly source: EmulatorSource;
  /** The path the token endpoint is served at (workload identity: a pattern with the tenant). */
  readonly path: string;
  /** Served over https only (Service Fabric and workload identity's public authority). */
  readonly httpsOnly: boolean;
  matches(url: URL): boolean;
  handle(input: BackendRequest, services: BackendServices): Promise<Response>;
  /** An error answer in this back-end's own format (for injected faults). */
  error(status: number, message: string, headers?: Record<string, string>): Response;
}

/** Whether `url` is the endpoint at `path`; SDKs add a trailing slash, which the services accept. */
export function atPath(url: URL, path: string): boolean {
  return url.pathname === path || url.pathname === `${path}/`;
}

/** A JSON response. */
export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** App Service's error body (Machine Learning's compute answers in the same shape). */
export function statusCodeError(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, { statusCode: status, message, correlationId: crypto.randomUUID() }, headers);
}

/** Entra ID's OAuth error body: `{error, error_description}` (IMDS, Arc and the token endpoint). */
export function oauthError(
  status: number,
  error: string,
  description: string,
  headers: Record<string, string> = {},
): Response {
  return json(status, { error, error_description: description }, headers);
}

/** Reads the one user-assigned selector of a query, in this back-end's spellings. */
export function readSelector(
  query: URLSearchParams,
  spellings: { clientId?: string; objectId?: string; resourceId?: string },
): IdentitySelector | { problem: string } {
  const selector: IdentitySelector = {};
  const given: string[] = [];
  for (const kind of ["clientId", "objectId", "resourceId"] as const) {
    const name = spellings[kind];
    const value = name ? query.get(name) : null;
    if (name && value !== null) {
      selector[kind] = value;
      given.push(name);
    }
  }
  if (given.length > 1) return { problem: `Only one of ${given.join(", ")} may be given.` };
  return selector;
}
