import { assertEndpointAllowed } from "./endpoint.ts";
import { ManagedIdentityError } from "./errors.ts";
import { type HttpResponse, parseJson, responseError, send, type Transport } from "./http.ts";
import type { ManagedIdentityLogEvent } from "./logger.ts";
import { defaultRetry, parseRetryAfter, type RetryOptions } from "./retry.ts";
import type { SourceContext, SourceDefinition, TokenRequest } from "./sources/types.ts";
import type { ThrottleCache } from "./throttle.ts";
import { parseTokenResponse, type TokenRecord, TokenResponseProblem } from "./token.ts";

/** Everything one token acquisition needs, handed over by the client. */
export interface Acquisition {
  source: SourceDefinition;
  context: SourceContext;
  /** How to send a request (the client's fetch, or the platform's pinned fetch). */
  transport(request: TokenRequest): Transport;
  allowedHosts: readonly string[];
  /** `false`: one attempt per request. */
  retry: RetryOptions | false;
  /** The whole acquisition, retries and waits included, must finish within this many ms. */
  deadlineMs: number;
  throttle: ThrottleCache | undefined;
  log(event: Omit<ManagedIdentityLogEvent, "source">): void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Sends one request with the back-end's retry policy, inside the deadline, answering from the
 * throttling memory when the endpoint recently asked not to be asked again. Transport failures
 * (refused connection, timeout) are not retried: they mean the endpoint is not there.
 */
async function sendWithRetries(
  request: TokenRequest,
  run: Acquisition,
  deadline: number,
): Promise<HttpResponse> {
  const { source, throttle } = run;
  assertEndpointAllowed(request, source.name, run.allowedHosts);
  const remembered = await throttle?.recall(request, Date.now());
  if (remembered) {
    run.log({ type: "throttled", status: remembered.status });
    return remembered;
  }
  const policy = source.retry ?? defaultRetry;
  const transport = run.transport(request);
  let firstStatus: number | undefined;
  for (let attempt = 1; ; attempt++) {
    const remaining = deadline - Date.now();
    const started = Date.now();
    const response = await send(request, source, {
      ...transport,
      timeout: Math.max(1, Math.min(transport.timeout, remaining)),
    });
    run.log({
      type: "request",
      attempt,
      status: response.status,
      durationMs: Date.now() - started,
    });
    const ok = response.status >= 200 && response.status < 300;
    if (!ok && run.retry !== false && policy.retries(response.status)) {
      firstStatus ??= response.status;
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"), Date.now());
      const delay = policy.delay(attempt, firstStatus, retryAfter, run.retry);
      if (delay !== undefined && Date.now() + delay < deadline) {
        run.log({ type: "retry", attempt: attempt + 1, status: response.status, delayMs: delay });
        await sleep(delay);
        continue;
      }
    }
    const rememberedFor = ok ? undefined : await throttle?.remember(request, response, Date.now());
    if (rememberedFor !== undefined)
      run.log({ type: "throttled", status: response.status, delayMs: rememberedFor });
    return response;
  }
}

/** One acquisition: request, optional challenge step, retries, then a checked token. */
export async function acquire(run: Acquisition): Promise<TokenRecord> {
  const { source, context } = run;
  const deadline = Date.now() + run.deadlineMs;
  try {
    let request = await source.createRequest(context);
    let response = await sendWithRetries(request, run, deadline);
    const next = await source.challenge?.(response, request, context);
    if (next) {
      request = next;
      response = await sendWithRetries(request, run, deadline);
    }
    if (response.status < 200 || response.status > 299)
      throw responseError(response, source, request.secrets);
    const body = parseJson(response.body);
    const now = Math.floor(Date.now() / 1000);
    const token = parseTokenResponse(body, context.resource, now, {
      requireTokenType: source.requireTokenType === true,
    });
    if (token instanceof TokenResponseProblem) {
      throw new ManagedIdentityError(
        "invalid_response",
        `The ${source.label} endpoint answered HTTP ${response.status} but ${body === undefined ? "the body is not JSON" : token.reason}.`,
        { source: source.name, status: response.status },
      );
    }
    const mismatch = source.checkResponse?.(body, context);
    if (mismatch !== undefined) {
      throw new ManagedIdentityError(
        "identity_mismatch",
        `The ${source.label} endpoint ${mismatch}; the token was refused and not cached.`,
        {
          source: source.name,
          status: response.status,
        },
      );
    }
    return token;
  } catch (error) {
    if (
      error instanceof ManagedIdentityError &&
      error.code === "timeout" &&
      Date.now() >= deadline
    ) {
      throw new ManagedIdentityError(
        "timeout",
        `No token from ${source.label} within the ${run.deadlineMs} ms deadline.`,
        {
          source: source.name,
          cause: error,
        },
      );
    }
    throw error;
  }
}
