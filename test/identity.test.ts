import { describe, expect, it } from "vitest";
import { parseManagedIdentity } from "../src/identity.ts";
import {
  ManagedIdentityClient,
  ManagedIdentityError,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../src/index.ts";

const CLIENT_ID = "11111111-2222-3333-4444-555555555555";

function invalid(run: () => unknown): ManagedIdentityError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ManagedIdentityError);
    expect(error).toMatchObject({ code: "invalid_managed_identity" });
    // The message always shows the accepted shapes.
    expect((error as Error).message).toContain(
      '"ManagedIdentityIdType": "SystemAssigned", "Id": null',
    );
    return error as ManagedIdentityError;
  }
  throw new Error("expected an invalid_managed_identity error");
}

describe("identity classes", () => {
  it("serialise to MSAL's JSON dicts", () => {
    expect(JSON.stringify(new SystemAssignedManagedIdentity())).toBe(
      '{"ManagedIdentityIdType":"SystemAssigned","Id":null}',
    );
    expect(new UserAssignedManagedIdentity({ clientId: CLIENT_ID }).toJSON()).toEqual({
      ManagedIdentityIdType: "ClientId",
      Id: CLIENT_ID,
    });
    expect(new UserAssignedManagedIdentity({ objectId: "o" }).toJSON()).toEqual({
      ManagedIdentityIdType: "ObjectId",
      Id: "o",
    });
    expect(new UserAssignedManagedIdentity({ resourceId: "/r" }).toJSON()).toEqual({
      ManagedIdentityIdType: "ResourceId",
      Id: "/r",
    });
  });

  it("round-trip through their JSON form", () => {
    for (const identity of [
      new SystemAssignedManagedIdentity(),
      new UserAssignedManagedIdentity({ clientId: CLIENT_ID }),
      new UserAssignedManagedIdentity({ objectId: "o" }),
      new UserAssignedManagedIdentity({ resourceId: "/r" }),
    ]) {
      expect(parseManagedIdentity(JSON.parse(JSON.stringify(identity)))).toEqual(
        parseManagedIdentity(identity),
      );
    }
  });

  it("refuse none or more than one id, with a message that says which", () => {
    expect(invalid(() => new UserAssignedManagedIdentity({} as never)).message).toContain(
      "needs one of clientId, objectId or resourceId",
    );
    expect(
      invalid(() => new UserAssignedManagedIdentity({ clientId: "a", objectId: "b" } as never))
        .message,
    ).toContain("exactly one id, got clientId and objectId");
    expect(invalid(() => new UserAssignedManagedIdentity({ clientId: "  " })).message).toContain(
      "clientId must be a non-empty string",
    );
    invalid(() => new UserAssignedManagedIdentity({ clientId: 42 } as never));
    invalid(() => new UserAssignedManagedIdentity(undefined as never));
    invalid(() => new UserAssignedManagedIdentity({ client_id: "x" } as never));
  });
});

describe("MSAL JSON dicts", () => {
  it.each([
    [{ ManagedIdentityIdType: "SystemAssigned", Id: null }, { kind: "systemAssigned" }],
    [{ ManagedIdentityIdType: "SystemAssigned" }, { kind: "systemAssigned" }],
    // MSAL Python's documentation spells it this way.
    [
      { ManagedIdentityIdType: "SystemAssignedManagedIdentity", Id: null },
      { kind: "systemAssigned" },
    ],
    [
      { ManagedIdentityIdType: "ClientId", Id: CLIENT_ID },
      { kind: "clientId", id: CLIENT_ID },
    ],
    [
      { ManagedIdentityIdType: "ObjectId", Id: "oid" },
      { kind: "objectId", id: "oid" },
    ],
    [
      { ManagedIdentityIdType: "ResourceId", Id: "/sub/x" },
      { kind: "resourceId", id: "/sub/x" },
    ],
    [
      `{"ManagedIdentityIdType":"ClientId","Id":"${CLIENT_ID}"}`,
      { kind: "clientId", id: CLIENT_ID },
    ],
  ])("accepts %j", (input, expected) => {
    expect(parseManagedIdentity(input)).toEqual(expected);
  });

  it.each([
    [{ ManagedIdentityIdType: "Unknown", Id: "x" }, "ManagedIdentityIdType"],
    [{ ManagedIdentityIdType: "ClientId", Id: "" }, "Id"],
    [{ ManagedIdentityIdType: "ClientId", Id: null }, "Id"],
    [{ ManagedIdentityIdType: "ClientId" }, "Id"],
    [{ ManagedIdentityIdType: "SystemAssigned", Id: "x" }, "Id"],
    [{ ManagedIdentityIdType: "ClientId", Id: "x", Extra: 1 }, "Extra"],
    [{ Id: "x" }, "ManagedIdentityIdType"],
    [[], "an array"],
    [null, "null"],
    [42, "number"],
    ["not json", "not JSON"],
    ["[1]", "an array"],
  ])("refuses %j, naming what is wrong", (input, mention) => {
    expect(invalid(() => parseManagedIdentity(input)).message).toContain(mention);
  });

  it("is validated when the client is constructed, before any request", () => {
    invalid(() => new ManagedIdentityClient({ ManagedIdentityIdType: "Bogus", Id: "x" } as never));
    const client = new ManagedIdentityClient(
      { ManagedIdentityIdType: "ClientId", Id: CLIENT_ID },
      { env: {} },
    );
    expect(client.getManagedIdentitySource()).toBe("imds");
  });
});
