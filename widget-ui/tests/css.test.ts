import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const css = readFileSync(path.resolve(__dirname, "../src/styles.css"), "utf8");

/** Top-level selectors of a flat stylesheet (no nested at-rules). */
function selectors(text: string): string[] {
  const noComments = text.replace(/\/\*[\s\S]*?\*\//g, "");
  const out: string[] = [];
  const re = /([^{}]+)\{[^{}]*\}/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(noComments))) {
    for (const s of m[1].split(",")) out.push(s.trim());
  }
  return out;
}

describe("styles.css", () => {
  it("scopes every rule under .bcml-widget", () => {
    const all = selectors(css);
    expect(all.length).toBeGreaterThan(50);
    const unscoped = all.filter((s) => !/^\.bcml-widget(?![\w-])/.test(s));
    expect(unscoped).toEqual([]);
  });

  it("uses only bcml- class names", () => {
    const classes = css.match(/\.[a-zA-Z][\w-]*/g) ?? [];
    const foreign = classes.filter((c) => !c.startsWith(".bcml-"));
    expect(foreign).toEqual([]);
  });

  it("loads nothing from the network (no fonts, no imports, no urls)", () => {
    expect(css).not.toMatch(/@import|@font-face|url\(|https?:/i);
  });
});
