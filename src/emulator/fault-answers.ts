import type { EmulatorFault } from "./faults.ts";

/*
 * The answers of the faults that replace or reshape what a back-end says. Each is a plain Web
 * `Response` (or its body), so they behave the same served by srvx or called in-process.
 */

const STATUS_TEXT: Readonly<Record<number, string>> = {
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** An HTML error page, as IIS, a load balancer or a proxy in front of the endpoint sends one. */
export function htmlErrorPage(status: number): Response {
  const title = `${status} ${STATUS_TEXT[status] ?? "Error"}`;
  return new Response(
    `<!DOCTYPE html>\n<html><head><title>${title}</title></head>\n<body><h1>${title}</h1><p>The web server in front of the token service could not answer.</p><hr><address>emulator</address></body></html>\n`,
    { status, headers: { "content-type": "text/html; charset=utf-8" } },
  );
}

/** A redirect that a managed identity client must not follow. */
export function redirectAnswer(location: string, status = 307): Response {
  return new Response(null, { status, headers: { location } });
}

/** Whether a parsed body is a token answer (which the answer-shaping faults act on). */
export function isTokenAnswer(body: unknown): body is Record<string, unknown> {
  return (
    body !== null &&
    typeof body === "object" &&
    typeof (body as Record<string, unknown>).access_token === "string"
  );
}

/** Sets a time field in the type the back-end used for it: IMDS sends strings, Entra ID numbers. */
function setTime(body: Record<string, unknown>, key: string, value: number): void {
  body[key] = typeof body[key] === "string" ? String(value) : value;
}

/**
 * Adds `refresh_in` (seconds) to a token answer, in the type of its other time fields, as Entra
 * ID does when it wants clients to refresh early.
 */
export function withRefreshIn(body: Record<string, unknown>, seconds: number): void {
  const strings = typeof (body.expires_on ?? body.expires_in) === "string";
  body.refresh_in = strings ? String(seconds) : seconds;
}

/** A token answer's JSON as a `no-access-token` or `expiry` fault leaves it (changed in place). */
export function reshapeTokenBody(
  fault: EmulatorFault,
  body: Record<string, unknown>,
  nowSeconds: number,
): void {
  if (fault.kind === "no-access-token") {
    delete body.access_token;
    return;
  }
  if (fault.kind !== "expiry") return;
  // A refresh hint would be meaningless without an expiry; leave none behind.
  delete body.refresh_in;
  switch (fault.expiry) {
    case "missing":
      for (const key of ["expires_on", "expires_in", "ext_expires_in"]) delete body[key];
      return;
    case "garbage":
      if ("expires_on" in body) body.expires_on = "tomorrow-ish";
      if ("expires_in" in body) body.expires_in = "a while";
      return;
    case "past":
      // Issued ten minutes ago with a ten-minute lifetime: expired as it arrives.
      if ("expires_on" in body) setTime(body, "expires_on", nowSeconds - 600);
      for (const key of ["expires_in", "ext_expires_in"]) if (key in body) setTime(body, key, 0);
      return;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The answer's status and headers, then the first half of its body, then a failure: a server
 * resets the connection under the client; in-process, reading the body rejects.
 */
export function resetAnswer(status: number, headers: Headers, text: string): Response {
  const bytes = new TextEncoder().encode(text);
  const half = bytes.subarray(0, Math.floor(bytes.length / 2));
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(half);
    },
    async pull(controller) {
      // A moment for the first half to reach the client before the connection goes.
      await delay(10);
      controller.error(new Error("connection reset by an injected fault"));
    },
  });
  const sent = new Headers(headers);
  // The full length is announced, so even a client that missed the reset sees a short body.
  sent.set("content-length", String(bytes.length));
  return new Response(body, { status, headers: sent });
}

/**
 * The answer after enough leading whitespace (still valid JSON) to make it `size` bytes, streamed
 * in chunks as the client reads, so a client that stops reading costs the emulator nothing.
 */
export function paddedAnswer(
  status: number,
  headers: Headers,
  text: string,
  size: number,
): Response {
  const tail = new TextEncoder().encode(text);
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let padding = Math.max(0, size - tail.length);
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (padding > 0) {
        const part = padding >= chunk.length ? chunk : chunk.subarray(0, padding);
        padding -= part.length;
        controller.enqueue(part);
        return;
      }
      controller.enqueue(tail);
      controller.close();
    },
  });
  const sent = new Headers(headers);
  sent.set("content-length", String(Math.max(size, tail.length)));
  return new Response(body, { status, headers: sent });
}
