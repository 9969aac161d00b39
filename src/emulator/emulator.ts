import type { JSONWebKeySet } from "jose";
import { appServiceBackend } from "./backends/app-service.ts";
import { azureArcBackend } from "./backends/azure-arc.ts";
import { cloudShellBackend } from "./backends/cloud-shell.ts";
import { imdsBackend } from "./backends/imds.ts";
import { machineLearningBackend } from "./backends/machine-learning.ts";
import { serviceFabricBackend } from "./backends/service-fabric.ts";
import {
  type ArcKeyStore,
  type Backend,
  type BackendServices,
  type EmulatorIdentity,
  type EmulatorSecrets,
  type IdentitySelector,
  json,
} from "./backends/shared.ts";
import { workloadIdentityBackend } from "./backends/workload-identity.ts";
import {
  htmlErrorPage,
  isTokenAnswer,
  paddedAnswer,
  redirectAnswer,
  resetAnswer,
  reshapeTokenBody,
  withRefreshIn,
} from "./fault-answers.ts";
import {
  type ActiveFault,
  ANSWER_FAULTS,
  type EmulatorFault,
  type EmulatorSource,
  type FaultKind,
  retryAfterHeader,
} from "./faults.ts";
import { createLimiter, type ImdsLimits } from "./limits.ts";
import { TokenSigner, tokenIssuer } from "./tokens.ts";

export type { ArcKeyStore, EmulatorIdentity, EmulatorSecrets } from "./backends/shared.ts";
export type { ImdsLimits } from "./limits.ts";

/** Every emulated back-end, in the client's detection order. */
const BACKENDS: readonly Backend[] = [
  serviceFabricBackend,
  appServiceBackend,
  machineLearningBackend,
  cloudShellBackend,
  azureArcBackend,
  workloadIdentityBackend,
  imdsBackend,
];

/** One request as the emulator saw it, for tests to assert what was sent. */
export interface EmulatorRequest {
  /** Emulator time it arrived, epoch milliseconds. */
  time: number;
  /** The back-end whose endpoint it reached; undefined for JWKS, discovery and unknown paths. */
  source: EmulatorSource | undefined;
  method: string;
  /** The full URL, as the server saw it. */
  url: string;
  path: string;
  query: Record<string, string>;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** The form fields of a `application/x-www-form-urlencoded` POST. */
  form: Record<string, string> | undefined;
  /**
   * The resource asked for: the `resource` parameter or form field, or workload identity's scope
   * without `/.default`; undefined when the request names none.
   */
  resource: string | undefined;
  /** The status answered; 0 while pending, for a dropped connection, or a hang. */
  status: number;
  /** The faults that hit this request, in order. */
  faults: FaultKind[];
}

/** Options of {@link createEmulator}. */
export interface EmulatorOptions {
  /**
   * The tenant (directory) id: in tokens' `tid` and workload identity's token endpoint path.
   * @default a random GUID
   */
  tenantId?: string;
  /**
   * The system-assigned identity, or `false` for a host that has none.
   * @default one with random ids
   */
  systemAssigned?: EmulatorIdentity | false;
  /**
   * The user-assigned identities, or how many to make up.
   * @default 1
   */
  userAssigned?: EmulatorIdentity[] | number;
  /**
   * The secrets each back-end checks.
   * @default random values
   */
  secrets?: Partial<EmulatorSecrets>;
  /**
   * Access token lifetime in seconds.
   * @default 86399 (IMDS's one day, less a second)
   */
  tokenLifetime?: number;
  /**
   * Seconds after issue when clients should fetch a new token: sent as `refresh_in` in every
   * token answer, as Entra ID does for long-lived tokens. Lets a test see proactive refreshes
   * without waiting for half a day.
   * @default none (no `refresh_in`)
   */
  refreshIn?: number;
  /**
   * Where Azure Arc's challenge writes key files. Without it the Arc endpoint answers 500; the
   * serve helper passes a folder store.
   */
  arcKeys?: ArcKeyStore;
  /**
   * The issuer of workload identity's federated tokens (the cluster's OIDC issuer).
   * @default "https://oidc.emulator.invalid/"
   */
  federatedIssuer?: string;
  /** Faults to start with. @default [] */
  faults?: EmulatorFault[];
  /**
   * IMDS's limits on callers: with more than `concurrent` requests in flight, or more than
   * `perSecond` admitted in the last second (by `now`), IMDS answers 429 with `Retry-After` in
   * its JSON error format, before any fault. Refused requests do not count. `true`: 5 at once and
   * 20 per second, as IMDS does; a limit left out keeps that default.
   * @default false (no limits)
   */
  imdsLimits?: ImdsLimits | boolean;
  /**
   * The emulator's clock in epoch milliseconds: token times, IMDS's 410 window, the request log.
   * @default Date.now (so a test's fake timers apply)
   */
  now?: () => number;
  /**
   * Waits for a `delay` fault.
   * @default setTimeout, cut short when the request or the emulator is closed
   */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /**
   * Closes a request's connection without an answer (the `drop` fault); returns whether it could.
   * A serve helper supplies one; otherwise the answer's body fails mid-stream, which clients see
   * as a reset too.
   */
  dropConnection?: (request: Request) => boolean;
  /** Called after each request is answered (or dropped), e.g. to print a log line. */
  onRequest?: (request: EmulatorRequest) => void;
}

/** A managed identity emulator: a Web-standard fetch handler plus what tests need to drive it. */
export interface Emulator {
  /** Answers one request: every back-end's token endpoint, the JWKS and discovery documents. */
  fetch(request: Request): Promise<Response>;
  readonly tenantId: string;
  /** The system-assigned identity, if the emulated host has one. */
  readonly systemAssigned: EmulatorIdentity | undefined;
  readonly userAssigned: readonly EmulatorIdentity[];
  /** The user Cloud Shell's delegated tokens are for. */
  readonly cloudShellUser: { objectId: string; userPrincipalName: string };
  readonly secrets: Readonly<EmulatorSecrets>;
  /** The issuer (`iss`) of access tokens. */
  readonly issuer: string;
  /** The issuer of federated tokens that workload identity accepts. */
  readonly federatedIssuer: string;
  /** The public keys that verify every token; also served at `/discovery/keys`. */
  readonly jwks: JSONWebKeySet;
  /** Every request so far, oldest first. Clear it with `requests.length = 0`. */
  readonly requests: EmulatorRequest[];
  /** The faults in force, in the order they are tried. */
  readonly faults: readonly ActiveFault[];
  /** Adds a fault; faults are tried in the order they were added. */
  addFault(fault: EmulatorFault): void;
  /** Removes one fault (the object given to `addFault`); returns whether it was there. */
  removeFault(fault: EmulatorFault): boolean;
  /** Removes every fault. */
  clearFaults(): void;
  /** A federated token (the Kubernetes service account token) that workload identity accepts. */
  federatedToken(options?: { lifetime?: number }): Promise<string>;
  /** Releases hanging and delayed requests; call it before closing a server. */
  close(): void;
}

/** The path of each back-end's token endpoint; workload identity's holds `{tenant}`. */
export const EMULATOR_PATHS: Readonly<Record<EmulatorSource, string>> = Object.fromEntries(
  BACKENDS.map((backend) => [backend.source, backend.path]),
) as Record<EmulatorSource, string>;

/** The back-ends served over https only (Service Fabric, workload identity). */
export const HTTPS_ONLY_SOURCES: readonly EmulatorSource[] = BACKENDS.filter(
  (backend) => backend.httpsOnly,
).map((backend) => backend.source);

function randomSecret(): string {
  return crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
}

/** Makes up an identity with random ids and a resource id that names it. */
export function createIdentity(
  name: string,
  subscriptionId: string = crypto.randomUUID(),
): EmulatorIdentity {
  return {
    clientId: crypto.randomUUID(),
    objectId: crypto.randomUUID(),
    resourceId: `/subscriptions/${subscriptionId}/resourceGroups/emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`,
  };
}

function same(a: string | undefined, b: string): boolean {
  return a !== undefined && a.toLowerCase() === b.toLowerCase();
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Arc key file secrets the agent still honours: it deletes old key files, so only recent ones. */
const ARC_SECRETS_KEPT = 1024;
class RecentSecrets extends Set<string> {
  override add(secret: string): this {
    super.add(secret);
    if (this.size > ARC_SECRETS_KEPT) this.delete(this.values().next().value ?? secret);
    return this;
  }
}

/** The resource a form names: Cloud Shell's `resource`, or workload identity's one `…/.default` scope. */
function formResource(form: Record<string, string> | undefined): string | undefined {
  if (form?.resource) return form.resource;
  const scope = form?.scope?.trim();
  return scope && !scope.includes(" ") ? scope.replace(/\/\.default$/, "") : undefined;
}

function droppedResponse(): Response {
  // Headers go out, then the body fails: the connection is reset under the client.
  const body = new ReadableStream({
    start(controller) {
      controller.error(new Error("connection dropped by an injected fault"));
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
}

/**
 * Creates an emulator of every managed identity back-end in PROTOCOL.md. Its `fetch` is a
 * Web-standard handler: serve it with `serveEmulator` (Node, Deno, Bun via srvx), as a Worker's
 * `fetch`, or call it in-process. IMDS answers every caller unless `imdsLimits` turns on its
 * throttling (429 beyond 5 requests at once or 20 per second).
 *
 * @example
 * const emulator = await createEmulator({ userAssigned: 2 });
 * const response = await emulator.fetch(new Request("http://127.0.0.1/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net", { headers: { Metadata: "true" } }));
 */
export async function createEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const tenantId = options.tenantId ?? crypto.randomUUID();
  const subscriptionId = crypto.randomUUID();
  const systemAssigned =
    options.systemAssigned === false
      ? undefined
      : (options.systemAssigned ?? {
          clientId: crypto.randomUUID(),
          objectId: crypto.randomUUID(),
          resourceId: `/subscriptions/${subscriptionId}/resourceGroups/emulator/providers/Microsoft.Compute/virtualMachines/emulator-vm`,
        });
  const userAssignedOption = options.userAssigned ?? 1;
  const userAssigned =
    typeof userAssignedOption === "number"
      ? Array.from({ length: userAssignedOption }, (_, index) =>
          createIdentity(`emulator-identity-${index + 1}`, subscriptionId),
        )
      : [...userAssignedOption];
  const secrets: EmulatorSecrets = {
    appService: options.secrets?.appService ?? randomSecret(),
    serviceFabric: options.secrets?.serviceFabric ?? randomSecret(),
    machineLearning: options.secrets?.machineLearning ?? randomSecret(),
  };
  const lifetime = options.tokenLifetime ?? 86_399;
  const imdsLimiter = createLimiter(options.imdsLimits);
  const federatedIssuer = options.federatedIssuer ?? "https://oidc.emulator.invalid/";
  const cloudShellUser = {
    objectId: crypto.randomUUID(),
    userPrincipalName: "cloud-shell-user@emulator.invalid",
  };
  const signer = await TokenSigner.create();
  const closed = new AbortController();
  const requests: EmulatorRequest[] = [];
  const faults: ActiveFault[] = [];
  const addFault = (fault: EmulatorFault) => {
    faults.push({
      fault,
      addedAt: now(),
      remaining: fault.times ?? Number.POSITIVE_INFINITY,
      skip: fault.skip ?? 0,
    });
  };
  for (const fault of options.faults ?? []) addFault(fault);
  const everyone = () => (systemAssigned ? [systemAssigned, ...userAssigned] : userAssigned);

  const services: BackendServices = {
    tenantId,
    secrets,
    arcKeys: options.arcKeys,
    arcSecrets: new RecentSecrets(),
    cloudShellUser,
    federatedIssuer,
    select(selector: IdentitySelector, wrongIdentity: boolean) {
      if (wrongIdentity) {
        // What an agent that ignores the selector does: answer as the host's own identity.
        const other =
          systemAssigned ??
          userAssigned.find(
            (identity) =>
              !same(selector.clientId, identity.clientId) &&
              !same(selector.objectId, identity.objectId) &&
              !same(selector.resourceId, identity.resourceId),
          );
        if (other) return other;
      }
      const { clientId, objectId, resourceId } = selector;
      if (clientId !== undefined || objectId !== undefined || resourceId !== undefined) {
        const found = everyone().find(
          (identity) =>
            same(clientId, identity.clientId) ||
            same(objectId, identity.objectId) ||
            same(resourceId, identity.resourceId),
        );
        return found ?? { problem: "Identity not found" };
      }
      if (systemAssigned) return systemAssigned;
      const [only, ...more] = userAssigned;
      if (only && more.length === 0) return only;
      return {
        problem: only
          ? "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
          : "Identity not found",
      };
    },
    async issue(identity, resource, issuedAt) {
      const token = await signer.accessToken({
        resource,
        tenantId,
        objectId: identity.objectId,
        clientId: identity.clientId,
        resourceId: identity.resourceId,
        issuedAt,
        lifetime,
      });
      return { token, expiresIn: lifetime };
    },
    async issueForUser(resource, issuedAt) {
      const token = await signer.accessToken({
        resource,
        tenantId,
        objectId: cloudShellUser.objectId,
        userPrincipalName: cloudShellUser.userPrincipalName,
        issuedAt,
        lifetime: Math.min(lifetime, 3599),
      });
      return { token, expiresIn: Math.min(lifetime, 3599) };
    },
    verifyFederatedToken: (token, at) => signer.verifyFederatedToken(token, federatedIssuer, at),
    findByClientId: (clientId) => everyone().find((identity) => same(clientId, identity.clientId)),
  };

  function discovery(url: URL): Response | undefined {
    const path = url.pathname;
    if (/^(\/[^/]+)?\/discovery(\/v2\.0)?\/keys$/.test(path)) return json(200, signer.jwks);
    const openid = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(path);
    if (openid) {
      const base = `${url.origin}/${openid[1]}`;
      return json(200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        issuer: `${url.origin}/${tenantId}/v2.0`,
        jwks_uri: `${url.origin}/discovery/v2.0/keys`,
        token_endpoint_auth_methods_supported: ["private_key_jwt", "client_secret_post"],
        response_types_supported: ["code", "id_token", "token"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
      });
    }
    if (path === "/common/discovery/instance") {
      return json(200, {
        tenant_discovery_endpoint: `${url.origin}/{tenant}/v2.0/.well-known/openid-configuration`,
        "api-version": "1.1",
        metadata: [{ preferred_network: url.host, preferred_cache: url.host, aliases: [url.host] }],
      });
    }
    return undefined;
  }

  async function applyFaults(
    backend: Backend,
    request: Request,
    entry: EmulatorRequest,
  ): Promise<Response | { wrongIdentity: boolean; reshape: ActiveFault[] }> {
    let wrongIdentity = false;
    const reshape: ActiveFault[] = [];
    const signal = AbortSignal.any([request.signal, closed.signal]);
    for (const active of faults) {
      const { fault } = active;
      if (active.remaining <= 0 || (fault.source && fault.source !== backend.source)) continue;
      if (fault.resource !== undefined && fault.resource !== entry.resource) continue;
      if (fault.kind === "imds-410") {
        if (backend.source !== "imds" || now() - active.addedAt >= fault.seconds * 1000) continue;
      }
      if (ANSWER_FAULTS.includes(fault.kind)) {
        // Decided once the back-end has answered: only a token answer counts.
        reshape.push(active);
        continue;
      }
      if (active.skip > 0) {
        active.skip--;
        continue;
      }
      active.remaining--;
      entry.faults.push(fault.kind);
      switch (fault.kind) {
        case "delay":
          await sleep(fault.ms, signal);
          continue;
        case "wrong-identity":
          wrongIdentity = true;
          continue;
        case "status": {
          const retryAfter = retryAfterHeader(fault, now());
          return backend.error(
            fault.status,
            `Injected fault: HTTP ${fault.status}.`,
            retryAfter === undefined ? {} : { "retry-after": retryAfter },
          );
        }
        case "imds-410":
          return backend.error(410, "The instance metadata service is being upgraded; retry.");
        case "malformed":
          return new Response('{"access_token": "eyJ0eXAi', {
            status: 200,
            headers: { "content-type": "application/json" },
          });
        case "empty":
          return new Response(null, {
            status: 200,
            headers: { "content-type": "application/json" },
          });
        case "hang":
          await untilAborted(signal);
          return backend.error(503, "The emulator closed while this request hung.");
        case "drop":
          // The answer after a real drop goes nowhere; it only ends the handler.
          return options.dropConnection?.(request)
            ? new Response(null, { status: 500 })
            : droppedResponse();
        case "html":
          return htmlErrorPage(fault.status ?? 502);
        case "redirect":
          return redirectAnswer(fault.location, fault.status);
      }
    }
    return { wrongIdentity, reshape };
  }

  /**
   * A back-end's answer after `refreshIn` and the answer-shaping faults: each acts on an answer
   * that carries a token, and counts (`times`, `skip`) only those.
   */
  async function shapeAnswer(
    response: Response,
    reshape: readonly ActiveFault[],
    entry: EmulatorRequest,
  ): Promise<Response> {
    if (response.status !== 200 || (reshape.length === 0 && options.refreshIn === undefined))
      return response;
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const rebuilt = () =>
      new Response(text, { status: response.status, headers: response.headers });
    if (!isTokenAnswer(body)) return rebuilt();
    if (options.refreshIn !== undefined) withRefreshIn(body, options.refreshIn);
    const nowSeconds = Math.floor(now() / 1000);
    let stream: "reset" | { size: number } | undefined;
    for (const active of reshape) {
      if (active.remaining <= 0) continue;
      if (active.skip > 0) {
        active.skip--;
        continue;
      }
      active.remaining--;
      const { fault } = active;
      entry.faults.push(fault.kind);
      if (fault.kind === "reset") stream = "reset";
      else if (fault.kind === "large-body") stream ??= { size: fault.bytes };
      else reshapeTokenBody(fault, body, nowSeconds);
    }
    const shaped = JSON.stringify(body);
    if (stream === "reset") return resetAnswer(response.status, response.headers, shaped);
    if (stream) return paddedAnswer(response.status, response.headers, shaped, stream.size);
    return new Response(shaped, { status: response.status, headers: response.headers });
  }

  async function answer(request: Request, url: URL, entry: EmulatorRequest): Promise<Response> {
    const backend = BACKENDS.find((candidate) => candidate.matches(url));
    if (!backend) {
      return (
        discovery(url) ??
        json(404, {
          error: "not_found",
          error_description: `No emulated endpoint at ${url.pathname}.`,
        })
      );
    }
    entry.source = backend.source;
    if (backend.httpsOnly && url.protocol !== "https:")
      return backend.error(400, `The ${backend.source} endpoint is served over https only.`);
    if (backend.source !== "imds" || !imdsLimiter)
      return answerAdmitted(backend, request, url, entry);
    // Decided before the first await, so a burst of callers is counted as it arrives.
    const retryAfter = imdsLimiter.admit(now());
    if (retryAfter !== undefined) {
      return backend.error(429, "Too many requests: IMDS limits callers; retry later.", {
        "retry-after": String(retryAfter),
      });
    }
    try {
      return await answerAdmitted(backend, request, url, entry);
    } finally {
      imdsLimiter.release();
    }
  }

  async function answerAdmitted(
    backend: Backend,
    request: Request,
    url: URL,
    entry: EmulatorRequest,
  ): Promise<Response> {
    const faulted = await applyFaults(backend, request, entry);
    if (faulted instanceof Response) return faulted;
    const answered = await backend.handle(
      {
        request,
        url,
        form: entry.form ? new URLSearchParams(entry.form) : undefined,
        now: Math.floor(now() / 1000),
        wrongIdentity: faulted.wrongIdentity,
      },
      services,
    );
    return shapeAnswer(answered, faulted.reshape, entry);
  }

  return {
    async fetch(request) {
      const url = new URL(request.url);
      const entry: EmulatorRequest = {
        time: now(),
        source: undefined,
        method: request.method,
        url: url.href,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: Object.fromEntries(request.headers),
        form: undefined,
        resource: url.searchParams.get("resource") ?? undefined,
        status: 0,
        faults: [],
      };
      requests.push(entry);
      let response: Response;
      try {
        if (request.method === "POST") {
          const body = await request.text();
          const type = request.headers.get("content-type") ?? "";
          if (type.toLowerCase().startsWith("application/x-www-form-urlencoded"))
            entry.form = Object.fromEntries(new URLSearchParams(body));
          entry.resource ??= formResource(entry.form);
        }
        response = await answer(request, url, entry);
      } catch (error) {
        response = json(500, {
          error: "server_error",
          error_description: `The emulator failed: ${error instanceof Error ? error.message : String(error)}`,
        });
      }
      const dropped = entry.faults.at(-1) === "drop" || entry.faults.at(-1) === "hang";
      entry.status = dropped ? 0 : response.status;
      options.onRequest?.(entry);
      return response;
    },
    tenantId,
    systemAssigned,
    userAssigned,
    cloudShellUser,
    secrets,
    issuer: tokenIssuer(tenantId),
    federatedIssuer,
    jwks: signer.jwks,
    requests,
    faults,
    addFault,
    clearFaults: () => {
      faults.length = 0;
    },
    removeFault: (fault) => {
      const index = faults.findIndex((active) => active.fault === fault);
      if (index >= 0) faults.splice(index, 1);
      return index >= 0;
    },
    federatedToken: (federated = {}) =>
      signer.federatedToken({
        issuer: federatedIssuer,
        subject: "system:serviceaccount:default:workload-identity",
        issuedAt: Math.floor(now() / 1000),
        lifetime: federated.lifetime ?? 3600,
      }),
    close: () => closed.abort(),
  };
}
