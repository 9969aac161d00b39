// Runs @azure/msal-node's ManagedIdentityApplication in a process of its own, for
// test/parity.test.ts. msal-node keeps the detected back-end and its token cache in static fields,
// so each case gets a fresh process: nothing it detects or caches can leak into another case, or
// into our client in the test process.
//
// Usage: node test/parity/msal-runner.mjs '<spec as JSON>'
// The environment (IDENTITY_ENDPOINT, MSI_ENDPOINT, AZURE_POD_IDENTITY_AUTHORITY_HOST...) is the
// one the parent gives this process; msal-node reads process.env itself.
// spec: { identity: { kind, id? }, resource, calls: [{ claims? }], clientCapabilities? }
// Prints one line of JSON: { source, results: [{ ok, accessToken? } | { ok: false, code, message }] }
import { ManagedIdentityApplication } from "@azure/msal-node";

const ID_PARAMETERS = {
  clientId: "userAssignedClientId",
  objectId: "userAssignedObjectId",
  resourceId: "userAssignedResourceId",
};

const spec = JSON.parse(process.argv[2] ?? "{}");
const { identity, resource, calls = [{}], clientCapabilities } = spec;

const application = new ManagedIdentityApplication({
  ...(identity.kind === "systemAssigned"
    ? {}
    : { managedIdentityIdParams: { [ID_PARAMETERS[identity.kind]]: identity.id } }),
  ...(clientCapabilities ? { clientCapabilities } : {}),
  // One request per call: the parity test compares requests, not retry schedules.
  system: { disableInternalRetries: true },
});

const results = [];
for (const call of calls) {
  try {
    const result = await application.acquireToken({
      resource,
      ...(call.claims ? { claims: call.claims } : {}),
    });
    results.push({ ok: true, accessToken: result.accessToken, fromCache: result.fromCache });
  } catch (error) {
    results.push({
      ok: false,
      code: error?.errorCode ?? error?.code ?? "unknown",
      message: String(error?.message ?? error),
    });
  }
}
process.stdout.write(
  `${JSON.stringify({ source: application.getManagedIdentitySource(), results })}\n`,
);
