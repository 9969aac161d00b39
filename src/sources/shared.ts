import { ManagedIdentityError } from "../errors.ts";
import type { ManagedIdentityId, UserAssignedIdKind } from "../identity.ts";
import type { EnvReader, ManagedIdentitySource } from "./types.ts";

/** Reads a variable a forced back-end cannot work without. */
export function requireEnv(env: EnvReader, name: string, source: ManagedIdentitySource): string {
  const value = env(name);
  if (value === undefined) {
    throw new ManagedIdentityError(
      "source_unavailable",
      `The ${source} managed identity source needs the ${name} environment variable, which is not set.`,
      { source },
    );
  }
  return value;
}

/** The query parameter that selects a user-assigned identity, in this back-end's spelling. */
export function identityQuery(
  identity: ManagedIdentityId,
  spellings: Readonly<Partial<Record<UserAssignedIdKind, string>>>,
): Record<string, string> {
  if (identity.kind === "systemAssigned") return {};
  const name = spellings[identity.kind];
  // The client checks idKinds before asking for a request, so a missing spelling is a bug here.
  if (!name) throw new Error(`no query parameter for ${identity.kind}`);
  return { [name]: identity.id };
}
