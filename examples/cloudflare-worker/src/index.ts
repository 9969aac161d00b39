/**
 * A Cloudflare Worker that gets a managed identity token. A Worker has no process environment
 * and no file system: the endpoint variables come from the Worker's `env` (vars and secrets in
 * wrangler.jsonc), and the back-ends that read files (Azure Arc, workload identity) are refused
 * with `capability_unavailable`. An endpoint that is not loopback or link-local must be listed in
 * `allowedHosts` (comma-separated in MANAGED_IDENTITY_ALLOWED_HOSTS here).
 *
 *   npm install @managed-identity/client
 *   npx wrangler deploy
 */
import {
  isManagedIdentityError,
  ManagedIdentityClient,
  SystemAssignedManagedIdentity,
} from "@managed-identity/client";

interface Env {
  IDENTITY_ENDPOINT?: string;
  IDENTITY_HEADER?: string;
  MANAGED_IDENTITY_ALLOWED_HOSTS?: string;
  [name: string]: string | undefined;
}

// One client per isolate: its cache then serves every request the isolate handles.
let client: ManagedIdentityClient | undefined;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    client ??= new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
      env,
      allowedHosts: env.MANAGED_IDENTITY_ALLOWED_HOSTS?.split(",").filter(Boolean) ?? [],
    });
    const resource = new URL(request.url).searchParams.get("resource") ?? "https://vault.azure.net";
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
  },
};
