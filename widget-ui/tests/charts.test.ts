import { describe, expect, it } from "vitest";
import { paddedDomain } from "../src/charts/axis";
import { paretoFrontLine, paretoIndices } from "../src/charts/pareto";
import { distanceForOverlap, overlapArea, regionPaths, vennLayout } from "../src/charts/venn";
import { fmt3, fmtEta, fmtLambda, fmtLoss, fmtPercent, fmtSigned3, pointLabel } from "../src/format";
import { FAMILIES, makePoint } from "./fixtures";

describe("venn", () => {
  it("overlap area: disjoint, contained, partial", () => {
    expect(overlapArea(1, 1, 2)).toBe(0);
    expect(overlapArea(2, 1, 0.5)).toBeCloseTo(Math.PI);
    // Two unit circles at distance 1: 2π/3 - √3/2.
    expect(overlapArea(1, 1, 1)).toBeCloseTo((2 * Math.PI) / 3 - Math.sqrt(3) / 2, 10);
  });

  it("bisection finds the distance for a given overlap area", () => {
    const r1 = Math.sqrt(120 / Math.PI);
    const r2 = Math.sqrt(80 / Math.PI);
    for (const common of [1, 20, 60, 79]) {
      const d = distanceForOverlap(r1, r2, common);
      expect(overlapArea(r1, r2, d)).toBeCloseTo(common, 6);
    }
    expect(distanceForOverlap(r1, r2, 0)).toBeCloseTo(r1 + r2);
    expect(distanceForOverlap(r1, r2, 80)).toBeCloseTo(r1 - r2);
  });

  it("layout keeps areas proportional and fits the box", () => {
    const layout = vennLayout(120, 80, 60, 300, 150, 4)!;
    const ratio = (layout.c1.r / layout.c2.r) ** 2;
    expect(ratio).toBeCloseTo(120 / 80, 6);
    const k = Math.PI * layout.c1.r ** 2 / 120;
    expect(overlapArea(layout.c1.r, layout.c2.r, layout.d) / k).toBeCloseTo(60, 4);
    expect(layout.c1.x - layout.c1.r).toBeGreaterThanOrEqual(3.99);
    expect(layout.c2.x + layout.c2.r).toBeLessThanOrEqual(296.01);
    expect(2 * Math.max(layout.c1.r, layout.c2.r)).toBeLessThanOrEqual(142.01);
  });

  it("region paths for overlap, no overlap, containment and no errors", () => {
    const partial = regionPaths(vennLayout(120, 80, 60, 300, 150)!);
    expect(partial.progress && partial.common && partial.regress).toBeTruthy();
    const apart = regionPaths(vennLayout(50, 50, 0, 300, 150)!);
    expect(apart.common).toBe("");
    const inside = regionPaths(vennLayout(100, 40, 40, 300, 150)!);
    expect(inside.regress).toBe("");
    expect(inside.evenOdd).toBe(true);
    const h2Perfect = regionPaths(vennLayout(30, 0, 0, 300, 150)!);
    expect(h2Perfect.regress).toBe("");
    expect(h2Perfect.progress).not.toBe("");
    expect(vennLayout(0, 0, 0, 300, 150)).toBeNull();
  });
});

describe("pareto", () => {
  it("marks points no other point of the same dataset dominates", () => {
    const pts = [
      makePoint(0, { training: true, testing: false, btc: 0.9, performance: 0.9 }),
      makePoint(2, { training: true, testing: false, btc: 0.95, performance: 0.85 }),
      makePoint(4, { training: true, testing: false, btc: 0.85, performance: 0.85 }), // dominated by 0
      makePoint(1, { training: false, testing: true, btc: 0.8, performance: 0.8 }), // alone in testing
    ];
    expect([...paretoIndices(pts, "btc")].sort()).toEqual([0, 1, 2]);
    expect(paretoIndices([], "bec").size).toBe(0);
  });

  it("leaves out points whose metric or performance is null (not computed)", () => {
    const pts = [
      makePoint(0, { btc: 0.9, performance: 0.9 }),
      makePoint(2, { btc: null, performance: 0.99 }), // would top the front at btc "0"
      makePoint(4, { btc: 0.95, performance: null }), // would top it at performance "0"
      makePoint(6, { btc: 0.8, performance: 0.8 }), // dominated by 0
    ];
    expect([...paretoIndices(pts, "btc")]).toEqual([0]);
    expect(paretoFrontLine(pts, new Set([0, 2, 4]), "btc").map((p) => [p.point.datapoint_index, p.x, p.y])).toEqual([[0, 0.9, 0.9]]);
  });

  it("equal points do not dominate each other", () => {
    const a = makePoint(0, { btc: 0.9, performance: 0.9 });
    const b = makePoint(2, { btc: 0.9, performance: 0.9 });
    expect(paretoIndices([a, b], "btc").size).toBe(2);
  });
});

describe("paddedDomain", () => {
  it("pads, and survives a single value or none", () => {
    const [lo, hi] = paddedDomain([0.5, 1]);
    expect(lo).toBeLessThan(0.5);
    expect(hi).toBeGreaterThan(1);
    const [a, b] = paddedDomain([0.7]);
    expect(a).toBeLessThan(0.7);
    expect(b).toBeGreaterThan(0.7);
    expect(paddedDomain([])).toEqual([0, 1]);
  });
});

describe("format", () => {
  it("prints values", () => {
    expect(fmt3(0.93149)).toBe("0.931");
    expect(fmt3(null)).toBe("n/a");
    expect(fmtSigned3(0.03)).toBe("+0.030");
    expect(fmtSigned3(-0.0123)).toBe("-0.012");
    expect(fmtSigned3(-0.0001)).toBe("0.000");
    expect(fmtLambda(0.30000000000000004)).toBe("0.3");
    expect(fmtLambda(0.25)).toBe("0.25");
    // A fine step (lambda_c_stepsize 0.0025) keeps its digits: not "0.003" for 0.0025.
    expect(fmtLambda(0.0025)).toBe("0.0025");
    expect(fmtLambda(0.0075)).toBe("0.0075");
    expect(fmtLambda(0.15000000000000002)).toBe("0.15");
    expect(fmtLambda(null)).toBe("n/a");
    expect(fmtPercent(20, 360)).toBe("5.6%");
    expect(fmtPercent(0, 0)).toBe("0.0%");
    expect(fmtPercent(60, 360)).toBe("16.7%");
    expect(fmtEta(12.4)).toBe("12 s");
    expect(fmtEta(125)).toBe("2 min 5 s");
    expect(fmtEta(null)).toBe("unknown");
    // A loss keeps three significant digits: a small one late in training is not "0.000".
    expect(fmtLoss(0.73125)).toBe("0.731");
    expect(fmtLoss(0.7)).toBe("0.700");
    expect(fmtLoss(0.00041234)).toBe("0.000412");
    expect(fmtLoss(12.3456)).toBe("12.3");
    expect(fmtLoss(123456)).toBe("1.23e+5");
    expect(fmtLoss(Number.NaN)).toBe("n/a");
  });

  it("names a point for assistive technology", () => {
    const p = makePoint(1, {
      "new-error": true,
      "strict-imitation": false,
      lambda_c: 0.25,
      performance: 0.9312,
      btc: 0.9824,
      bec: 0.3051,
    });
    expect(pointLabel(p, FAMILIES)).toBe("New Error, testing, lambda_c 0.25, performance 0.931, BTC 0.982, BEC 0.305");
  });
});
