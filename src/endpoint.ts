import { ManagedIdentityError } from "./errors.ts";
import type { ManagedIdentitySource, TokenRequest } from "./sources/types.ts";

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Whether a URL host (as WHATWG URL normalises it) is loopback or link-local. */
export function isLocalHost(hostname: string): boolean {
  if (hostname === "localhost" || hostname === "[::1]") return true;
  const octets = IPV4.exec(hostname);
  if (!octets) return false;
  const [first, second] = [Number(octets[1]), Number(octets[2])];
  return first === 127 || (first === 169 && second === 254);
}

/**
 * Refuses an endpoint a managed identity secret must not be sent to. Endpoints from the
 * environment must be loopback or link-local unless their host is in `allowedHosts`; URL
 * normalisation already turns tricks like `0x7f.1` into `127.0.0.1`, and a host such as
 * `169.254.169.254.evil.example` or `127.0.0.1@evil.example` is simply not local. A token
 * authority must be https.
 */
export function assertEndpointAllowed(
  request: TokenRequest,
  source: ManagedIdentitySource,
  allowedHosts: readonly string[],
): URL {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    throw new ManagedIdentityError(
      "endpoint_not_allowed",
      `The ${source} endpoint is not a valid URL.`,
      { source },
    );
  }
  const refuse = (why: string): never => {
    throw new ManagedIdentityError("endpoint_not_allowed", `The ${source} endpoint ${why}.`, {
      source,
    });
  };
  if (url.protocol !== "http:" && url.protocol !== "https:")
    refuse(`must be http or https, not ${url.protocol}`);
  if (url.username || url.password) refuse("must not contain a user name or password");
  if (request.pinnedThumbprint !== undefined) {
    // Service Fabric's endpoint is the node's own address, not loopback; its certificate pin is
    // the trust anchor, and the secret is written only after the pin matched.
    if (url.protocol !== "https:") refuse("is pinned to a certificate and must use https");
    return url;
  }
  if (request.endpointKind === "authority") {
    if (url.protocol !== "https:") refuse("(a token authority) must use https");
    return url;
  }
  const host = url.hostname.toLowerCase();
  if (!isLocalHost(host) && !allowedHosts.some((allowed) => allowed.toLowerCase() === host)) {
    refuse(
      `host ${host} is neither loopback nor link-local; if this endpoint is trusted (an emulator in another container), list the host in the allowedHosts option`,
    );
  }
  return url;
}
