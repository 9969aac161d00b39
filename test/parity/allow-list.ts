import type { ManagedIdentitySource } from "../../src/index.ts";

/** Where in a request a difference is. */
export type WirePart = "method" | "path" | "header" | "query" | "body";

/** What one side sends for a name: a value, a value matching a pattern, or nothing at all. */
export type Expected = string | RegExp | undefined;

/**
 * A difference between what `@azure/msal-node` sends and what we send that we make on purpose.
 * Every difference the parity test sees must match an entry here (part, name, back-end, and both
 * values), and every entry must be seen by at least one case, so the list cannot go stale.
 */
export interface AllowedDifference {
  part: WirePart;
  /** Header names are lower case (as a server sees them); query and form names as sent. */
  name: string;
  sources: readonly ManagedIdentitySource[];
  /** What msal-node sends; undefined: it does not send it. */
  msal: Expected;
  /** What we send; undefined: we do not send it. */
  ours: Expected;
  reason: string;
  /** The section of /work/shared/PROTOCOL.md that says what the back-end expects. */
  protocol: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ALL_LOCAL_SOURCES = [
  "imds",
  "app-service",
  "machine-learning",
  "cloud-shell",
  "azure-arc",
  "service-fabric",
] as const satisfies readonly ManagedIdentitySource[];
const GET_SOURCES = ALL_LOCAL_SOURCES.filter((source) => source !== "cloud-shell");

/** The one allow-list of intended differences from msal-node 7.2.3. */
export const ALLOWED_DIFFERENCES: readonly AllowedDifference[] = [
  {
    part: "path",
    name: "path",
    sources: ["imds"],
    msal: "/metadata/identity/oauth2/token/",
    ours: "/metadata/identity/oauth2/token",
    reason:
      "With AZURE_POD_IDENTITY_AUTHORITY_HOST set, msal-node passes host + path through its URL canonicaliser (UrlString), which appends a slash; its default endpoint, and every other MSAL, use the documented path without one, as we always do.",
    protocol: "Per back-end requests › IMDS",
  },
  {
    part: "header",
    name: "x-client-sku",
    sources: ["imds"],
    msal: "msal.js.node",
    ours: undefined,
    reason:
      "MSAL library telemetry (which MSAL SKU asked); IMDS does not need it and we are not MSAL, so claiming its SKU would mislead Microsoft's telemetry.",
    protocol: "Per back-end requests › IMDS",
  },
  {
    part: "header",
    name: "x-client-ver",
    sources: ["imds"],
    msal: /^\d+\.\d+\.\d+/,
    ours: undefined,
    reason: "MSAL library telemetry (the MSAL version), as x-client-sku; not needed by IMDS.",
    protocol: "Per back-end requests › IMDS",
  },
  {
    part: "header",
    name: "x-ms-client-request-id",
    sources: ALL_LOCAL_SOURCES.filter((source) => source !== "imds"),
    msal: undefined,
    ours: UUID,
    reason:
      "msal-node sends a request id to IMDS only; we send a fresh UUID to every back-end so a failed request can be traced in a support case. It carries no secret and endpoints that do not know it ignore it.",
    protocol: "Per back-end requests › IMDS",
  },
  {
    part: "header",
    name: "content-type",
    sources: GET_SOURCES,
    msal: /^application\/x-www-form-urlencoded/,
    ours: undefined,
    reason:
      "msal-node labels every request as a form, even a GET without a body; we send Content-Type only with a body (Cloud Shell's POST).",
    protocol: "Per back-end requests",
  },
  {
    part: "header",
    name: "content-type",
    sources: ["cloud-shell"],
    msal: "application/x-www-form-urlencoded;charset=utf-8",
    ours: "application/x-www-form-urlencoded",
    reason:
      "The same media type; UTF-8 is already the only encoding application/x-www-form-urlencoded has, so we leave out the charset parameter.",
    protocol: "Per back-end requests › Cloud Shell",
  },
  {
    part: "header",
    name: "metadata",
    sources: ["app-service"],
    msal: undefined,
    ours: "true",
    reason:
      "Azure Automation speaks the App Service protocol but needs Metadata: true; App Service ignores it. msal-node omits it, so it fails on Automation.",
    protocol: "Per back-end requests › App Service / Functions / Container Apps / Automation",
  },
  {
    part: "query",
    name: "xms_cc",
    sources: ["imds", "app-service", "machine-learning", "azure-arc"],
    msal: /^[\w.-]+(,[\w.-]+)*$/,
    ours: undefined,
    reason:
      "Client capabilities go only to Service Fabric, the one managed identity endpoint that documents xms_cc (with token revocation); msal-node appends them to every back-end's query.",
    protocol: "Claims challenge, revocation, client capabilities",
  },
];
