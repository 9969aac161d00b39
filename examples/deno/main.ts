/**
 * Deno: print which managed identity back-end answered and when the token expires.
 *
 *   deno add jsr:@managed-identity/client
 *   deno run --allow-env --allow-net main.ts https://management.azure.com
 *
 * (In this repository the example is a workspace member, so the package name resolves to the
 * local source, exactly as JSR serves it.)
 */
import {
  isManagedIdentityError,
  ManagedIdentityClient,
  SystemAssignedManagedIdentity,
} from "@managed-identity/client";

const resource = Deno.args[0] ?? "https://management.azure.com";
const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity());

try {
  const token = await client.acquireTokenForClient({ resource });
  // Never print the token itself.
  console.log(
    JSON.stringify({ source: token.source, resource: token.resource, expiresOn: token.expiresOn }),
  );
} catch (error) {
  if (!isManagedIdentityError(error)) throw error;
  console.error(`${error.code}: ${error.message}`);
  Deno.exit(1);
}
