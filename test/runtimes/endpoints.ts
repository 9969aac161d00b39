/**
 * The local endpoints every runtime in the matrix talks to, started by the Node test process; the
 * Deno, Bun and workerd children get their URLs through environment variables (ENDPOINT_VARIABLES).
 *
 * - One HTTP server on 127.0.0.1 (port 0) speaking IMDS, App Service and Azure Arc on their own
 *   paths. Arc answers an unauthenticated request with the real 401 challenge: it writes a fresh
 *   key file into a temporary tokens folder and names it in `WWW-Authenticate: Basic realm=`.
 * - One HTTPS server with a self-signed certificate speaking Service Fabric; its SHA-1 thumbprint
 *   is what the client pins.
 * - `GET /counts` on the HTTP server reports what each endpoint received, so a case can assert
 *   that nothing was sent.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { createCertificate } from "../platform/tls.ts";
import { ENDPOINT_VARIABLES, type EndpointCounts, UNKNOWN_RESOURCE } from "./suite.ts";

const IMDS_PATH = "/metadata/identity/oauth2/token";
const APP_SERVICE_PATH = "/app-service/token";
const ARC_PATH = "/arc/token";
const SERVICE_FABRIC_PATH = "/service-fabric/token";
const COUNTS_PATH = "/counts";
/** The App Service secret the children are given; requests without it are refused with 401. */
export const APP_SERVICE_SECRET = "runtime-matrix-secret";
/** The Service Fabric secret (its `secret` header). */
export const SERVICE_FABRIC_SECRET = "runtime-matrix-fabric-secret";

/** The running endpoints. */
export interface LocalEndpoints {
  /** The variables that point a client at these endpoints (see ENDPOINT_VARIABLES). */
  env: Record<string, string>;
  /** What each endpoint received so far. */
  issued: EndpointCounts;
  /** The temporary Azure Arc tokens folder (with a trailing separator). */
  arcTokensFolder: string;
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function imds(url: URL, request: IncomingMessage, serial: number): Answer {
  const resource = url.searchParams.get("resource");
  if (request.headers.metadata !== "true" || url.searchParams.get("api-version") !== "2018-02-01") {
    return { status: 400, body: { error: "invalid_request", error_description: "Bad shape" } };
  }
  if (!resource || resource === UNKNOWN_RESOURCE) {
    return {
      status: 400,
      body: { error: "invalid_request", error_description: "Identity not found" },
    };
  }
  return {
    status: 200,
    body: {
      access_token: `imds-${serial}`,
      expires_in: "3599",
      expires_on: String(nowSeconds() + 3599),
      resource,
      token_type: "Bearer",
    },
  };
}

function appService(url: URL, request: IncomingMessage, serial: number): Answer {
  if (request.headers["x-identity-header"] !== APP_SERVICE_SECRET) {
    return { status: 401, body: { statusCode: 401, message: "Wrong X-IDENTITY-HEADER" } };
  }
  const clientId = url.searchParams.get("client_id") ?? "system";
  if (url.searchParams.get("api-version") !== "2019-08-01" || !url.searchParams.get("resource")) {
    return { status: 400, body: { statusCode: 400, message: "Bad request shape" } };
  }
  return {
    status: 200,
    body: {
      access_token: `appsvc-${clientId}-${serial}`,
      expires_on: String(nowSeconds() + 3599),
      resource: url.searchParams.get("resource"),
      token_type: "Bearer",
    },
  };
}

/**
 * Azure Arc (himds): the first request gets a 401 naming a key file the agent just wrote; the
 * retry must carry that file's contents as `Authorization: Basic <key>`. Each key is used once.
 */
async function azureArc(
  url: URL,
  request: IncomingMessage,
  issued: EndpointCounts,
  tokensFolder: string,
  keys: Set<string>,
): Promise<Answer> {
  if (request.headers.metadata !== "true" || url.searchParams.get("api-version") !== "2020-06-01") {
    return { status: 400, body: { error: "invalid_request", error_description: "Bad shape" } };
  }
  const authorization = request.headers.authorization;
  if (authorization === undefined) {
    issued.arcChallenges += 1;
    const key = randomBytes(24).toString("base64url");
    const file = `${tokensFolder}${issued.arcChallenges}-${randomBytes(4).toString("hex")}.key`;
    await writeFile(file, key, { mode: 0o600 });
    keys.add(key);
    return {
      status: 401,
      headers: { "www-authenticate": `Basic realm=${file}` },
      body: { error: "unauthorized", error_description: "Read the key file" },
    };
  }
  const key = /^Basic (.+)$/.exec(authorization)?.[1];
  if (key === undefined || !keys.delete(key)) {
    return { status: 401, body: { error: "unauthorized", error_description: "Wrong key" } };
  }
  issued.arc += 1;
  return {
    status: 200,
    body: {
      access_token: `arc-${issued.arc}`,
      expires_in: "3599",
      expires_on: String(nowSeconds() + 3599),
      resource: url.searchParams.get("resource"),
      token_type: "Bearer",
    },
  };
}

function serviceFabric(url: URL, request: IncomingMessage, serial: number): Answer {
  if (request.headers.secret !== SERVICE_FABRIC_SECRET) {
    return {
      status: 401,
      body: { error: { code: "SecretHeaderNotFound", message: "Secret is not found." } },
    };
  }
  if (
    url.searchParams.get("api-version") !== "2019-07-01-preview" ||
    !url.searchParams.get("resource")
  ) {
    return {
      status: 400,
      body: { error: { code: "ArgumentNullOrEmpty", message: "Bad request shape" } },
    };
  }
  return {
    status: 200,
    body: {
      access_token: `fabric-${serial}`,
      expires_on: nowSeconds() + 3599,
      resource: url.searchParams.get("resource"),
      token_type: "Bearer",
    },
  };
}

function reply(response: ServerResponse, { status, body, headers }: Answer): void {
  response
    .writeHead(status, { "content-type": "application/json", ...headers })
    .end(JSON.stringify(body));
}

/** Starts the endpoints on 127.0.0.1, port 0, and creates the Arc tokens folder. */
export async function startLocalEndpoints(): Promise<LocalEndpoints> {
  const issued: EndpointCounts = {
    imds: 0,
    appService: 0,
    arcChallenges: 0,
    arc: 0,
    serviceFabricConnections: 0,
    serviceFabric: 0,
  };
  const arcTokensFolder = `${await mkdtemp(join(tmpdir(), "arc-tokens-"))}${sep}`;
  const arcKeys = new Set<string>();
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const route = async (): Promise<Answer> => {
      if (request.method !== "GET") return { status: 405, body: { error: "method" } };
      switch (url.pathname) {
        case IMDS_PATH:
          issued.imds += 1;
          return imds(url, request, issued.imds);
        case APP_SERVICE_PATH:
          issued.appService += 1;
          return appService(url, request, issued.appService);
        case ARC_PATH:
          return azureArc(url, request, issued, arcTokensFolder, arcKeys);
        case COUNTS_PATH:
          return { status: 200, body: issued };
        default:
          return { status: 404, body: { error: "not_found" } };
      }
    };
    route().then(
      (answer) => reply(response, answer),
      (error: unknown) => reply(response, { status: 500, body: { error: String(error) } }),
    );
  });

  const certificate = await createCertificate("runtime-matrix-service-fabric");
  const fabric = createHttpsServer(
    { key: certificate.key, cert: certificate.cert },
    (request, response) => {
      const url = new URL(request.url ?? "/", "https://127.0.0.1");
      if (request.method !== "GET" || url.pathname !== SERVICE_FABRIC_PATH) {
        reply(response, { status: 404, body: { error: "not_found" } });
        return;
      }
      issued.serviceFabric += 1;
      reply(response, serviceFabric(url, request, issued.serviceFabric));
    },
  );
  // Every TCP connection, counted when accepted: before the server's certificate goes out, so the
  // count is up to date by the time a client can have checked the pin.
  fabric.on("connection", () => {
    issued.serviceFabricConnections += 1;
  });

  await Promise.all([
    new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)),
    new Promise<void>((resolve) => fabric.listen(0, "127.0.0.1", resolve)),
  ]);
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fabricBase = `https://127.0.0.1:${(fabric.address() as AddressInfo).port}`;
  return {
    env: {
      [ENDPOINT_VARIABLES.imdsHost]: base,
      [ENDPOINT_VARIABLES.appServiceEndpoint]: `${base}${APP_SERVICE_PATH}`,
      [ENDPOINT_VARIABLES.appServiceSecret]: APP_SERVICE_SECRET,
      [ENDPOINT_VARIABLES.counts]: `${base}${COUNTS_PATH}`,
      [ENDPOINT_VARIABLES.arcEndpoint]: `${base}${ARC_PATH}`,
      [ENDPOINT_VARIABLES.arcTokensFolder]: arcTokensFolder,
      [ENDPOINT_VARIABLES.serviceFabricEndpoint]: `${fabricBase}${SERVICE_FABRIC_PATH}`,
      [ENDPOINT_VARIABLES.serviceFabricSecret]: SERVICE_FABRIC_SECRET,
      // As Service Fabric sets it: 40 hex characters, upper case.
      [ENDPOINT_VARIABLES.serviceFabricThumbprint]: certificate.thumbprint.toUpperCase(),
    },
    issued,
    arcTokensFolder,
    close: async () => {
      const closed = [server, fabric].map(
        (each) =>
          new Promise<void>((resolve, reject) => {
            each.closeAllConnections();
            each.close((error) => (error ? reject(error) : resolve()));
          }),
      );
      await Promise.all(closed);
      await rm(arcTokensFolder, { recursive: true, force: true });
    },
  };
}
