import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  // Keep Vite's cache in the repository's node_modules, not widget-ui/.
  cacheDir: fileURLToPath(new URL("../node_modules/.vite", import.meta.url)),
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.{ts,tsx}"],
    setupFiles: ["tests/setup.ts"],
    globals: false,
    css: false,
    restoreMocks: true,
    // The machine that runs the suite may be busy: a slow test is not a failed one.
    testTimeout: 30_000,
  },
});
