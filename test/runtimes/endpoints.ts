/**
 * The local endpoints every runtime in the matrix talks to: one server on 127.0.0.1 (port 0)
 * speaking IMDS on its IMDS path and App Service on another. Started by the Node test process;
 * the Deno, Bun and workerd children get its URLs through environment variables.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { ENDPOINT_VARIABLES, UNKNOWN_RESOURCE } from "./suite.ts";

const IMDS_PATH = "/metadata/identity/oauth2/token";
const APP_SERVICE_PATH = "/app-service/token";
/** The App Service secret the children are given; requests without it are refused with 401. */
export const APP_SERVICE_SECRET = "runtime-matrix-secret";

/** The running endpoints. */
export interface LocalEndpoints {
  /** The variables that point a client at these endpoints (see ENDPOINT_VARIABLES). */
  env: Record<string, string>;
  /** Token requests served so far, per back-end. */
  issued: { imds: number; appService: number };
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body: unknown;
}

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
  const now = Math.floor(Date.now() / 1000);
  return {
    status: 200,
    body: {
      access_token: `imds-${serial}`,
      expires_in: "3599",
      expires_on: String(now + 3599),
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
      expires_on: String(Math.floor(Date.now() / 1000) + 3599),
      resource: url.searchParams.get("resource"),
      token_type: "Bearer",
    },
  };
}

function route(request: IncomingMessage, issued: LocalEndpoints["issued"]): Answer {
  const url = new URL(request.url ?? "/", "http://127.0.0.1");
  if (request.method === "GET" && url.pathname === IMDS_PATH) {
    issued.imds += 1;
    return imds(url, request, issued.imds);
  }
  if (request.method === "GET" && url.pathname === APP_SERVICE_PATH) {
    issued.appService += 1;
    return appService(url, request, issued.appService);
  }
  return { status: 404, body: { error: "not_found" } };
}

/** Starts the endpoints on 127.0.0.1, port 0. */
export async function startLocalEndpoints(): Promise<LocalEndpoints> {
  const issued = { imds: 0, appService: 0 };
  const server = createServer((request, response) => {
    const { status, body } = route(request, issued);
    response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    env: {
      [ENDPOINT_VARIABLES.imdsHost]: base,
      [ENDPOINT_VARIABLES.appServiceEndpoint]: `${base}${APP_SERVICE_PATH}`,
      [ENDPOINT_VARIABLES.appServiceSecret]: APP_SERVICE_SECRET,
    },
    issued,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
