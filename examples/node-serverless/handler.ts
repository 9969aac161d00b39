/**
 * A serverless function for Node (Azure Functions, or any host that gives a handler a Request),
 * bundled into one file with esbuild:
 *
 *   npm install @managed-identity/client
 *   npx esbuild handler.ts --bundle --platform=node --format=esm --outfile=dist/handler.mjs
 *
 * Azure Functions and App Service set IDENTITY_ENDPOINT and IDENTITY_HEADER; the client finds them
 * in `process.env`. The client lives at module scope so warm invocations share its token cache.
 */
import {
  isManagedIdentityError,
  ManagedIdentityClient,
  SystemAssignedManagedIdentity,
} from "@managed-identity/client";

const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity());

export async function handler(request: Request): Promise<Response> {
  const resource = new URL(request.url).searchParams.get("resource") ?? "https://storage.azure.com";
  try {
    const token = await client.acquireTokenForClient({ resource });
    // Use it: fetch(azureUrl, { headers: { authorization: `Bearer ${token.accessToken}` } }).
    return Response.json({
      source: token.source,
      resource: token.resource,
      expiresOn: token.expiresOn,
      tokenSource: token.tokenSource,
    });
  } catch (error) {
    if (!isManagedIdentityError(error)) throw error;
    return Response.json({ code: error.code, message: error.message }, { status: 502 });
  }
}
