import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { inspect } from "node:util";
import type { FetchLike } from "../../src/index.ts";

/**
 * A distinctive secret: 32 random hex characters (its `core`), optionally wrapped in characters a
 * real secret may carry (`+`, `/`, `=` of base64). Searching for the core finds the secret whole,
 * in part, or in an escaped spelling (`\u002B` for `+`), and never matches anything by chance.
 */
export interface Secret {
  /** What is configured or sent. */
  value: string;
  /** 32 random hex characters that only this secret contains. */
  core: string;
}

export function secret(decorate: (core: string) => string = (core) => core): Secret {
  const core = randomBytes(16).toString("hex");
  return { value: decorate(core), core };
}

/** A secret shaped like base64 (`+`, `/`, `=`), as an Arc key or a secret header may be. */
export const base64Like = (core: string): string => `+${core}/=`;

/** A JWT-shaped access token whose signature is the secret's core. */
export const jwtLike = (core: string): string =>
  `eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3ZhdWx0In0.${core}`;

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "";
  } catch (error) {
    return `<unserialisable: ${String(error)}>`;
  }
}

/**
 * Every place an error's text can surface: message, String(), JSON.stringify(), each enumerable
 * own property, Node's util.inspect (which prints `cause` and hidden fields), and the same for
 * every error in the `cause` chain (message, stack, JSON).
 */
export function errorViews(error: unknown): Array<[where: string, text: string]> {
  const views: Array<[string, string]> = [];
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    const at = depth === 0 ? "error" : `cause[${depth}]`;
    views.push([`${at} String()`, String(current)]);
    views.push([`${at} JSON.stringify`, safeJson(current)]);
    views.push([`${at} util.inspect`, inspect(current, { depth: 10, showHidden: true })]);
    if (typeof current === "object") {
      const record = current as Record<string, unknown>;
      if (current instanceof Error) {
        views.push([`${at} message`, current.message]);
        views.push([`${at} stack`, current.stack ?? ""]);
      }
      for (const key of Object.keys(record)) {
        views.push([`${at}.${key}`, `${String(record[key])} ${safeJson(record[key])}`]);
      }
      current = (current as { cause?: unknown }).cause;
    } else {
      current = undefined;
    }
  }
  return views;
}

/** Where any secret's core shows up in `views`: an empty list means nothing leaked. */
export function findLeaks(
  views: Array<[where: string, text: string]>,
  secrets: readonly Secret[],
): string[] {
  const found: string[] = [];
  for (const [where, text] of views) {
    for (const { core, value } of secrets) {
      if (text.includes(core)) found.push(`${where} contains ${JSON.stringify(value)}`);
    }
  }
  return found;
}

/** Every key and value of an unstorage-like storage, as text (for "the storage holds no secret"). */
export async function storageViews(storage: {
  getKeys(): Promise<string[]>;
  getItem(key: string): Promise<unknown>;
}): Promise<Array<[where: string, text: string]>> {
  const views: Array<[string, string]> = [];
  for (const key of await storage.getKeys()) {
    const value = await storage.getItem(key);
    views.push([`storage key ${key}`, key]);
    views.push([`storage value ${key}`, safeJson(value)]);
    // A stored body is JSON text: decode it too, so an escaped spelling is seen for what it is.
    const body = (value as { body?: unknown } | null)?.body;
    if (typeof body === "string") {
      try {
        views.push([`storage body (decoded) ${key}`, safeJson(JSON.parse(body))]);
      } catch {
        // Not JSON: the raw text above is all there is.
      }
    }
  }
  return views;
}

/** One request as a {@link RecordingServer} received it: everything on the wire, as text. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * An HTTP server on a loopback address other than 127.0.0.1 by default (so it is "another host"
 * for a redirect), that records every request in full and answers with a token-shaped body: if a
 * client were tricked into sending it something, the test would see exactly what.
 */
export interface RecordingServer {
  url: string;
  host: string;
  received: ReceivedRequest[];
  /** Everything received, as one text to search. */
  text(): string;
  close(): Promise<void>;
}

export async function startRecordingServer(host = "127.0.0.2"): Promise<RecordingServer> {
  const received: ReceivedRequest[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      response.writeHead(200, { "content-type": "application/json" });
      response.end(
        JSON.stringify({
          access_token: "attacker-token",
          expires_in: 3600,
          expires_on: Math.floor(Date.now() / 1000) + 3600,
          token_type: "Bearer",
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    host,
    received,
    text: () => safeJson(received),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * A fetch with its own DNS: a request for one of `routes`' host names goes to that local server
 * instead (user name and password dropped, path and query kept, redirects still manual), every
 * other request to the global fetch. It lets a test stand up `evil.example` for real: when an
 * endpoint check is missing, the attacker's server receives the request and the test sees it.
 */
export function routingFetch(routes: Readonly<Record<string, string>>): FetchLike {
  return (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const target = routes[url.hostname];
    if (target === undefined) return globalThis.fetch(input, init);
    const rerouted = new URL(`${url.pathname}${url.search}`, target);
    return globalThis.fetch(rerouted, init);
  };
}
