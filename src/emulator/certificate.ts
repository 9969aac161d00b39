/**
 * A self-signed TLS certificate made with Web Crypto alone, so the emulator needs neither an
 * openssl binary nor a certificate library (the common ones need a global `reflect-metadata`).
 * Only the handful of DER structures of an X.509 v3 certificate are encoded here.
 */

/** A certificate and its key, in the forms a TLS server and a Service Fabric client need. */
export interface SelfSignedCertificate {
  /** The certificate, PEM-encoded. */
  cert: string;
  /** The private key (PKCS #8), PEM-encoded. */
  key: string;
  /** SHA-1 of the DER certificate, 40 upper-case hex characters, as `IDENTITY_SERVER_THUMBPRINT` holds it. */
  thumbprint: string;
  /** The DER bytes of the certificate. */
  der: Uint8Array;
}

/** Options of {@link createSelfSignedCertificate}. */
export interface SelfSignedCertificateOptions {
  /**
   * The subject's common name.
   * @default "managed-identity-emulator"
   */
  commonName?: string;
  /**
   * Days the certificate is valid for, counted from an hour ago (clock skew).
   * @default 30
   */
  days?: number;
  /**
   * Names the certificate is valid for: IPv4 addresses and DNS names.
   * @default ["127.0.0.1", "localhost"]
   */
  hosts?: string[];
}

function length(size: number): number[] {
  if (size < 0x80) return [size];
  const bytes: number[] = [];
  for (let rest = size; rest > 0; rest >>= 8) bytes.unshift(rest & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const size = contents.reduce((sum, part) => sum + part.length, 0);
  const header = [tag, ...length(size)];
  const out = new Uint8Array(header.length + size);
  out.set(header);
  let offset = header.length;
  for (const part of contents) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const sequence = (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> => tlv(0x30, ...parts);

function oid(dotted: string): Uint8Array {
  const [first = 0, second = 0, ...rest] = dotted.split(".").map(Number);
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let value = arc >> 7; value > 0; value >>= 7) chunk.unshift((value & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(bytes));
}

function integer(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1] ?? 0) < 0x80) start++;
  const trimmed = bytes.subarray(start);
  // DER integers are signed: a high bit set needs a leading zero to stay positive.
  return (trimmed[0] ?? 0) >= 0x80 ? tlv(0x02, new Uint8Array([0]), trimmed) : tlv(0x02, trimmed);
}

function utcTime(date: Date): Uint8Array {
  const two = (value: number) => String(value).padStart(2, "0");
  const text = `${two(date.getUTCFullYear() % 100)}${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  return tlv(0x17, new TextEncoder().encode(text));
}

function name(commonName: string): Uint8Array {
  const attribute = sequence(oid("2.5.4.3"), tlv(0x0c, new TextEncoder().encode(commonName)));
  return sequence(tlv(0x31, attribute));
}

function subjectAltName(hosts: readonly string[]): Uint8Array {
  const names = hosts.map((host) => {
    const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
    return ipv4
      ? tlv(0x87, new Uint8Array(ipv4.slice(1).map(Number)))
      : tlv(0x82, new TextEncoder().encode(host));
  });
  return sequence(oid("2.5.29.17"), tlv(0x04, sequence(...names)));
}

function basicConstraintsCa(): Uint8Array {
  // CA:true lets clients trust this one certificate as its own anchor (NODE_EXTRA_CA_CERTS, `ca`).
  const critical = tlv(0x01, new Uint8Array([0xff]));
  return sequence(
    oid("2.5.29.19"),
    critical,
    tlv(0x04, sequence(tlv(0x01, new Uint8Array([0xff])))),
  );
}

/** Web Crypto's ECDSA signature is r‖s; X.509 wants SEQUENCE { INTEGER r, INTEGER s }. */
function ecdsaSignatureToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return sequence(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function pem(label: string, bytes: Uint8Array): string {
  const lines = base64(bytes).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/**
 * Creates a self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, as a Service Fabric
 * cluster's managed identity token service presents one.
 */
export async function createSelfSignedCertificate(
  options: SelfSignedCertificateOptions = {},
): Promise<SelfSignedCertificate> {
  const algorithm = { name: "ECDSA", namedCurve: "P-256" } as const;
  const keys = (await crypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(notBefore.getTime() + (options.days ?? 30) * 86_400_000 + 3600_000);
  const subject = name(options.commonName ?? "managed-identity-emulator");
  const signatureAlgorithm = sequence(oid("1.2.840.10045.4.3.2")); // ecdsa-with-SHA256
  const tbs = sequence(
    tlv(0xa0, integer(new Uint8Array([2]))), // v3
    integer(serial),
    signatureAlgorithm,
    subject,
    sequence(utcTime(notBefore), utcTime(notAfter)),
    subject,
    spki,
    tlv(
      0xa3,
      sequence(subjectAltName(options.hosts ?? ["127.0.0.1", "localhost"]), basicConstraintsCa()),
    ),
  );
  const signature = new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, tbs),
  );
  const der = sequence(
    tbs,
    signatureAlgorithm,
    tlv(0x03, new Uint8Array([0]), ecdsaSignatureToDer(signature)),
  );
  const thumbprint = hex(new Uint8Array(await crypto.subtle.digest("SHA-1", der))).toUpperCase();
  return { cert: pem("CERTIFICATE", der), key: pem("PRIVATE KEY", pkcs8), thumbprint, der };
}
