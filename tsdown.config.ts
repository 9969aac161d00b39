import { existsSync, readFileSync } from "node:fs";
import { defineConfig } from "tsdown";

/**
 * The source of every entry point the npm package may ship, by output name (`dist/<name>.mjs`).
 * jsr.json exports the same modules from these sources; test/packaging.test.ts checks both.
 */
export const ENTRY_POINTS: Readonly<Record<string, string>> = {
  index: "src/index.ts",
  emulator: "src/emulator/index.ts",
  cli: "src/cli/index.ts",
};

const OUTPUT = /^\.\/dist\/([\w-]+)\.mjs$/;

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

export default defineConfig({
  entry: entries(),
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
});
