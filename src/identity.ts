import * as v from "valibot";
import { ManagedIdentityError } from "./errors.ts";

/** How a user-assigned identity is selected. */
export type UserAssignedIdKind = "clientId" | "objectId" | "resourceId";

/** The identity a client acts as, after validation. */
export type ManagedIdentityId =
  | { readonly kind: "systemAssigned" }
  | { readonly kind: UserAssignedIdKind; readonly id: string };

/** The JSON form of an identity, as in MSAL's "Recipe 2" (for example read from an env var). */
export type ManagedIdentityConfig =
  | { ManagedIdentityIdType: "SystemAssigned"; Id: null }
  | { ManagedIdentityIdType: "ClientId" | "ObjectId" | "ResourceId"; Id: string };

/** Selects exactly one user-assigned identity. */
export type UserAssignedManagedIdentityOptions =
  | { clientId: string; objectId?: undefined; resourceId?: undefined }
  | { objectId: string; clientId?: undefined; resourceId?: undefined }
  | { resourceId: string; clientId?: undefined; objectId?: undefined };

const ACCEPTED_SHAPES =
  'Accepted: new SystemAssignedManagedIdentity(), new UserAssignedManagedIdentity({ clientId | objectId | resourceId: "<id>" }) with exactly one id, ' +
  '{"ManagedIdentityIdType": "ClientId" | "ObjectId" | "ResourceId", "Id": "<id>"}, or {"ManagedIdentityIdType": "SystemAssigned", "Id": null}.';

const TYPE_TO_KIND = {
  ClientId: "clientId",
  ObjectId: "objectId",
  ResourceId: "resourceId",
} as const;
const KIND_TO_TYPE = {
  clientId: "ClientId",
  objectId: "ObjectId",
  resourceId: "ResourceId",
} as const;

const IdString = v.pipe(v.string(), v.trim(), v.nonEmpty());

const UserAssignedOptionsSchema = v.union([
  v.strictObject({
    clientId: IdString,
    objectId: v.optional(v.undefined()),
    resourceId: v.optional(v.undefined()),
  }),
  v.strictObject({
    objectId: IdString,
    clientId: v.optional(v.undefined()),
    resourceId: v.optional(v.undefined()),
  }),
  v.strictObject({
    resourceId: IdString,
    clientId: v.optional(v.undefined()),
    objectId: v.optional(v.undefined()),
  }),
]);

const ConfigSchema = v.variant("ManagedIdentityIdType", [
  // MSAL Python's own documentation spells it "SystemAssignedManagedIdentity"; accept both.
  v.strictObject({
    ManagedIdentityIdType: v.picklist(["SystemAssigned", "SystemAssignedManagedIdentity"]),
    Id: v.optional(v.null()),
  }),
  v.strictObject({
    ManagedIdentityIdType: v.picklist(["ClientId", "ObjectId", "ResourceId"]),
    Id: IdString,
  }),
]);

function invalid(problem: string): ManagedIdentityError {
  return new ManagedIdentityError(
    "invalid_managed_identity",
    `Invalid managed identity: ${problem}. ${ACCEPTED_SHAPES}`,
  );
}

function describe(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0];
  if (!issue) return "unrecognised value";
  const path = issue.path?.map((item) => String(item.key)).join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** The system-assigned identity of the compute this code runs on. */
export class SystemAssignedManagedIdentity {
  /** Always `"systemAssigned"`. */
  readonly kind = "systemAssigned" as const;

  /** The MSAL "Recipe 2" JSON form: `{"ManagedIdentityIdType": "SystemAssigned", "Id": null}`. */
  toJSON(): { ManagedIdentityIdType: "SystemAssigned"; Id: null } {
    return { ManagedIdentityIdType: "SystemAssigned", Id: null };
  }
}

/** A user-assigned identity, selected by exactly one of its client id, object id or resource id. */
export class UserAssignedManagedIdentity {
  /** Which id selects the identity. */
  readonly kind: UserAssignedIdKind;
  /** The id's value (a GUID, or for `resourceId` an ARM resource path). */
  readonly id: string;

  /** @throws {ManagedIdentityError} `invalid_managed_identity` unless exactly one id is given. */
  constructor(options: UserAssignedManagedIdentityOptions) {
    const result = v.safeParse(UserAssignedOptionsSchema, options);
    if (!result.success) {
      const given = options && typeof options === "object" ? Object.keys(options) : [];
      const ids = given.filter(
        (key) => key === "clientId" || key === "objectId" || key === "resourceId",
      );
      throw invalid(
        ids.length > 1
          ? `UserAssignedManagedIdentity takes exactly one id, got ${ids.join(" and ")}`
          : ids.length === 0
            ? "UserAssignedManagedIdentity needs one of clientId, objectId or resourceId"
            : `UserAssignedManagedIdentity ${ids[0]} must be a non-empty string`,
      );
    }
    const [kind, id] = Object.entries(result.output).find(([, value]) => value !== undefined) as [
      UserAssignedIdKind,
      string,
    ];
    this.kind = kind;
    this.id = id;
  }

  /** The MSAL "Recipe 2" JSON form, for example `{"ManagedIdentityIdType": "ClientId", "Id": "..."}`. */
  toJSON(): { ManagedIdentityIdType: "ClientId" | "ObjectId" | "ResourceId"; Id: string } {
    return { ManagedIdentityIdType: KIND_TO_TYPE[this.kind], Id: this.id };
  }
}

/** Anything the client accepts as its identity. */
export type ManagedIdentityInput =
  | SystemAssignedManagedIdentity
  | UserAssignedManagedIdentity
  | ManagedIdentityConfig
  | string;

/**
 * Validates an identity in any accepted form (class instance, MSAL JSON dict, or that dict as a
 * JSON string) and returns its normalised form.
 * @throws {ManagedIdentityError} `invalid_managed_identity`, with the accepted shapes.
 */
export function parseManagedIdentity(input: unknown): ManagedIdentityId {
  if (input instanceof SystemAssignedManagedIdentity) return { kind: "systemAssigned" };
  if (input instanceof UserAssignedManagedIdentity) return { kind: input.kind, id: input.id };
  let value = input;
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch {
      throw invalid("the string is not JSON");
    }
  }
  // An instance from another copy of this package (two bundles) still serialises to the dict.
  if (value && typeof (value as { toJSON?: unknown }).toJSON === "function") {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(
      `expected an object, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`,
    );
  }
  const result = v.safeParse(ConfigSchema, value);
  if (!result.success) throw invalid(describe(result.issues));
  const config = result.output;
  if (
    config.ManagedIdentityIdType === "SystemAssigned" ||
    config.ManagedIdentityIdType === "SystemAssignedManagedIdentity"
  ) {
    return { kind: "systemAssigned" };
  }
  return { kind: TYPE_TO_KIND[config.ManagedIdentityIdType], id: config.Id as string };
}

/** A short description for messages, e.g. `user-assigned identity (clientId)`. Never the id itself. */
export function describeIdentity(identity: ManagedIdentityId): string {
  return identity.kind === "systemAssigned"
    ? "the system-assigned identity"
    : `a user-assigned identity selected by ${identity.kind}`;
}
