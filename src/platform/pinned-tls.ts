/**
 * One https request over a TLS connection pinned to the server's leaf certificate, built on the
 * Node built-ins `node:tls`, `node:http`, `node:crypto` and `node:stream`. Node, Bun and Deno (its
 * Node compatibility layer) all provide them with the behaviour relied on here; the built-ins come
 * from `process.getBuiltinModule`, typed structurally, so the core compiles without @types/node.
 */

/** Gets a Node built-in module (`process.getBuiltinModule`). */
export type BuiltinModuleLoader = (id: string) => unknown;

/** The pinned fetch of {@link Platform.pinnedFetch}. */
export type PinnedFetch = (
  input: string | URL | Request,
  init: RequestInit | undefined,
  sha1Thumbprint: string,
) => Promise<Response>;

interface EventSource {
  on(event: string, listener: (...args: never[]) => void): unknown;
  once(event: string, listener: (...args: never[]) => void): unknown;
}
interface TlsSocket extends EventSource {
  getPeerCertificate(): { raw?: Uint8Array } | null;
  destroy(error?: unknown): void;
}
interface TlsModule {
  connect(options: {
    host: string;
    port: number;
    servername?: string;
    rejectUnauthorized: boolean;
    checkServerIdentity: () => undefined;
    ALPNProtocols: string[];
  }): TlsSocket;
}
interface NetModule {
  isIP(host: string): number;
}
interface CryptoModule {
  createHash(algorithm: "sha1"): { update(data: Uint8Array): { digest(): Uint8Array } };
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
}
interface IncomingMessage extends EventSource {
  statusCode?: number;
  statusMessage?: string;
  rawHeaders: string[];
  destroy(error?: unknown): void;
}
interface ClientRequest extends EventSource {
  end(body?: Uint8Array): void;
  destroy(error?: unknown): void;
}
interface HttpModule {
  request(options: {
    method: string;
    path: string;
    headers: Record<string, string>;
    setHost: boolean;
    createConnection: () => TlsSocket;
  }): ClientRequest;
}
interface StreamModule {
  Readable: { toWeb(readable: IncomingMessage): ReadableStream<Uint8Array> };
}

/** Statuses whose response has no body, which the Response constructor insists on. */
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

function thumbprintBytes(sha1Thumbprint: string): Uint8Array {
  if (!/^[0-9a-f]{40}$/.test(sha1Thumbprint)) {
    throw new TypeError("The pinned thumbprint must be 40 lower-case hexadecimal characters.");
  }
  const bytes = new Uint8Array(20);
  for (let index = 0; index < 20; index++) {
    bytes[index] = Number.parseInt(sha1Thumbprint.slice(index * 2, index * 2 + 2), 16);
  }
  return bytes;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/** Opens a TLS connection and resolves once the leaf certificate matched the pin. */
function connectPinned(
  modules: { tls: TlsModule; net: NetModule; crypto: CryptoModule },
  url: URL,
  expected: Uint8Array,
  signal: AbortSignal,
): Promise<TlsSocket> {
  return new Promise((resolve, reject) => {
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const socket = modules.tls.connect({
      host,
      port: url.port === "" ? 443 : Number(url.port),
      // SNI cannot carry an IP address (Node warns when asked to).
      ...(modules.net.isIP(host) === 0 ? { servername: host } : {}),
      // The pin is the trust anchor: the endpoint's certificate is self-signed and issued for no
      // particular host name, so chain and host name checks would only ever fail.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ALPNProtocols: ["http/1.1"],
    });
    const onAbort = () => {
      socket.destroy();
      reject(abortReason(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", (error: unknown) => {
      signal.removeEventListener("abort", onAbort);
      reject(error);
    });
    socket.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      // Nothing has been written yet: the request, and the secret in it, waits for this check.
      const raw = socket.getPeerCertificate()?.raw;
      const actual = raw ? modules.crypto.createHash("sha1").update(raw).digest() : undefined;
      if (
        !actual ||
        actual.length !== expected.length ||
        !modules.crypto.timingSafeEqual(actual, expected)
      ) {
        socket.destroy();
        const mismatch = new Error(
          "The server's TLS certificate did not match the pinned SHA-1 thumbprint; the connection was closed before anything was sent.",
        );
        // The client turns this name into the certificate_mismatch code (see Platform.pinnedFetch).
        mismatch.name = "CertificateMismatchError";
        reject(mismatch);
        return;
      }
      resolve(socket);
    });
  });
}

/** Sends one HTTP/1.1 request over the pinned socket and resolves with the response head. */
function exchange(
  modules: { http: HttpModule; stream: StreamModule },
  socket: TlsSocket,
  request: Request,
  url: URL,
  body: Uint8Array | undefined,
  signal: AbortSignal,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    request.headers.forEach((value, name) => {
      headers[name] = value;
    });
    headers.host = url.host;
    if (body) headers["content-length"] = String(body.byteLength);
    // No agent: this request owns the socket, and the server is told to close it afterwards.
    const outgoing = modules.http.request({
      method: request.method,
      path: `${url.pathname}${url.search}`,
      headers,
      setHost: false,
      createConnection: () => socket,
    });
    let incoming: IncomingMessage | undefined;
    const onAbort = () => {
      const reason = abortReason(signal);
      incoming?.destroy(reason);
      outgoing.destroy(reason);
      socket.destroy();
      reject(reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const settled = () => signal.removeEventListener("abort", onAbort);
    outgoing.once("error", (error: unknown) => {
      settled();
      socket.destroy();
      reject(error);
    });
    outgoing.once("response", (response: IncomingMessage) => {
      incoming = response;
      response.once("close", settled);
      const status = response.statusCode ?? 0;
      const responseHeaders = new Headers();
      for (let index = 0; index + 1 < response.rawHeaders.length; index += 2) {
        try {
          responseHeaders.append(
            response.rawHeaders[index] as string,
            response.rawHeaders[index + 1] as string,
          );
        } catch {
          // A header the Fetch standard cannot represent is dropped, as fetch itself would.
        }
      }
      try {
        const bodyStream = NULL_BODY_STATUSES.has(status)
          ? null
          : modules.stream.Readable.toWeb(response);
        if (bodyStream === null) response.destroy();
        resolve(
          new Response(bodyStream, {
            status,
            statusText: response.statusMessage ?? "",
            headers: responseHeaders,
          }),
        );
      } catch (error) {
        // A status outside 200–599 cannot be a Response.
        response.destroy();
        socket.destroy();
        settled();
        reject(error);
      }
    });
    outgoing.end(body);
  });
}

/**
 * A pinned fetch built on the Node built-ins that `load` provides, or undefined when one of them
 * is missing.
 */
export function createPinnedFetch(load: BuiltinModuleLoader): PinnedFetch | undefined {
  const tls = load("node:tls") as TlsModule | undefined;
  const net = load("node:net") as NetModule | undefined;
  const crypto = load("node:crypto") as CryptoModule | undefined;
  const http = load("node:http") as HttpModule | undefined;
  const stream = load("node:stream") as StreamModule | undefined;
  if (!tls || !net || !crypto || !http || !stream) return undefined;
  return async (input, init, sha1Thumbprint) => {
    const expected = thumbprintBytes(sha1Thumbprint);
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.protocol !== "https:") {
      throw new TypeError(`A pinned request must use https, not ${url.protocol}`);
    }
    // The caller's own signal, not the Request's copy: on Node 20 a copy that follows another
    // signal can miss its abort once garbage collection has run.
    const signal =
      init?.signal ?? (input instanceof Request ? input.signal : new AbortController().signal);
    if (signal.aborted) throw abortReason(signal);
    const body = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const socket = await connectPinned({ tls, net, crypto }, url, expected, signal);
    return exchange({ http, stream }, socket, request, url, body, signal);
  };
}
