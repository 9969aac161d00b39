import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineConfig, type UserConfig } from "tsdown";

/**
 * The source of every entry point the npm package may ship, by output name (`dist/<name>.mjs`).
 * jsr.json exports the same modules from these sources; test/packaging.test.ts checks both.
 */
export const ENTRY_POINTS: Readonly<Record<string, string>> = {
  index: "src/index.ts",
  // The web build of `.`, for the `workerd`, `worker` and `browser` export conditions.
  "index.web": "src/index.web.ts",
  emulator: "src/emulator/index.ts",
  cli: "src/cli/index.ts",
};

const OUTPUT = /^\.\/dist\/([\w.-]+)\.mjs$/;

/** The output names package.json ships: every `./dist/<name>.mjs` in `exports` and `bin`. */
export function shippedEntryNames(packageJson: { exports?: unknown; bin?: unknown }): string[] {
  const names = new Set<string>();
  const visit = (value: unknown): void => {
    if (typeof value === "string") {
      const name = OUTPUT.exec(value)?.[1];
      if (name) names.add(name);
    } else if (value && typeof value === "object") {
      for (const nested of Object.values(value)) visit(nested);
    }
  };
  visit(packageJson.exports);
  visit(packageJson.bin);
  return [...names].sort();
}

/**
 * Builds exactly what package.json `exports` and `bin` point at, so an entry point (the emulator,
 * the CLI) joins the build when it is added there, and not before.
 */
function entries(): Record<string, string> {
  const packageJson = JSON.parse(readFileSync("package.json", "utf8"));
  const result: Record<string, string> = {};
  for (const name of shippedEntryNames(packageJson)) {
    const source = ENTRY_POINTS[name];
    if (!source || !existsSync(source)) {
      throw new Error(
        `package.json ships dist/${name}.mjs, but tsdown.config.ts has no existing source for it (${source ?? "none listed in ENTRY_POINTS"}).`,
      );
    }
    result[name] = source;
  }
  return result;
}

/** Output names of web builds: they get the web platform module (see {@link webPlatform}). */
const WEB_BUILD = /\.web$/;
/** The runtime detection the core links to, and the web build's stand-in for it. */
export const RUNTIME_DETECTION: string = resolve("src/platform/index.ts");
export const WEB_ONLY_PLATFORM: string = resolve("src/platform/index.web.ts");

/**
 * Resolves the core's import of the runtime detection (`src/platform/index.ts`, which reaches the
 * Node, Deno and Bun platforms and the pinned TLS code) to the web-only `index.web.ts`. The core
 * itself never sniffs: the build decides which platform module it is linked with.
 */
function webPlatform() {
  return {
    name: "managed-identity:web-platform",
    resolveId(source: string, importer: string | undefined) {
      if (!importer || !source.endsWith("platform/index.ts")) return null;
      const target = resolve(importer, "..", source);
      return target === RUNTIME_DETECTION ? WEB_ONLY_PLATFORM : null;
    },
  };
}

const common: UserConfig = {
  format: "esm",
  // The core is a Web-API build: the platform layer reaches Node built-ins without `node:` imports.
  platform: "neutral",
  target: "es2022",
  // .mjs and .d.mts whatever the platform.
  fixedExtension: true,
  dts: true,
  outDir: "dist",
  clean: true,
  report: false,
};

function pick(all: Record<string, string>, web: boolean): Record<string, string> {
  return Object.fromEntries(Object.entries(all).filter(([name]) => WEB_BUILD.test(name) === web));
}

const shipped = entries();
const webEntries = pick(shipped, true);

// Two builds: the web one cannot share chunks with the other, whose client links the detection.
export default defineConfig([
  { ...common, entry: pick(shipped, false) },
  ...(Object.keys(webEntries).length > 0
    ? [{ ...common, entry: webEntries, plugins: [webPlatform()] }]
    : []),
]);
