import { describe, expect, it, vi } from "vitest";
import {
  createEmulator,
  EMULATOR_PATHS,
  type Emulator,
  type EmulatorOptions,
  serveEmulator,
} from "../../src/emulator/index.ts";
import {
  ManagedIdentityClient,
  type ManagedIdentityLogEvent,
  SystemAssignedManagedIdentity,
} from "../../src/index.ts";
import { fakeTime, flush } from "../helpers/time.ts";

const RESOURCE = "https://vault.azure.net";
const START = Date.UTC(2030, 0, 2, 3, 4, 5);

/** An emulator on a clock the test moves by hand: nothing sleeps. */
async function limited(options: EmulatorOptions = {}) {
  const clock = { time: START };
  const emulator = await createEmulator({ now: () => clock.time, ...options });
  return { emulator, clock };
}

function imds(emulator: Emulator, path = EMULATOR_PATHS.imds): Promise<Response> {
  return emulator.fetch(
    new Request(`http://127.0.0.1${path}?api-version=2018-02-01&resource=${RESOURCE}`, {
      headers: { Metadata: "true" },
    }),
  );
}

/** `count` requests at once, straight at the fetch handler; their statuses in order. */
async function burst(emulator: Emulator, count: number): Promise<Response[]> {
  return Promise.all(Array.from({ length: count }, () => imds(emulator)));
}

const statuses = (responses: Response[]) => responses.map((response) => response.status);
const count = (responses: Response[], status: number) =>
  responses.filter((response) => response.status === status).length;

describe("IMDS's limits (imdsLimits)", () => {
  it("true: of a burst of 12, exactly 5 are answered; the rest get 429, Retry-After and a JSON error", async () => {
    const { emulator } = await limited({ imdsLimits: true });
    const responses = await burst(emulator, 12);
    expect(count(responses, 200)).toBe(5);
    expect(count(responses, 429)).toBe(7);
    for (const response of responses.filter((answer) => answer.status === 429)) {
      expect(response.headers.get("retry-after")).toBe("1");
      expect(response.headers.get("content-type")).toContain("application/json");
      expect(await response.json()).toMatchObject({
        error: "server_error",
        error_description: expect.stringContaining("Too many requests"),
      });
    }
    expect(emulator.requests.map((request) => request.status).sort()).toEqual(
      statuses(responses).sort(),
    );
    expect(emulator.requests.every((request) => request.source === "imds")).toBe(true);
  });

  it("true: 20 a second, one after another; the 21st waits until the second has passed", async () => {
    const { emulator, clock } = await limited({ imdsLimits: true });
    for (let index = 0; index < 20; index++) {
      expect((await imds(emulator)).status, `request ${index + 1}`).toBe(200);
      clock.time += 10;
    }
    // The first was admitted at START; it leaves the window at START + 1000.
    clock.time = START + 999;
    const throttled = await imds(emulator);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("retry-after")).toBe("1");
    clock.time = START + 1000;
    expect((await imds(emulator)).status).toBe(200);
    // Refused requests do not count: the window holds the 19 from START + 10… and this one.
    expect((await imds(emulator)).status).toBe(429);
    clock.time = START + 2000;
    expect(statuses(await burst(emulator, 5))).toEqual([200, 200, 200, 200, 200]);
  });

  it("once a burst has been answered and the second has passed, requests succeed again", async () => {
    const { emulator, clock } = await limited({ imdsLimits: { concurrent: 2, perSecond: 3 } });
    expect(count(await burst(emulator, 6), 200)).toBe(2);
    // Nothing in flight now: one more fits in this second, then the second is full.
    expect((await imds(emulator)).status).toBe(200);
    const full = await imds(emulator);
    expect(full.status).toBe(429);
    expect(full.headers.get("retry-after")).toBe("1");
    clock.time += 1000;
    expect(statuses(await burst(emulator, 2))).toEqual([200, 200]);
    expect((await imds(emulator)).status).toBe(200);
    expect((await imds(emulator)).status).toBe(429);
  });

  it("a limit left out keeps IMDS's own: { perSecond: 100 } still answers 5 at once", async () => {
    const { emulator } = await limited({ imdsLimits: { perSecond: 100 } });
    expect(count(await burst(emulator, 8), 200)).toBe(5);
  });

  it("a request in flight holds its slot (here: a delay fault) until it is answered", async () => {
    let wake = () => {};
    const { emulator } = await limited({
      imdsLimits: { concurrent: 1 },
      faults: [{ kind: "delay", ms: 1000, times: 1 }],
      sleep: () =>
        new Promise<void>((resolve) => {
          wake = resolve;
        }),
    });
    const slow = imds(emulator);
    expect((await imds(emulator)).status).toBe(429);
    wake();
    expect((await slow).status).toBe(200);
    expect((await imds(emulator)).status).toBe(200);
    expect(emulator.requests.map((request) => request.faults)).toEqual([["delay"], [], []]);
  });

  it("default off: a burst of 50 is answered in full; the limits touch IMDS only", async () => {
    const { emulator } = await limited();
    expect(count(await burst(emulator, 50), 200)).toBe(50);
    const { emulator: withLimits } = await limited({ imdsLimits: true });
    const appService = await Promise.all(
      Array.from({ length: 10 }, () =>
        withLimits.fetch(
          new Request(
            `http://127.0.0.1${EMULATOR_PATHS["app-service"]}?api-version=2019-08-01&resource=${RESOURCE}`,
            { headers: { "X-IDENTITY-HEADER": withLimits.secrets.appService } },
          ),
        ),
      ),
    );
    expect(count(appService, 200)).toBe(10);
  });

  it("refuses limits below 1", async () => {
    await expect(createEmulator({ imdsLimits: { concurrent: 0 } })).rejects.toThrow(RangeError);
    await expect(createEmulator({ imdsLimits: { perSecond: 2.5 } })).rejects.toThrow(
      /perSecond needs a whole number/,
    );
  });
});

describe("this package's client against IMDS's limits", () => {
  it("50 resources at once all get their tokens through the default IMDS retries (1 s, 2 s, 4 s)", async () => {
    // Fake setTimeout and Date (the emulator's clock is Date.now); sockets stay real. The clock
    // jumps to the next retry only when every unfinished acquisition is waiting for one.
    fakeTime();
    const started = Date.now();
    const running = await serveEmulator({ imdsLimits: true });
    try {
      const wakeAt: number[] = [];
      const events: ManagedIdentityLogEvent[] = [];
      const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), {
        env: running.env("imds"),
        logger: (event) => {
          events.push(event);
          if (event.type === "retry") wakeAt.push(Date.now() + (event.delayMs ?? 0));
        },
      });
      let unfinished = 50;
      const acquisitions = Array.from({ length: 50 }, (_, index) =>
        client.acquireTokenForClient({ resource: `https://resource-${index}.example.com` }),
      );
      for (const acquisition of acquisitions) {
        acquisition.then(
          () => unfinished--,
          () => unfinished--,
        );
      }
      while (unfinished > 0) {
        await flush(1);
        const asleep = wakeAt.filter((time) => time > Date.now());
        // The flush may have finished the last one: then there is nothing to wake.
        if (unfinished > 0 && asleep.length === unfinished)
          await vi.advanceTimersByTimeAsync(Math.min(...asleep) - Date.now());
      }
      const results = await Promise.allSettled(acquisitions);
      const answered = running.emulator.requests.map((request) => request.status);
      const summary = {
        tokens: results.filter((result) => result.status === "fulfilled").length,
        requests: answered.length,
        throttled: answered.filter((status) => status === 429).length,
        retries: events.filter((event) => event.type === "retry").length,
        seconds: (Date.now() - started) / 1000,
      };
      expect(summary, JSON.stringify(summary)).toMatchObject({ tokens: 50 });
      // Waves at 0 s, 1 s and 3 s: IMDS admits at most 20 a second, so 50 need three.
      expect(summary.seconds).toBeGreaterThanOrEqual(3);
      expect(summary.throttled).toBe(summary.requests - 50);
    } finally {
      vi.useRealTimers();
      await running.close();
    }
  });
});
