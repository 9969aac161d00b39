/**
 * The size budget of the core entry point: everything `@managed-identity/client` exports (the
 * client, every back-end, the memory cache and the dependencies they pull in), bundled from the
 * npm build by esbuild as a Cloudflare Worker build would, minified and gzipped. The `workerd`
 * condition resolves it to the web build (dist/index.web.mjs), which is what a Worker gets.
 * Prints the size and what each dependency adds; exits 1 when over budget. Run after
 * `npm run build`.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build, type Plugin } from "esbuild";
import { RUNTIME_DETECTION, WEB_ONLY_PLATFORM } from "../tsdown.config.ts";

/**
 * The enforced ceiling for the gzipped core entry a Worker gets, in bytes. Issue 6 asks for 8 KiB;
 * with every back-end, valibot and the engine the web build is 14.7 KB (ofetch, std-env, the default
 * unstorage instance and the Node/Deno/Bun platform code already taken out of it), so the target
 * is not met and the issue stays open. This ceiling stops regressions meanwhile. It was 14 KiB and
 * went to 15 KiB once, for review fixes that correctness required (a secret-aware cache partition,
 * storage timeouts, claims-challenge generations, stricter date parsing); keep it going down.
 */
export const BUDGET_BYTES = 15 * 1024;
/** The issue's target, printed beside the result. */
const TARGET_BYTES = 8 * 1024;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Measure {
  minified: number;
  gzipped: number;
  /** Whether the bundle reaches Node built-ins (the pinned TLS of the full build does). */
  nodeBuiltins: boolean;
}

/** Bundles the package entry as a Worker build does; `external` packages are left out. */
async function measure(
  external: string[] = [],
  platform: "browser" | "node" = "browser",
): Promise<Measure> {
  const result = await build({
    stdin: {
      // The package name resolves through package.json `exports` to the npm build.
      contents: 'export * from "@managed-identity/client";',
      resolveDir: ROOT,
      loader: "js",
    },
    bundle: true,
    minify: true,
    format: "esm",
    platform,
    conditions: platform === "browser" ? ["workerd", "worker", "browser"] : [],
    target: "es2022",
    external,
    write: false,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  return {
    minified: code.byteLength,
    gzipped: gzipSync(code, { level: 9 }).byteLength,
    nodeBuiltins: new TextDecoder().decode(code).includes("node:tls"),
  };
}

const packageJson = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as {
  dependencies?: Record<string, string>;
};
if (!existsSync(`${ROOT}dist/index.mjs`) || !existsSync(`${ROOT}dist/index.web.mjs`)) {
  console.error("dist/index.mjs or dist/index.web.mjs is missing: run `npm run build` first.");
  process.exit(1);
}
const dependencies = Object.keys(packageJson.dependencies ?? {});
const total = await measure();
const own = await measure(dependencies);
if (total.nodeBuiltins) {
  console.error(
    "The Worker bundle contains the Node platform code: package.json `exports` no longer sends the workerd condition to the web build.",
  );
  process.exit(1);
}
console.log(
  `core entry, web build (esbuild, browser/workerd conditions, minified, gzip -9): ${total.gzipped} bytes gzipped (${total.minified} minified); budget ${BUDGET_BYTES} bytes`,
);
console.log(`  this package's own code: ${own.gzipped} bytes gzipped (${own.minified} minified)`);
for (const dependency of dependencies) {
  const without = await measure([dependency]);
  const added = total.minified - without.minified;
  console.log(
    added === 0
      ? `  ${dependency}: not in the core entry`
      : `  ${dependency}: +${total.gzipped - without.gzipped} bytes gzipped (+${added} minified)`,
  );
}
/** The swap tsdown.config.ts makes for the web build, so the sources below are what it bundles. */
const webPlatform: Plugin = {
  name: "web-platform",
  setup(builder) {
    builder.onResolve({ filter: /platform\/index\.ts$/ }, ({ path, resolveDir }) =>
      resolve(resolveDir, path) === RUNTIME_DETECTION ? { path: WEB_ONLY_PLATFORM } : undefined,
    );
  },
};
// Where this package's own bytes go in the web build, by source file (minified, before gzip).
const sources = await build({
  entryPoints: [`${ROOT}src/index.web.ts`],
  plugins: [webPlatform],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  conditions: ["workerd", "worker", "browser"],
  target: "es2022",
  external: dependencies,
  write: false,
  metafile: true,
  logLevel: "silent",
});
const inputs = Object.values(sources.metafile.outputs)[0]?.inputs ?? {};
const largest = Object.entries(inputs)
  .map(([file, input]) => [file, input.bytesInOutput] as const)
  .filter(([, bytes]) => bytes > 0)
  .sort((a, b) => b[1] - a[1])
  .slice(0, 10);
console.log(
  `  own code, largest files (minified bytes): ${largest.map(([file, bytes]) => `${file.replace(/^src\//, "")} ${bytes}`).join(", ")}`,
);
const node = await measure([], "node");
console.log(
  `for comparison, the full entry (dist/index.mjs: Node, Deno and Bun platforms, TLS pinning) bundled for Node (--platform=node, as a serverless bundle): ${node.gzipped} bytes gzipped (${node.minified} minified)`,
);
if (total.gzipped > BUDGET_BYTES) {
  console.error(
    `Over budget by ${total.gzipped - BUDGET_BYTES} bytes: the core entry is ${total.gzipped} bytes gzipped, the budget ${BUDGET_BYTES}.`,
  );
  process.exit(1);
}
console.log(
  `Within the enforced ceiling (${BUDGET_BYTES - total.gzipped} bytes to spare); the 8 KiB target is ${total.gzipped > TARGET_BYTES ? `still ${total.gzipped - TARGET_BYTES} bytes away` : "met"}.`,
);
