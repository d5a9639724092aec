// npm run build: writes the committed bundle into the package's resources.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { buildBundle, kb, MAX_JS_BYTES, REPO_DIR, RESOURCES_DIR } from "./build-lib.mjs";

const outDir = process.argv[2] ? path.resolve(process.argv[2]) : RESOURCES_DIR;
try {
  await mkdir(outDir, { recursive: true });
  const { jsBytes, cssBytes } = await buildBundle(outDir);
  const rel = path.relative(REPO_DIR, outDir) || ".";
  console.log(`${rel}/widget.js  ${kb(jsBytes)} (${jsBytes} bytes; budget ${kb(MAX_JS_BYTES)})`);
  console.log(`${rel}/widget.css ${kb(cssBytes)} (${cssBytes} bytes)`);
} catch (err) {
  console.error(`build failed: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
