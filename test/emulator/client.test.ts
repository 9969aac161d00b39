import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EMULATOR_SOURCES,
  type EmulatorSource,
  type RunningEmulator,
  serveEmulator,
} from "../../src/emulator/index.ts";
import {
  DETECTION_ORDER,
  ManagedIdentityClient,
  type ManagedIdentityInput,
  SystemAssignedManagedIdentity,
  UserAssignedManagedIdentity,
} from "../../src/index.ts";
import { defaultPlatform } from "../../src/platform/index.ts";

const RESOURCE = "https://storage.azure.com";
let running: RunningEmulator;

beforeAll(async () => {
  running = await serveEmulator({ userAssigned: 2 });
});
afterAll(() => running.close());

// Every back-end the client supports, so back-ends join this suite as they land.
const supported = DETECTION_ORDER.filter((definition) =>
  EMULATOR_SOURCES.includes(definition.name as EmulatorSource),
);

function clientFor(
  source: EmulatorSource,
  identity: ManagedIdentityInput = new SystemAssignedManagedIdentity(),
) {
  return new ManagedIdentityClient(identity, {
    env: running.env(source),
    platform: { ...defaultPlatform(), azureArc: { tokensFolder: `${running.arcKeyDirectory}/` } },
    fetch: running.fetch,
  });
}

describe.each(supported.map((definition) => [definition.name, definition] as const))(
  "this package's client against the emulated %s",
  (name, definition) => {
    const source = name as EmulatorSource;

    it("is detected from the emulator's variables, gets a valid token, then serves it from cache", async () => {
      const client = clientFor(source);
      expect(client.getManagedIdentitySource()).toBe(source);
      const first = await client.acquireTokenForClient({ resource: `${RESOURCE}/.default` });
      const again = await client.acquireTokenForClient({ resource: RESOURCE });
      expect([first.tokenSource, again.tokenSource]).toEqual(["identity_provider", "cache"]);
      const { payload } = await jwtVerify(
        first.accessToken,
        createLocalJWKSet(running.emulator.jwks),
        {
          audience: RESOURCE,
          issuer: running.emulator.issuer,
        },
      );
      const expectedOid =
        source === "cloud-shell"
          ? running.emulator.cloudShellUser.objectId
          : source === "workload-identity"
            ? running.emulator.userAssigned[0]?.objectId
            : running.emulator.systemAssigned?.objectId;
      expect(payload.oid).toBe(expectedOid);
    });

    it.each(definition.idKinds.map((kind) => [kind]))(
      "selects the second user-assigned identity by %s",
      async (kind) => {
        const target = running.emulator.userAssigned[1] ?? expect.fail("no identity");
        const client = clientFor(
          source,
          new UserAssignedManagedIdentity({ [kind]: target[kind] } as { clientId: string }),
        );
        const token = await client.acquireTokenForClient({ resource: RESOURCE });
        const { payload } = await jwtVerify(
          token.accessToken,
          createLocalJWKSet(running.emulator.jwks),
        );
        expect(payload.oid).toBe(target.objectId);
      },
    );
  },
);
