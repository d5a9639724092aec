// npm run check-bundle: rebuilds into a temporary folder and fails when the
// committed widget.js / widget.css differ from what the sources produce.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { buildBundle, kb, OUTPUT_FILES, REPO_DIR, RESOURCES_DIR } from "./build-lib.mjs";

const tmp = await mkdtemp(path.join(os.tmpdir(), "bcml-widget-"));
let failed = false;
try {
  const { jsBytes, cssBytes } = await buildBundle(tmp);
  for (const name of OUTPUT_FILES) {
    const committedPath = path.join(RESOURCES_DIR, name);
    const rel = path.relative(REPO_DIR, committedPath);
    let committed;
    try {
      committed = await readFile(committedPath);
    } catch {
      console.error(`check-bundle: ${rel} is missing. Run \`npm run build\` and commit it.`);
      failed = true;
      continue;
    }
    const fresh = await readFile(path.join(tmp, name));
    if (!committed.equals(fresh)) {
      console.error(
        `check-bundle: ${rel} is stale (committed ${committed.length} bytes, ` +
          `fresh build ${fresh.length} bytes). Run \`npm run build\` and commit it.`,
      );
      failed = true;
    }
  }
  if (!failed) {
    console.log(`check-bundle: widget.js (${kb(jsBytes)}) and widget.css (${kb(cssBytes)}) match the sources.`);
  }
} catch (err) {
  console.error(`check-bundle: build failed: ${err instanceof Error ? err.message : err}`);
  failed = true;
} finally {
  await rm(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
