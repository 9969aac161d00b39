import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  jwtVerify,
  SignJWT,
} from "jose";

/** The issuer of the emulator's access tokens for a tenant, as Entra ID's v1 tokens name it. */
export function tokenIssuer(tenantId: string): string {
  return `https://sts.windows.net/${tenantId}/`;
}

/** The audience Entra ID expects on a federated (workload identity) assertion. */
export const FEDERATED_TOKEN_AUDIENCE = "api://AzureADTokenExchange";

/** What goes into one access token. */
export interface AccessTokenClaims {
  /** The resource (becomes `aud`). */
  resource: string;
  tenantId: string;
  /** The principal's object id (`oid`, `sub`). */
  objectId: string;
  /** The application (client) id, for app tokens (`appid`). */
  clientId?: string | undefined;
  /** The managed identity's ARM resource id (`xms_mirid`). */
  resourceId?: string | undefined;
  /** The user's name, for Cloud Shell's delegated tokens (`upn`). */
  userPrincipalName?: string | undefined;
  /** Issued at, epoch seconds. */
  issuedAt: number;
  /** Lifetime in seconds. */
  lifetime: number;
}

/**
 * The emulator's RS256 signing key and its JWKS. Tokens are real JWTs so that an app (or a test)
 * can validate what it received exactly as it would validate Entra ID's.
 */
export class TokenSigner {
  readonly #privateKey: CryptoKey;
  readonly #publicKey: CryptoKey;
  readonly #jwk: JWK;

  private constructor(privateKey: CryptoKey, publicKey: CryptoKey, jwk: JWK) {
    this.#privateKey = privateKey;
    this.#publicKey = publicKey;
    this.#jwk = jwk;
  }

  /** Generates a fresh key pair. */
  static async create(): Promise<TokenSigner> {
    const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
    const jwk = await exportJWK(publicKey);
    jwk.kid = await calculateJwkThumbprint(jwk);
    jwk.alg = "RS256";
    jwk.use = "sig";
    return new TokenSigner(privateKey, publicKey, jwk);
  }

  /** The key id in every token's header. */
  get keyId(): string {
    return this.#jwk.kid ?? "";
  }

  /** The public keys, as served at `/discovery/keys`. */
  get jwks(): JSONWebKeySet {
    return { keys: [{ ...this.#jwk }] };
  }

  /** Signs an access token. */
  async accessToken(claims: AccessTokenClaims): Promise<string> {
    const payload: Record<string, unknown> = {
      oid: claims.objectId,
      tid: claims.tenantId,
      uti: crypto.randomUUID().replaceAll("-", ""),
      ver: "1.0",
    };
    if (claims.userPrincipalName !== undefined) {
      payload.upn = claims.userPrincipalName;
      payload.idtyp = "user";
    } else {
      payload.appid = claims.clientId;
      payload.appidacr = "2";
      payload.idtyp = "app";
    }
    if (claims.resourceId !== undefined) payload.xms_mirid = claims.resourceId;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.keyId })
      .setIssuer(tokenIssuer(claims.tenantId))
      .setSubject(claims.objectId)
      .setAudience(claims.resource)
      .setIssuedAt(claims.issuedAt)
      .setNotBefore(claims.issuedAt)
      .setExpirationTime(claims.issuedAt + claims.lifetime)
      .sign(this.#privateKey);
  }

  /** Signs a Kubernetes service account token for workload identity's client assertion. */
  async federatedToken(options: {
    issuer: string;
    subject: string;
    issuedAt: number;
    lifetime: number;
  }): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.keyId })
      .setIssuer(options.issuer)
      .setSubject(options.subject)
      .setAudience(FEDERATED_TOKEN_AUDIENCE)
      .setIssuedAt(options.issuedAt)
      .setNotBefore(options.issuedAt)
      .setExpirationTime(options.issuedAt + options.lifetime)
      .sign(this.#privateKey);
  }

  /** Verifies a federated assertion this emulator issued; returns its subject, or why it is refused. */
  async verifyFederatedToken(
    token: string,
    issuer: string,
    now: number,
  ): Promise<{ subject: string } | { problem: string }> {
    try {
      const { payload } = await jwtVerify(token, this.#publicKey, {
        issuer,
        audience: FEDERATED_TOKEN_AUDIENCE,
        currentDate: new Date(now * 1000),
        algorithms: ["RS256"],
      });
      return { subject: payload.sub ?? "" };
    } catch (error) {
      return { problem: error instanceof Error ? error.message : "invalid assertion" };
    }
  }
}
