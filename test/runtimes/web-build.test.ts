/**
 * The web build (dist/index.web.mjs, for the `workerd`, `worker` and `browser` export conditions)
 * is the full entry point without the Node, Deno and Bun platforms, and nothing else differs.
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import type * as RuntimeDetection from "../../src/platform/index.ts";
import type * as WebPlatform from "../../src/platform/index.web.ts";
import { ROOT } from "./children.ts";

/** What only the full build exports. */
const RUNTIME_PLATFORMS = ["createBunPlatform", "createDenoPlatform", "createNodePlatform"];

// tsdown.config.ts links the core to one module or the other: the web one must fit in its place.
const fitsInPlace: typeof RuntimeDetection = {} as typeof WebPlatform;
void fitsInPlace;

// Variable specifiers: the type checker must not need dist/ (it is built after type checking).
const FULL: string = `${ROOT}dist/index.mjs`;
const WEB: string = `${ROOT}dist/index.web.mjs`;

it("exports what the full build does, except the Node, Deno and Bun platforms", async () => {
  const full = Object.keys(await import(FULL)).sort();
  const web = Object.keys(await import(WEB)).sort();
  expect(full).toEqual(expect.arrayContaining([...RUNTIME_PLATFORMS, "createWebPlatform"]));
  expect(web).toEqual(full.filter((name) => !RUNTIME_PLATFORMS.includes(name)));
});

it("carries no Node platform code, which the full build does", () => {
  const chunks = readFileSync(FULL, "utf8").match(/from "\.\/([\w.-]+\.mjs)"/g) ?? [];
  const full = [FULL, ...chunks.map((from) => `${ROOT}dist/${from.slice(8, -1)}`)]
    .map((file) => readFileSync(file, "utf8"))
    .join("\n");
  expect(full).toContain("node:tls");
  const web = readFileSync(WEB, "utf8");
  expect(web).not.toContain("node:tls");
  expect(web).not.toMatch(/\bfrom "\.\//);
});

it("package.json sends the web conditions to the web build and every other one to the full", () => {
  const packageJson = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as {
    exports: Record<string, Record<string, { types: string; default: string }>>;
  };
  const web = { types: "./dist/index.web.d.mts", default: "./dist/index.web.mjs" };
  expect(packageJson.exports["."]).toEqual({
    workerd: web,
    worker: web,
    browser: web,
    default: { types: "./dist/index.d.mts", default: "./dist/index.mjs" },
  });
});
