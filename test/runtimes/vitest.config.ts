import { defineConfig } from "vitest/config";

/**
 * The runtime matrix (`npm run test:runtimes`): the Node runner and the drivers that launch Deno,
 * Bun and workerd. The runners those drivers launch (deno/, bun/, workerd/) are not vitest files.
 */
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/runtimes/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
