/**
 * Packaging: npm and JSR describe the same package, the npm tarball holds only what users need,
 * and publint, arethetypeswrong, `deno check` and `deno publish --dry-run` find nothing wrong.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify, stripVTControlCharacters } from "node:util";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { beforeAll, describe, expect, it } from "vitest";
import { ENTRY_POINTS, shippedEntryNames } from "../tsdown.config.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

interface PackageJson {
  name: string;
  version: string;
  license: string;
  exports: Record<string, unknown>;
  bin?: Record<string, string> | string;
  sideEffects?: boolean;
  type?: string;
}
interface JsrConfig {
  name: string;
  version: string;
  license: string;
  exports: Record<string, string>;
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(`${ROOT}${file}`, "utf8")) as T;
}

const packageJson = readJson<PackageJson>("package.json");
const jsr = readJson<JsrConfig>("jsr.json");
const deno = readJson<JsrConfig>("deno.json");

/** `.` → `index`, `./emulator` → `emulator`: the dist name of an export. */
function distName(subpath: string): string {
  return subpath === "." ? "index" : subpath.replace(/^\.\//, "");
}

/** npm, or a binary from node_modules/.bin, run in the repository root; rejects on a non-zero exit. */
async function binary(name: string, args: string[]): Promise<string> {
  try {
    const command = name === "npm" ? "npm" : `${ROOT}node_modules/.bin/${name}`;
    const { stdout, stderr } = await run(command, args, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      maxBuffer: 32 * 1024 * 1024,
    });
    return stripVTControlCharacters(`${stdout}\n${stderr}`);
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${name} ${args.join(" ")} failed:\n${stripVTControlCharacters(`${failed.stdout ?? ""}\n${failed.stderr ?? ""}`) || failed.message}`,
    );
  }
}

const libraryExports = Object.keys(packageJson.exports).filter((key) => key !== "./package.json");

describe("npm and JSR describe the same package", () => {
  it.each([
    ["jsr.json", jsr],
    ["deno.json", deno],
  ] as const)("%s has package.json's name, version and license", (_file, config) => {
    expect({ name: config.name, version: config.version, license: config.license }).toEqual({
      name: packageJson.name,
      version: packageJson.version,
      license: packageJson.license,
    });
  });

  it.each([
    ["jsr.json", jsr],
    ["deno.json", deno],
  ] as const)("%s exports the entry points package.json exports", (_file, config) => {
    expect(Object.keys(config.exports).sort()).toEqual([...libraryExports].sort());
  });

  it("jsr.json and deno.json export the same sources", () => {
    expect(deno.exports).toEqual(jsr.exports);
  });

  it.each(libraryExports)("export %s: JSR source and npm build are the same module", (subpath) => {
    const source = jsr.exports[subpath];
    expect(source, `jsr.json has no export ${subpath}`).toMatch(/^\.\/src\/.+\.ts$/);
    expect(existsSync(`${ROOT}${source}`), `${source} exists`).toBe(true);
    const name = distName(subpath);
    // tsdown builds dist/<name>.mjs from ENTRY_POINTS[name]: it must be the JSR source.
    expect(`./${ENTRY_POINTS[name]}`).toBe(source);
    const exported = packageJson.exports[subpath] as Record<string, unknown>;
    // `.` sends Workers and browsers to its web build; every other runtime gets `default`.
    const target = (subpath === "." ? exported.default : exported) as Record<string, string>;
    expect(Object.keys(target)[0], "types come first").toBe("types");
    expect(target).toEqual({ types: `./dist/${name}.d.mts`, default: `./dist/${name}.mjs` });
  });

  it("export .: the web conditions get the web build of the same source", () => {
    // src/index.web.ts is src/index.ts without the Node, Deno and Bun platforms (JSR serves
    // src/index.ts to Deno); test/runtimes/web-build.test.ts compares the two builds' exports.
    expect(ENTRY_POINTS["index.web"]).toBe("src/index.web.ts");
    const web = { types: "./dist/index.web.d.mts", default: "./dist/index.web.mjs" };
    expect(packageJson.exports["."]).toEqual({
      workerd: web,
      worker: web,
      browser: web,
      default: { types: "./dist/index.d.mts", default: "./dist/index.mjs" },
    });
  });

  it("is ESM only and free of side effects", () => {
    expect(packageJson.type).toBe("module");
    expect(packageJson.sideEffects).toBe(false);
  });
});

describe("the published artifacts", () => {
  beforeAll(async () => {
    await binary("tsdown", []);
  }, 120_000);

  it("the build produces every file package.json points at", () => {
    const names = shippedEntryNames(packageJson);
    expect(names).toContain("index");
    for (const name of names) {
      expect(existsSync(`${ROOT}dist/${name}.mjs`), `dist/${name}.mjs`).toBe(true);
    }
    for (const subpath of libraryExports) {
      expect(existsSync(`${ROOT}dist/${distName(subpath)}.d.mts`)).toBe(true);
    }
  });

  it("npm pack ships the build, package.json, README and LICENSE only", async () => {
    const output = await binary("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"]);
    const json = output.slice(output.indexOf("["), output.lastIndexOf("]") + 1);
    const files = (JSON.parse(json) as { files: { path: string }[] }[])[0]?.files.map(
      (file) => file.path,
    );
    expect(files).toContain("dist/index.mjs");
    expect(files).toContain("dist/index.d.mts");
    const unexpected = files?.filter(
      (path) => !/^(dist\/[^/]+\.(mjs|d\.mts)|package\.json|README\.md|LICENSE(\.md)?)$/.test(path),
    );
    expect(unexpected).toEqual([]);
  }, 60_000);

  it("publint reports nothing", async () => {
    const { messages, pkg } = await publint({ pkgDir: ROOT, level: "suggestion", pack: "npm" });
    expect(messages.map((message) => formatMessage(message, pkg))).toEqual([]);
  }, 60_000);

  it("arethetypeswrong reports nothing (ESM-only profile)", async () => {
    // Exits non-zero on any problem; the ESM-only profile ignores CommonJS resolution.
    const output = await binary("attw", [
      "--pack",
      ".",
      "--profile",
      "esm-only",
      "--format",
      "ascii",
      "--no-color",
      "--no-emoji",
    ]);
    for (const subpath of libraryExports) {
      expect(output).toContain(`"${packageJson.name}${subpath.slice(1)}"`);
    }
  }, 120_000);

  it("deno check passes on every JSR entry point", async () => {
    const output = await binary("deno", ["check", ...Object.values(jsr.exports)]);
    expect(output).toContain("Check");
  }, 120_000);

  it("deno publish --dry-run passes (no slow types) and publishes no tests", async () => {
    const output = await binary("deno", ["publish", "--dry-run", "--allow-dirty"]);
    expect(output).toContain("Success Dry run complete");
    const published = [...output.matchAll(/file:\/\/\S+/g)].map((match) =>
      match[0].slice(`file://${ROOT}`.length),
    );
    expect(published).toContain(jsr.exports["."]?.slice(2));
    expect(
      published.filter((path) => !/^(src\/.+\.ts|README\.md|LICENSE|deno\.json)$/.test(path)),
    ).toEqual([]);
  }, 120_000);
});
