import { ManagedIdentityError } from "./errors.ts";

const DEFAULT_SCOPE_SUFFIX = "/.default";

/**
 * Turns what the caller passed as `resource` into the resource a managed identity endpoint
 * expects: surrounding whitespace is trimmed and a scope's trailing `/.default` removed.
 * @throws {ManagedIdentityError} `invalid_resource` for a non-string, an empty or whitespace-only
 *   value, or more than one scope.
 */
export function normalizeResource(resource: unknown): string {
  if (typeof resource !== "string") {
    throw new ManagedIdentityError(
      "invalid_resource",
      `resource must be a string such as "https://management.azure.com", got ${resource === null ? "null" : typeof resource}.`,
    );
  }
  let value = resource.trim();
  if (/\s/.test(value)) {
    throw new ManagedIdentityError(
      "invalid_resource",
      "resource must be a single resource or scope; a managed identity token is for one resource at a time.",
    );
  }
  if (value.endsWith(DEFAULT_SCOPE_SUFFIX)) value = value.slice(0, -DEFAULT_SCOPE_SUFFIX.length);
  if (value.length === 0) {
    throw new ManagedIdentityError(
      "invalid_resource",
      'resource is empty; pass the resource the token is for, such as "https://management.azure.com".',
    );
  }
  return value;
}
