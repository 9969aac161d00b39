/**
 * Bun: print which managed identity back-end answered and when the token expires.
 *
 *   bun add @managed-identity/client
 *   bun run main.ts https://management.azure.com
 */
import {
  isManagedIdentityError,
  ManagedIdentityClient,
  SystemAssignedManagedIdentity,
} from "@managed-identity/client";

const resource = process.argv[2] ?? "https://management.azure.com";
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
  process.exit(1);
}
