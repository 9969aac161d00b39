import { type Server, type ServerRequest, serve } from "srvx";
import { createSelfSignedCertificate, type SelfSignedCertificate } from "./certificate.ts";
import { createEmulator, type Emulator, type EmulatorOptions } from "./emulator.ts";
import { type EmulatorEndpoints, emulatorEnvironment } from "./environment.ts";
import type { EmulatorSource } from "./faults.ts";

/*
 * The serve helper runs where srvx does (Node, Deno, Bun) and writes real files (Arc's key files,
 * workload identity's token). Node's built-ins come from `process.getBuiltinModule` and are typed
 * structurally, as in src/platform/node.ts, so this file compiles with the core's `"types": []`.
 */
interface NodeFs {
  mkdtemp(prefix: string): Promise<string>;
  mkdir(path: string, options: { recursive: true; mode?: number }): Promise<unknown>;
  writeFile(path: string, data: string, options: { mode: number }): Promise<void>;
  rm(path: string, options: { recursive: true; force: true }): Promise<void>;
}
interface NodeHttpsResponse {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  complete: boolean;
  on(event: "data", listener: (chunk: Uint8Array) => void): void;
  on(event: "end" | "close", listener: () => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  pause(): void;
  resume(): void;
  destroy(error?: Error): void;
}
interface NodeHttpsRequest {
  on(event: "error", listener: (error: Error) => void): void;
  on(event: "close", listener: () => void): void;
  destroy(error?: Error): void;
  end(body?: string): void;
}
interface NodeHttps {
  request(
    url: string,
    options: { method: string; headers: Record<string, string>; ca: string },
    callback: (response: NodeHttpsResponse) => void,
  ): NodeHttpsRequest;
}
interface NodeProcess {
  getBuiltinModule?(id: string): unknown;
}

function builtin<T>(id: string): T {
  const process = (globalThis as { process?: NodeProcess }).process;
  const module = process?.getBuiltinModule?.(id) as T | undefined;
  if (!module) {
    throw new Error(
      `The emulator's serve helper needs ${id} (Node 20.16+, Deno 2 or Bun); call createEmulator() and serve its fetch yourself elsewhere.`,
    );
  }
  return module;
}

/** Options of {@link serveEmulator}: the emulator's own options plus where it listens. */
export interface ServeEmulatorOptions extends EmulatorOptions {
  /**
   * The address to listen on. Keep it loopback: clients send secrets here.
   * @default "127.0.0.1"
   */
  hostname?: string;
  /**
   * The http port (IMDS, App Service, Machine Learning, Cloud Shell, Azure Arc).
   * @default 0 (any free port)
   */
  port?: number | undefined;
  /**
   * The https port (Service Fabric, workload identity's authority).
   * @default 0 (any free port)
   */
  httpsPort?: number | undefined;
  /**
   * A folder for the files the emulator writes (Arc key files, the federated token).
   * @default a new temporary folder, removed by `close()`
   */
  directory?: string;
  /**
   * Where Arc's key files are written.
   * @default `<directory>/arc-tokens`
   */
  arcKeyDirectory?: string;
  /**
   * The folder Arc's challenge names, when it differs from where the files are (a client that only
   * reads from the agent's folder, with that folder mapped onto `arcKeyDirectory`).
   * @default arcKeyDirectory
   */
  arcReportedDirectory?: string;
  /**
   * The https certificate.
   * @default a new self-signed certificate for 127.0.0.1 and localhost
   */
  certificate?: SelfSignedCertificate;
}

/** A served emulator. */
export interface RunningEmulator extends EmulatorEndpoints {
  readonly emulator: Emulator;
  /** The https certificate (PEM) and its thumbprint. */
  readonly certificate: SelfSignedCertificate;
  /** The folder the emulator writes to. */
  readonly directory: string;
  /** Where Arc's key files are written. */
  readonly arcKeyDirectory: string;
  /** The https certificate as a PEM file, for `NODE_EXTRA_CA_CERTS` or a client's `ca`. */
  readonly certificateFile: string;
  /** The environment variables that select `source` and point it here. */
  env(source: EmulatorSource): Record<string, string>;
  /**
   * A fetch that trusts this emulator's https certificate (and nothing else that is self-signed),
   * for clients whose global fetch would refuse it: workload identity's authority is https.
   * Plain http requests go to the global fetch.
   */
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
  /** Stops both servers, releases hanging requests and removes a temporary folder. */
  close(): Promise<void>;
}

function joinPath(folder: string, name: string): string {
  const separator = folder.includes("\\") && !folder.includes("/") ? "\\" : "/";
  return folder.endsWith(separator) ? `${folder}${name}` : `${folder}${separator}${name}`;
}

function temporaryFolder(): string {
  const os = builtin<{ tmpdir(): string }>("node:os");
  return joinPath(os.tmpdir(), "managed-identity-emulator-");
}

function dropNodeConnection(request: Request): boolean {
  const socket = (request as ServerRequest).runtime?.node?.req.socket as
    | { destroy(): void }
    | undefined;
  if (!socket) return false;
  socket.destroy();
  return true;
}

function origin(server: Server, protocol: "http" | "https", hostname: string): string {
  const address = (
    server.node?.server as { address(): { port: number } | string | null } | undefined
  )?.address();
  if (address && typeof address === "object") return `${protocol}://${hostname}:${address.port}`;
  return new URL(server.url ?? "").origin;
}

/** A Node response body as a Web stream that pulls as it is read. */
function bodyStream(response: NodeHttpsResponse): ReadableStream<Uint8Array> {
  let ended = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      response.pause();
      response.on("data", (chunk) => {
        if (ended) return;
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) response.pause();
      });
      response.on("end", () => {
        if (ended) return;
        ended = true;
        controller.close();
      });
      const fail = (error: Error) => {
        if (!ended) {
          ended = true;
          controller.error(error);
        }
      };
      response.on("error", fail);
      response.on("close", () => {
        if (!response.complete) fail(new Error("The connection closed before the body ended."));
      });
    },
    pull() {
      response.resume();
    },
    cancel() {
      ended = true;
      response.destroy();
    },
  });
}

function trustingFetch(ca: string) {
  const https = builtin<NodeHttps>("node:https");
  return async (input: Request | string | URL, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    // Plain http needs no trust decision: the global fetch does it. Hand it the caller's own
    // arguments: a Request re-made from them follows the caller's signal only through a weak
    // reference in Node's fetch, so after a garbage collection an abort would be lost.
    if (new URL(url).protocol !== "https:") return globalThis.fetch(input, init);
    // Read what is sent without making a Request: Node's Request keeps the caller's signal, and
    // whatever listens to it, alive for as long as the Request lives.
    const original = input instanceof Request ? input : undefined;
    const method = init?.method ?? original?.method ?? "GET";
    const sent = new Headers(init?.headers ?? original?.headers);
    const signal = init?.signal ?? original?.signal;
    let body: string | undefined;
    if (init?.body !== undefined && init.body !== null) {
      // A Response reads any body type and names its content type (a form, say) as fetch would.
      const carrier = new Response(init.body);
      const type = carrier.headers.get("content-type");
      if (type !== null && !sent.has("content-type")) sent.set("content-type", type);
      body = await carrier.text();
    } else if (original?.body) body = await original.text();
    const headers = Object.fromEntries(sent);
    return new Promise<Response>((resolve, reject) => {
      const outgoing = https.request(url, { method, headers, ca }, (response) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(response.headers)) {
          if (value !== undefined)
            headers.set(name, Array.isArray(value) ? value.join(", ") : value);
        }
        const status = response.statusCode ?? 500;
        const empty = status === 204 || status === 304 || method === "HEAD";
        if (empty) response.resume();
        // The body streams as the caller reads it, as the global fetch's does: a caller that
        // caps a body stops the download, and a connection reset mid-body fails the read.
        resolve(new Response(empty ? null : bodyStream(response), { status, headers }));
      });
      outgoing.on("error", reject);
      const abort = () => outgoing.destroy(new Error("The request was aborted."));
      if (signal?.aborted) abort();
      else signal?.addEventListener("abort", abort, { once: true });
      // A finished exchange must not stay reachable from a signal that outlives it.
      outgoing.on("close", () => signal?.removeEventListener("abort", abort));
      outgoing.end(body);
    });
  };
}

/**
 * Serves the emulator on 127.0.0.1: one http server for the local back-ends and one https server
 * (self-signed) for Service Fabric and workload identity's authority. Arc's key files and the
 * federated token are real files in `directory`.
 *
 * @example
 * const running = await serveEmulator();
 * const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), { env: running.env("imds") });
 * await running.close();
 */
export async function serveEmulator(options: ServeEmulatorOptions = {}): Promise<RunningEmulator> {
  const fs = builtin<{ promises: NodeFs }>("node:fs").promises;
  const hostname = options.hostname ?? "127.0.0.1";
  const ownsDirectory = options.directory === undefined;
  const directory = options.directory ?? (await fs.mkdtemp(temporaryFolder()));
  const arcKeyDirectory = options.arcKeyDirectory ?? joinPath(directory, "arc-tokens");
  const arcReportedDirectory = options.arcReportedDirectory ?? arcKeyDirectory;
  await fs.mkdir(arcKeyDirectory, { recursive: true, mode: 0o700 });
  const certificate = options.certificate ?? (await createSelfSignedCertificate());
  const emulator = await createEmulator({
    ...options,
    arcKeys: options.arcKeys ?? {
      async write(fileName, contents) {
        await fs.writeFile(joinPath(arcKeyDirectory, fileName), contents, { mode: 0o600 });
        return joinPath(arcReportedDirectory, fileName);
      },
    },
    dropConnection: options.dropConnection ?? dropNodeConnection,
  });
  const federatedTokenFile = joinPath(directory, "azure-identity-token");
  const writeFederatedToken = async () =>
    fs.writeFile(federatedTokenFile, await emulator.federatedToken(), { mode: 0o600 });
  await writeFederatedToken();
  const certificateFile = joinPath(directory, "emulator-certificate.pem");
  await fs.writeFile(certificateFile, certificate.cert, { mode: 0o644 });
  // The kubelet rotates the projected token well before it expires; so does the emulator.
  const rotation = setInterval(() => void writeFederatedToken().catch(() => {}), 30 * 60_000);
  (rotation as { unref?: () => void }).unref?.();

  const common = {
    fetch: (request: ServerRequest) => emulator.fetch(request),
    hostname,
    silent: true,
    gracefulShutdown: false,
    manual: true,
  } as const;
  const http = serve({ ...common, port: options.port ?? 0, protocol: "http" });
  const https = serve({
    ...common,
    port: options.httpsPort ?? 0,
    protocol: "https",
    tls: { cert: certificate.cert, key: certificate.key },
  });
  await Promise.all([http.serve(), https.serve()]);
  await Promise.all([http.ready(), https.ready()]);
  const endpoints: EmulatorEndpoints = {
    http: origin(http, "http", hostname),
    https: origin(https, "https", hostname),
    thumbprint: certificate.thumbprint,
    federatedTokenFile,
  };
  return {
    ...endpoints,
    emulator,
    certificate,
    directory,
    arcKeyDirectory,
    certificateFile,
    env: (source) => emulatorEnvironment(emulator, source, endpoints),
    fetch: trustingFetch(certificate.cert),
    async close() {
      clearInterval(rotation);
      emulator.close();
      await Promise.all([http.close(true), https.close(true)]);
      if (ownsDirectory) await fs.rm(directory, { recursive: true, force: true });
    },
  };
}
