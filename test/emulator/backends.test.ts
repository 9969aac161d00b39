import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { connect } from "node:tls";
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createEmulator,
  EMULATOR_PATHS,
  type RunningEmulator,
  serveEmulator,
} from "../../src/emulator/index.ts";

let running: RunningEmulator;
const RESOURCE = "https://vault.azure.net";

beforeAll(async () => {
  running = await serveEmulator({ userAssigned: 2 });
});
afterAll(() => running.close());

const system = () => running.emulator.systemAssigned ?? expect.fail("no system identity");
const user = (index = 0) => running.emulator.userAssigned[index] ?? expect.fail("no identity");

function url(origin: string, path: string, query: Record<string, string>): string {
  return `${origin}${path}?${new URLSearchParams(query)}`;
}

async function body(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

describe("IMDS", () => {
  const imds = (
    query: Record<string, string>,
    headers: Record<string, string> = { Metadata: "true" },
  ) => fetch(url(running.http, EMULATOR_PATHS.imds, query), { headers });

  it("issues a token for the system-assigned identity in IMDS's format", async () => {
    const response = await imds({ "api-version": "2018-02-01", resource: RESOURCE });
    expect(response.status).toBe(200);
    const json = await body(response);
    expect(json).toMatchObject({
      client_id: system().clientId,
      expires_in: "86399",
      resource: RESOURCE,
      token_type: "Bearer",
    });
    expect(typeof json.expires_on).toBe("string");
    expect(decodeJwt(String(json.access_token)).oid).toBe(system().objectId);
  });

  it("selects a user-assigned identity by client_id, object_id and msi_res_id", async () => {
    for (const [parameter, value] of [
      ["client_id", user(1).clientId],
      ["object_id", user(1).objectId],
      ["msi_res_id", user(1).resourceId.toUpperCase()],
    ]) {
      const json = await body(
        await imds({
          "api-version": "2018-02-01",
          resource: RESOURCE,
          [parameter as string]: value as string,
        }),
      );
      expect(decodeJwt(String(json.access_token)).oid, parameter).toBe(user(1).objectId);
    }
  });

  it("ignores App Service's mi_res_id spelling and answers as the system identity", async () => {
    const json = await body(
      await imds({ "api-version": "2018-02-01", resource: RESOURCE, mi_res_id: user().resourceId }),
    );
    expect(json.client_id).toBe(system().clientId);
  });

  it("refuses what the real IMDS refuses", async () => {
    const cases: [Record<string, string>, Record<string, string>, string][] = [
      [{ "api-version": "2018-02-01", resource: RESOURCE }, {}, "metadata header"],
      [{ "api-version": "2019-08-01", resource: RESOURCE }, { Metadata: "true" }, "api-version"],
      [{ resource: RESOURCE }, { Metadata: "true" }, "api-version"],
      [{ "api-version": "2018-02-01" }, { Metadata: "true" }, "resource"],
      [
        { "api-version": "2018-02-01", resource: RESOURCE, client_id: crypto.randomUUID() },
        { Metadata: "true" },
        "Identity not found",
      ],
      [
        {
          "api-version": "2018-02-01",
          resource: RESOURCE,
          client_id: user().clientId,
          object_id: user().objectId,
        },
        { Metadata: "true" },
        "Only one of",
      ],
      [
        { "api-version": "2018-02-01", resource: RESOURCE },
        { Metadata: "true", "X-Forwarded-For": "10.0.0.1" },
        "X-Forwarded-For",
      ],
    ];
    for (const [query, headers, why] of cases) {
      const response = await imds(query, headers);
      expect(response.status, why).toBe(400);
      const json = await body(response);
      expect(json.error).toBe("invalid_request");
      expect(String(json.error_description)).toContain(why);
    }
  });

  it("needs a selector when the host has several user-assigned identities and no system one", async () => {
    const emulator = await createEmulator({ systemAssigned: false, userAssigned: 2 });
    const response = await emulator.fetch(
      new Request(
        url("http://169.254.169.254", EMULATOR_PATHS.imds, {
          "api-version": "2018-02-01",
          resource: RESOURCE,
        }),
        { headers: { Metadata: "true" } },
      ),
    );
    expect(response.status).toBe(400);
    expect(String((await body(response)).error_description)).toMatch(/Multiple user assigned/);
  });
});

describe("App Service", () => {
  const appService = (query: Record<string, string>, secret?: string) =>
    fetch(url(running.http, EMULATOR_PATHS["app-service"], query), {
      headers: secret === undefined ? {} : { "X-IDENTITY-HEADER": secret },
    });
  const ok = { "api-version": "2019-08-01", resource: RESOURCE };

  it("answers with expires_on only, and selects by mi_res_id", async () => {
    const response = await appService(
      { ...ok, mi_res_id: user().resourceId },
      running.emulator.secrets.appService,
    );
    const json = await body(response);
    expect(response.status).toBe(200);
    expect(json.expires_in).toBeUndefined();
    expect(json.client_id).toBe(user().clientId);
    expect(Number(json.expires_on)).toBeGreaterThan(Date.now() / 1000);
  });

  it("ignores IMDS's msi_res_id spelling (the trap) and answers as the system identity", async () => {
    const json = await body(
      await appService(
        { ...ok, msi_res_id: user().resourceId },
        running.emulator.secrets.appService,
      ),
    );
    expect(json.client_id).toBe(system().clientId);
  });

  it("refuses a missing or wrong secret header and a wrong api-version, in its own error format", async () => {
    for (const [query, secret, status] of [
      [ok, undefined, 401],
      [ok, "wrong", 401],
      [{ ...ok, "api-version": "2017-09-01" }, running.emulator.secrets.appService, 400],
    ] as const) {
      const response = await appService(query, secret);
      expect(response.status).toBe(status);
      const json = await body(response);
      expect(json).toMatchObject({ statusCode: status });
      expect(typeof json.correlationId).toBe("string");
    }
  });
});

describe("Service Fabric", () => {
  const ok = { "api-version": "2019-07-01-preview", resource: RESOURCE };
  const serviceFabric = (origin: string, query: Record<string, string>, secret?: string) =>
    running.fetch(url(origin, EMULATOR_PATHS["service-fabric"], query), {
      headers: secret === undefined ? {} : { secret },
    });

  it("serves https with a self-signed certificate whose SHA-1 thumbprint it reports", async () => {
    const certificate = new X509Certificate(running.certificate.cert);
    expect(certificate.fingerprint.replaceAll(":", "")).toBe(running.thumbprint);
    expect(certificate.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(running.env("service-fabric").IDENTITY_SERVER_THUMBPRINT).toBe(running.thumbprint);
    // The certificate the server presents on the wire is the one reported.
    const { port } = new URL(running.https);
    const presented = await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: "127.0.0.1", port: Number(port), rejectUnauthorized: false },
        () => {
          resolve(socket.getPeerX509Certificate()?.fingerprint ?? "");
          socket.end();
        },
      );
      socket.on("error", reject);
    });
    expect(presented.replaceAll(":", "")).toBe(running.thumbprint);
    expect(readFileSync(running.certificateFile, "utf8")).toBe(running.certificate.cert);
  });

  it("issues a token with a numeric expires_on and records the revocation parameters", async () => {
    const response = await serviceFabric(
      running.https,
      { ...ok, token_sha256_to_refresh: "ab".repeat(32), xms_cc: "cp1" },
      running.emulator.secrets.serviceFabric,
    );
    expect(response.status).toBe(200);
    const json = await body(response);
    expect(typeof json.expires_on).toBe("number");
    expect(json.token_type).toBe("Bearer");
    expect(running.emulator.requests.at(-1)?.query).toMatchObject({
      token_sha256_to_refresh: "ab".repeat(32),
      xms_cc: "cp1",
    });
  });

  it("answers with Service Fabric's error codes and refuses plain http", async () => {
    const missing = await serviceFabric(running.https, ok);
    expect(missing.status).toBe(401);
    expect(await body(missing)).toMatchObject({ error: { code: "SecretHeaderNotFound" } });
    const noResource = await serviceFabric(
      running.https,
      { "api-version": ok["api-version"] },
      running.emulator.secrets.serviceFabric,
    );
    expect(await body(noResource)).toMatchObject({ error: { code: "ArgumentNullOrEmpty" } });
    const version = await serviceFabric(
      running.https,
      { ...ok, "api-version": "2019-08-01" },
      running.emulator.secrets.serviceFabric,
    );
    expect(version.status).toBe(400);
    const plain = await fetch(url(running.http, EMULATOR_PATHS["service-fabric"], ok), {
      headers: { secret: running.emulator.secrets.serviceFabric },
    });
    expect(plain.status).toBe(400);
  });
});

describe("Machine Learning", () => {
  const ok = { "api-version": "2017-09-01", resource: RESOURCE };
  const machineLearning = (query: Record<string, string>, secret?: string) =>
    fetch(url(running.http, EMULATOR_PATHS["machine-learning"], query), {
      headers: { Metadata: "true", ...(secret === undefined ? {} : { secret }) },
    });

  it("selects by clientid (no underscore) and ignores client_id", async () => {
    const secret = running.emulator.secrets.machineLearning;
    const chosen = await body(await machineLearning({ ...ok, clientid: user().clientId }, secret));
    expect(decodeJwt(String(chosen.access_token)).appid).toBe(user().clientId);
    const trap = await body(await machineLearning({ ...ok, client_id: user().clientId }, secret));
    expect(decodeJwt(String(trap.access_token)).appid).toBe(system().clientId);
    expect(running.env("machine-learning").DEFAULT_IDENTITY_CLIENT_ID).toBe(system().clientId);
  });

  it("refuses a missing secret, an unknown clientid and a wrong api-version", async () => {
    const secret = running.emulator.secrets.machineLearning;
    expect((await machineLearning(ok)).status).toBe(401);
    expect((await machineLearning({ ...ok, clientid: crypto.randomUUID() }, secret)).status).toBe(
      400,
    );
    expect((await machineLearning({ ...ok, "api-version": "2019-08-01" }, secret)).status).toBe(
      400,
    );
  });
});

describe("Cloud Shell", () => {
  const endpoint = () => `${running.http}${EMULATOR_PATHS["cloud-shell"]}`;

  it("takes a POST form and issues the signed-in user's token", async () => {
    const response = await fetch(endpoint(), {
      method: "POST",
      headers: { Metadata: "true" },
      body: new URLSearchParams({ resource: RESOURCE }),
    });
    expect(response.status).toBe(200);
    const claims = decodeJwt(String((await body(response)).access_token));
    expect(claims).toMatchObject({
      oid: running.emulator.cloudShellUser.objectId,
      upn: running.emulator.cloudShellUser.userPrincipalName,
      idtyp: "user",
    });
    expect(claims.appid).toBeUndefined();
    expect(running.emulator.requests.at(-1)?.form).toEqual({ resource: RESOURCE });
  });

  it("refuses GET, a missing Metadata header and a missing resource", async () => {
    expect((await fetch(endpoint(), { headers: { Metadata: "true" } })).status).toBe(405);
    const noMetadata = await fetch(endpoint(), {
      method: "POST",
      body: new URLSearchParams({ resource: RESOURCE }),
    });
    expect(noMetadata.status).toBe(400);
    expect(await body(noMetadata)).toMatchObject({ error: { code: "BadRequest" } });
    const noResource = await fetch(endpoint(), {
      method: "POST",
      headers: { Metadata: "true" },
      body: new URLSearchParams({ other: "x" }),
    });
    expect(noResource.status).toBe(400);
  });
});

describe("Azure Arc", () => {
  const ok = { "api-version": "2020-06-01", resource: RESOURCE };
  const arc = (
    query: Record<string, string>,
    headers: Record<string, string> = { Metadata: "true" },
  ) => fetch(url(running.http, EMULATOR_PATHS["azure-arc"], query), { headers });

  async function challenge(query: Record<string, string> = ok): Promise<string> {
    const response = await arc(query);
    expect(response.status).toBe(401);
    const realm = /^Basic realm=(.+)$/.exec(response.headers.get("www-authenticate") ?? "")?.[1];
    if (!realm) return expect.fail("no Basic realm challenge");
    return realm;
  }

  it("challenges with a real .key file in its folder, then answers the Basic key with an echo", async () => {
    const realm = await challenge();
    expect(realm.startsWith(`${running.arcKeyDirectory}/`)).toBe(true);
    expect(realm.endsWith(".key")).toBe(true);
    expect(statSync(realm).mode & 0o777).toBe(0o600);
    const key = readFileSync(realm, "utf8");
    const query = { ...ok, msi_res_id: user().resourceId };
    const response = await arc(query, { Metadata: "true", Authorization: `Basic ${key}` });
    expect(response.status).toBe(200);
    expect(await body(response)).toMatchObject({
      client_id: user().clientId,
      object_id: user().objectId,
      msi_res_id: user().resourceId,
    });
  });

  it("challenges again for a wrong key, and ignores mi_res_id (answers as the system identity)", async () => {
    expect(existsSync(await challenge())).toBe(true);
    const wrong = await arc(ok, { Metadata: "true", Authorization: "Basic not-the-key" });
    expect(wrong.status).toBe(401);
    const key = readFileSync(await challenge(), "utf8");
    const json = await body(
      await arc(
        { ...ok, mi_res_id: user().resourceId },
        { Metadata: "true", Authorization: `Basic ${key}` },
      ),
    );
    expect(json.client_id).toBe(system().clientId);
  });

  it("accepts the agent's older api-version, refuses others and a missing Metadata header", async () => {
    await challenge({ ...ok, "api-version": "2019-11-01" });
    expect((await arc({ ...ok, "api-version": "2018-02-01" })).status).toBe(400);
    expect((await arc(ok, {})).status).toBe(400);
  });

  it("answers 500 when it was given no folder for key files", async () => {
    const emulator = await createEmulator();
    const response = await emulator.fetch(
      new Request(url("http://127.0.0.1", EMULATOR_PATHS["azure-arc"], ok), {
        headers: { Metadata: "true" },
      }),
    );
    expect(response.status).toBe(500);
  });
});

describe("workload identity", () => {
  const tokenUrl = (tenant = running.emulator.tenantId, origin = running.https) =>
    `${origin}/${tenant}/oauth2/v2.0/token`;
  const form = (overrides: Record<string, string> = {}) =>
    new URLSearchParams({
      grant_type: "client_credentials",
      client_id: user().clientId,
      scope: `${RESOURCE}/.default`,
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
      client_assertion: readFileSync(running.federatedTokenFile, "utf8"),
      ...overrides,
    });

  it("exchanges the federated token file's assertion for an access token", async () => {
    const response = await running.fetch(tokenUrl(), { method: "POST", body: form() });
    expect(response.status).toBe(200);
    const json = await body(response);
    expect(json).toMatchObject({ token_type: "Bearer", expires_in: 86399 });
    expect(decodeJwt(String(json.access_token))).toMatchObject({
      aud: RESOURCE,
      appid: user().clientId,
    });
    expect(running.env("workload-identity")).toMatchObject({
      AZURE_AUTHORITY_HOST: running.https,
      AZURE_TENANT_ID: running.emulator.tenantId,
      AZURE_CLIENT_ID: user().clientId,
      AZURE_FEDERATED_TOKEN_FILE: running.federatedTokenFile,
    });
  });

  it("refuses what Entra ID refuses, with AADSTS codes", async () => {
    const cases: [string, URLSearchParams, string, number][] = [
      [tokenUrl(crypto.randomUUID()), form(), "invalid_request", 90002],
      [tokenUrl(), form({ scope: RESOURCE }), "invalid_scope", 1002012],
      [tokenUrl(), form({ client_id: crypto.randomUUID() }), "unauthorized_client", 700016],
      [
        tokenUrl(),
        form({ client_assertion: "eyJhbGciOiJub25lIn0.e30." }),
        "invalid_client",
        700211,
      ],
      [tokenUrl(), form({ grant_type: "password" }), "unsupported_grant_type", 70003],
      [tokenUrl(), form({ client_assertion_type: "x" }), "invalid_request", 700023],
    ];
    for (const [target, payload, error, code] of cases) {
      const response = await running.fetch(target, { method: "POST", body: payload });
      expect(response.status, error).toBe(400);
      expect(await body(response)).toMatchObject({ error, error_codes: [code] });
    }
    const plain = await fetch(tokenUrl(running.emulator.tenantId, running.http), {
      method: "POST",
      body: form(),
    });
    expect(plain.status).toBe(400);
  });

  it("refuses an expired assertion (the emulator's clock is injectable)", async () => {
    let now = Date.now();
    const emulator = await createEmulator({ now: () => now });
    const assertion = await emulator.federatedToken({ lifetime: 600 });
    const send = () =>
      emulator.fetch(
        new Request(`https://login.emulator.test/${emulator.tenantId}/oauth2/v2.0/token`, {
          method: "POST",
          body: new URLSearchParams({
            grant_type: "client_credentials",
            client_id: emulator.userAssigned[0]?.clientId ?? "",
            scope: `${RESOURCE}/.default`,
            client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion: assertion,
          }),
        }),
      );
    expect((await send()).status).toBe(200);
    now += 601_000;
    const expired = await send();
    expect(await body(expired)).toMatchObject({ error: "invalid_client" });
  });
});

describe("tokens and JWKS", () => {
  it("signs RS256 tokens with aud, oid, appid, xms_mirid, iat, nbf, exp that verify against the served JWKS", async () => {
    const response = await fetch(
      url(running.http, EMULATOR_PATHS.imds, {
        "api-version": "2018-02-01",
        resource: RESOURCE,
        client_id: user().clientId,
      }),
      { headers: { Metadata: "true" } },
    );
    const token = String((await body(response)).access_token);
    const jwks = createRemoteJWKSet(new URL(`${running.http}/discovery/keys`));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      audience: RESOURCE,
      issuer: running.emulator.issuer,
      algorithms: ["RS256"],
    });
    expect(protectedHeader.alg).toBe("RS256");
    expect(payload).toMatchObject({
      oid: user().objectId,
      sub: user().objectId,
      appid: user().clientId,
      xms_mirid: user().resourceId,
      tid: running.emulator.tenantId,
    });
    expect(payload.nbf).toBe(payload.iat);
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(86399);
    // A token changed after signing does not verify.
    const [header, claims, signature] = token.split(".");
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...payload, oid: "someone-else" })).toString("base64url")}.${signature}`;
    expect(claims).not.toBe(forged.split(".")[1]);
    await expect(jwtVerify(forged, jwks)).rejects.toThrow();
  });

  it("serves the OpenID configuration that points at the JWKS", async () => {
    const response = await fetch(
      `${running.http}/${running.emulator.tenantId}/v2.0/.well-known/openid-configuration`,
    );
    const json = await body(response);
    expect(json.jwks_uri).toBe(`${running.http}/discovery/v2.0/keys`);
    const keys = await body(await fetch(String(json.jwks_uri)));
    expect(keys).toEqual(running.emulator.jwks);
  });

  it("runs in-process as a plain fetch handler, with no server", async () => {
    const emulator = await createEmulator();
    const response = await emulator.fetch(
      new Request(
        `http://169.254.169.254${EMULATOR_PATHS.imds}?api-version=2018-02-01&resource=${encodeURIComponent(RESOURCE)}`,
        { headers: { Metadata: "true" } },
      ),
    );
    expect(response.status).toBe(200);
    expect(emulator.requests).toHaveLength(1);
    expect(emulator.requests[0]).toMatchObject({ source: "imds", status: 200, faults: [] });
  });
});
