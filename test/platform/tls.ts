import { X509Certificate } from "node:crypto";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import { createSecureContext, TLSSocket } from "node:tls";
import { generate } from "selfsigned";

/** A self-signed certificate made for a test, with its SHA-1 thumbprint. */
export interface TestCertificate {
  key: string;
  cert: string;
  /** SHA-1 of the DER certificate as OpenSSL prints it: upper-case hex pairs joined by ':'. */
  fingerprint: string;
  /** The same thumbprint normalised: 40 lower-case hex characters. */
  thumbprint: string;
}

/** A fresh RSA key and self-signed certificate for 127.0.0.1, as a Service Fabric node has. */
export async function createCertificate(
  commonName = "service-fabric-test",
): Promise<TestCertificate> {
  const pems = await generate([{ name: "commonName", value: commonName }], {
    keySize: 2048,
    algorithm: "sha256",
  });
  // Node computes the thumbprint itself: the test does not take the library's word for it.
  const { fingerprint } = new X509Certificate(pems.cert);
  return {
    key: pems.private,
    cert: pems.cert,
    fingerprint,
    thumbprint: fingerprint.replaceAll(":", "").toLowerCase(),
  };
}

/** One TCP connection as a {@link RawTlsServer} saw it. */
export interface RawConnection {
  /** Every application byte received after the TLS handshake (the HTTP request, if any). */
  received: Buffer[];
  /** Resolves when the TCP connection has closed: nothing more can arrive after that. */
  closed: Promise<void>;
}

/**
 * A TLS server below HTTP, so a test can see every decrypted byte a client wrote, including none
 * at all. `respond` gets the request head once it is complete and returns the raw HTTP response,
 * or undefined to hold the request open.
 */
export interface RawTlsServer {
  url: string;
  connections: RawConnection[];
  close(): Promise<void>;
}

export async function startRawTlsServer(
  certificate: TestCertificate,
  respond: (head: string, body: string) => string | undefined = () =>
    'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{"ok":true}',
): Promise<RawTlsServer> {
  const connections: RawConnection[] = [];
  const sockets = new Set<Socket>();
  // TLS is layered by hand on each TCP socket, so each connection's bytes stay with it.
  const server = createNetServer((socket) => {
    sockets.add(socket);
    const connection: RawConnection = {
      received: [],
      closed: new Promise((resolve) => socket.once("close", () => resolve())),
    };
    connections.push(connection);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const secure = new TLSSocket(socket, {
      isServer: true,
      secureContext: createSecureContext({ key: certificate.key, cert: certificate.cert }),
    });
    secure.on("error", () => {});
    secure.on("data", (chunk: Buffer) => {
      connection.received.push(chunk);
      const text = Buffer.concat(connection.received).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = text.slice(0, end);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      const body = text.slice(end + 4);
      if (body.length < length) return;
      const reply = respond(head, body);
      if (reply !== undefined) secure.end(reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** All application bytes a connection received, as text. */
export function receivedText(connection: RawConnection | undefined): string {
  return connection ? Buffer.concat(connection.received).toString("utf8") : "";
}
