// Shared by build.mjs and check-bundle.mjs: bundles widget-ui/src/index.tsx
// into one minified IIFE (widget.js) and one CSS file (widget.css).
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

export const UI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = path.resolve(UI_DIR, "..");
export const RESOURCES_DIR = path.join(
  REPO_DIR,
  "backwardcompatibilityml",
  "widgets",
  "compatibility_analysis",
  "resources",
);
export const OUTPUT_FILES = ["widget.js", "widget.css"];
export const MAX_JS_BYTES = 400 * 1024;

/** Builds into outDir; returns the sizes. Throws on any problem. */
export async function buildBundle(outDir) {
  const result = await esbuild.build({
    absWorkingDir: REPO_DIR,
    entryPoints: [path.join(UI_DIR, "src", "index.tsx")],
    outfile: path.join(outDir, "widget.js"),
    bundle: true,
    minify: true,
    format: "iife",
    platform: "browser",
    target: "es2020",
    jsx: "automatic",
    define: { "process.env.NODE_ENV": '"production"' },
    // Evaluate the bundle only once even when the notebook inlines it in
    // every widget's output.
    banner: { js: "if(!window.BackwardCompatibilityML){" },
    footer: { js: "}" },
    legalComments: "eof",
    sourcemap: false,
    metafile: false,
    logLevel: "warning",
    write: true,
  });
  if (result.errors.length > 0) throw new Error("esbuild failed");
  const js = await readFile(path.join(outDir, "widget.js"), "utf8");
  const css = await readFile(path.join(outDir, "widget.css"), "utf8");
  // The files are inlined into <script> and <style> elements.
  if (/<\/script/i.test(js) || /<!--/.test(js)) throw new Error("widget.js contains </script or <!--");
  if (/<\/style/i.test(css)) throw new Error("widget.css contains </style");
  if (/https?:\/\/|@import|@font-face/i.test(css)) throw new Error("widget.css refers to the network");
  const jsBytes = Buffer.byteLength(js);
  const cssBytes = Buffer.byteLength(css);
  if (jsBytes > MAX_JS_BYTES) {
    throw new Error(`widget.js is ${jsBytes} bytes, over the budget of ${MAX_JS_BYTES} bytes`);
  }
  return { jsBytes, cssBytes };
}

export function kb(bytes) {
  return `${(bytes / 1024).toFixed(1)} KB`;
}
