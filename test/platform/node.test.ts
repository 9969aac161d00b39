import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createBunPlatform } from "../../src/platform/bun.ts";
import { defaultPlatform } from "../../src/platform/index.ts";
import { createNodePlatform } from "../../src/platform/node.ts";
import type { Platform } from "../../src/platform/types.ts";
import { createWebPlatform } from "../../src/platform/web.ts";
import {
  createCertificate,
  type RawTlsServer,
  receivedText,
  startRawTlsServer,
  type TestCertificate,
} from "./tls.ts";

const SECRET = "service-fabric-secret-value";

let certificate: TestCertificate;
let other: TestCertificate;
beforeAll(async () => {
  [certificate, other] = await Promise.all([createCertificate(), createCertificate("impostor")]);
}, 30_000);

function pinnedFetch(platform: Platform = createNodePlatform()) {
  const fetch = platform.pinnedFetch;
  if (!fetch) throw new Error(`${platform.name} has no pinnedFetch`);
  return fetch;
}

describe("node platform: pinnedFetch", () => {
  let server: RawTlsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("sends the request once the leaf certificate matches the pin and returns a web Response", async () => {
    server = await startRawTlsServer(
      certificate,
      () =>
        'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-extra: one\r\ncontent-length: 24\r\nconnection: close\r\n\r\n{"access_token":"token"}',
    );
    const response = await pinnedFetch()(
      `${server.url}/metadata/identity/oauth2/token?api-version=2019-07-01-preview&resource=r`,
      { headers: { secret: SECRET } },
      certificate.thumbprint,
    );
    expect(response).toBeInstanceOf(Response);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-extra")).toBe("one");
    expect(await response.json()).toEqual({ access_token: "token" });
    const request = receivedText(server.connections[0]);
    expect(request).toMatch(
      /^GET \/metadata\/identity\/oauth2\/token\?api-version=2019-07-01-preview&resource=r HTTP\/1\.1\r\n/,
    );
    expect(request).toContain(`secret: ${SECRET}\r\n`);
    expect(request.toLowerCase()).toContain(`host: ${new URL(server.url).host}\r\n`);
  });

  it("on a thumbprint mismatch rejects, closes the connection and writes no request byte", async () => {
    server = await startRawTlsServer(other);
    const error = await pinnedFetch()(
      `${server.url}/token`,
      { headers: { secret: SECRET } },
      certificate.thumbprint,
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/did not match the pinned SHA-1 thumbprint/);
    expect(String(error)).not.toContain(SECRET);
    // The client did connect (a TLS handshake happened), and the server got nothing at all.
    expect(server.connections).toHaveLength(1);
    await server.connections[0]?.closed;
    expect(server.connections[0]?.received).toEqual([]);
  });

  it("rejects a pin differing in one hex digit", async () => {
    server = await startRawTlsServer(certificate);
    const last = certificate.thumbprint.at(-1) === "0" ? "1" : "0";
    const nearMiss = certificate.thumbprint.slice(0, -1) + last;
    await expect(pinnedFetch()(`${server.url}/`, undefined, nearMiss)).rejects.toThrow(
      /did not match/,
    );
    await server.connections[0]?.closed;
    expect(server.connections[0]?.received).toEqual([]);
  });

  it("refuses a thumbprint that is not 40 lower-case hex characters without connecting", async () => {
    server = await startRawTlsServer(certificate);
    for (const bad of [certificate.fingerprint, certificate.thumbprint.slice(1), "z".repeat(40)]) {
      await expect(pinnedFetch()(`${server.url}/`, undefined, bad)).rejects.toThrow(
        /40 lower-case hexadecimal/,
      );
    }
    expect(server.connections).toHaveLength(0);
  });

  it("refuses plain http", async () => {
    await expect(
      pinnedFetch()("http://127.0.0.1:1/token", undefined, certificate.thumbprint),
    ).rejects.toThrow(/must use https/);
  });

  it("sends a POST body with its length", async () => {
    server = await startRawTlsServer(
      certificate,
      (_head, body) =>
        `HTTP/1.1 201 Created\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
    const response = await pinnedFetch()(
      new Request(`${server.url}/form`, { method: "POST", body: "resource=r&x=1" }),
      undefined,
      certificate.thumbprint,
    );
    expect(response.status).toBe(201);
    expect(await response.text()).toBe("resource=r&x=1");
    expect(receivedText(server.connections[0])).toMatch(/^POST \/form HTTP\/1\.1\r\n/);
    expect(receivedText(server.connections[0])).toContain("content-length: 14\r\n");
  });

  it("reads a chunked body and an error status", async () => {
    server = await startRawTlsServer(
      certificate,
      () =>
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    const response = await pinnedFetch()(`${server.url}/`, undefined, certificate.thumbprint);
    expect(response.status).toBe(503);
    expect(response.statusText).toBe("Service Unavailable");
    expect(response.headers.get("retry-after")).toBe("7");
    expect(await response.text()).toBe("hello world");
  });

  it("returns a 204 with no body", async () => {
    server = await startRawTlsServer(
      certificate,
      () => "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
    );
    const response = await pinnedFetch()(`${server.url}/`, undefined, certificate.thumbprint);
    expect(response.status).toBe(204);
    expect(response.body).toBeNull();
  });

  it("does not follow a redirect: the 3xx is returned as it is", async () => {
    server = await startRawTlsServer(
      certificate,
      () =>
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: https://127.0.0.1:1/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    const response = await pinnedFetch()(`${server.url}/`, undefined, certificate.thumbprint);
    expect(response.status).toBe(307);
    expect(response.headers.get("location")).toBe("https://127.0.0.1:1/elsewhere");
  });

  it("rejects with the abort reason when the signal is already aborted, without connecting", async () => {
    server = await startRawTlsServer(certificate);
    const reason = new Error("caller gave up");
    await expect(
      pinnedFetch()(
        `${server.url}/`,
        { signal: AbortSignal.abort(reason) },
        certificate.thumbprint,
      ),
    ).rejects.toBe(reason);
    expect(server.connections).toHaveLength(0);
  });

  it("aborts while waiting for the response and closes the connection", async () => {
    let arrived!: () => void;
    const requestArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    server = await startRawTlsServer(certificate, () => {
      arrived();
      return undefined;
    });
    const controller = new AbortController();
    const pending = pinnedFetch()(
      `${server.url}/`,
      { signal: controller.signal },
      certificate.thumbprint,
    );
    await requestArrived;
    const reason = new Error("timeout");
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await server.connections[0]?.closed;
  });

  it("aborts while the body is streaming: reading the body fails", async () => {
    server = await startRawTlsServer(
      certificate,
      () =>
        'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{"\r\n',
    );
    const controller = new AbortController();
    const response = await pinnedFetch()(
      `${server.url}/`,
      { signal: controller.signal },
      certificate.thumbprint,
    );
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('{"');
    controller.abort(new Error("stop"));
    await expect(reader.read()).rejects.toThrow();
    await server.connections[0]?.closed;
  });

  it("rejects when nothing listens", async () => {
    const closed = await startRawTlsServer(certificate);
    const url = closed.url;
    await closed.close();
    await expect(pinnedFetch()(`${url}/`, undefined, certificate.thumbprint)).rejects.toThrow(
      /ECONNREFUSED/,
    );
  });
});

describe("node platform: files", () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), "mi-platform-"));
  });
  afterAll(() => rm(folder, { recursive: true, force: true }));

  it("reads a small file and refuses one over the limit before reading it", async () => {
    const platform = createNodePlatform();
    await writeFile(join(folder, "exact"), "a".repeat(4096));
    await writeFile(join(folder, "over"), "a".repeat(4097));
    await expect(platform.readTextFile?.(join(folder, "exact"), { maxBytes: 4096 })).resolves.toBe(
      "a".repeat(4096),
    );
    await expect(platform.readTextFile?.(join(folder, "over"), { maxBytes: 4096 })).rejects.toThrow(
      /larger than 4096 bytes/,
    );
    await expect(platform.readTextFile?.(folder, { maxBytes: 4096 })).rejects.toThrow(
      /not a regular file/,
    );
  });

  it("resolves symbolic links in realPath and reports files that exist", async () => {
    const platform = createNodePlatform();
    await writeFile(join(folder, "target"), "x");
    await symlink(join(folder, "target"), join(folder, "link"));
    await expect(platform.realPath?.(join(folder, "link"))).resolves.toBe(
      await createNodePlatform().realPath?.(join(folder, "target")),
    );
    await expect(platform.realPath?.(join(folder, "missing"))).rejects.toThrow(/ENOENT/);
    expect(platform.fileExists?.(join(folder, "target"))).toBe(true);
    expect(platform.fileExists?.(join(folder, "missing"))).toBe(false);
  });

  it("carries the Azure Arc location overrides, and none by default", () => {
    expect(createNodePlatform().azureArc).toBeUndefined();
    expect(
      createNodePlatform({ arcTokensFolder: "/tmp/t/", arcAgentFile: "/tmp/a" }).azureArc,
    ).toEqual({ tokensFolder: "/tmp/t/", agentFile: "/tmp/a" });
    expect(createBunPlatform({ arcTokensFolder: "/tmp/t/" })).toMatchObject({
      name: "bun",
      azureArc: { tokensFolder: "/tmp/t/" },
    });
  });

  it("is the default platform under Node, with every capability; the web platform has none", () => {
    const platform = defaultPlatform();
    expect(platform.name).toBe("node");
    expect(platform.os).toBe(process.platform === "win32" ? "windows" : process.platform);
    expect(typeof platform.pinnedFetch).toBe("function");
    expect(typeof platform.realPath).toBe("function");
    const web = createWebPlatform();
    expect(web.pinnedFetch).toBeUndefined();
    expect(web.readTextFile).toBeUndefined();
    expect(web.realPath).toBeUndefined();
  });
});
