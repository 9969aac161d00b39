import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** Length of each access token the endpoint issues: about the size of a real Entra ID token. */
export const TOKEN_LENGTH = 1_200;
const TOKEN_PATH = "/metadata/identity/oauth2/token";

/** A local endpoint that answers like IMDS, and counts the requests for each resource. */
export interface ImdsEndpoint {
  /** The host to put in AZURE_POD_IDENTITY_AUTHORITY_HOST. */
  host: string;
  /** The full token URL with a query, for a bare fetch. */
  tokenUrl(resource: string): string;
  /** How many token requests named `resource`. */
  requests(resource: string): number;
  close(): Promise<void>;
}

export async function startImdsEndpoint(): Promise<ImdsEndpoint> {
  const counts = new Map<string, number>();
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    // msal-node asks for `${host}${path}/`: IMDS itself does not mind, and neither does this.
    if (url.pathname.replace(/\/$/, "") !== TOKEN_PATH || request.headers.metadata !== "true") {
      response.writeHead(400, { "content-type": "application/json" });
      response.end(
        '{"error":"invalid_request","error_description":"Required metadata header not specified"}',
      );
      return;
    }
    const resource = url.searchParams.get("resource") ?? "";
    counts.set(resource, (counts.get(resource) ?? 0) + 1);
    const now = Math.floor(Date.now() / 1000);
    // Distinct tokens, so no library can share one string between cache entries.
    const token = randomBytes((TOKEN_LENGTH * 3) / 4).toString("base64url");
    const body = JSON.stringify({
      access_token: token,
      client_id: "00000000-0000-0000-0000-000000000000",
      expires_in: "86399",
      expires_on: String(now + 86_399),
      ext_expires_in: "86399",
      not_before: String(now),
      resource,
      token_type: "Bearer",
    });
    response.writeHead(200, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    });
    response.end(body);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const host = `http://127.0.0.1:${port}`;
  return {
    host,
    tokenUrl: (resource) =>
      `${host}${TOKEN_PATH}?api-version=2018-02-01&resource=${encodeURIComponent(resource)}`,
    requests: (resource) => counts.get(resource) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
