import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen, within } from "@testing-library/react";
import { lambdaDomainOf, ScatterPlot } from "../src/components/ScatterPlot";
import { h1ReferenceLines } from "../src/state";
import { FAMILIES, makePoint, makeSummary } from "./fixtures";
import type { DataPoint, FamilyInfo } from "../src/types";

export function renderPlot(
  points: DataPoint[],
  selectedIndex: number | null = null,
  metric: "btc" | "bec" = "btc",
  families: FamilyInfo[] = FAMILIES,
) {
  const onSelect = vi.fn();
  const h1 = h1ReferenceLines(points);
  const utils = render(
    <ScatterPlot
      metric={metric}
      points={points}
      families={families}
      lambdaDomain={lambdaDomainOf(points)}
      h1Lines={h1}
      selectedIndex={selectedIndex}
      onSelect={onSelect}
      yLabel="model accuracy"
    />,
  );
  return { onSelect, ...utils };
}

describe("ScatterPlot", () => {
  it("renders one focusable button per point with an accessible name", () => {
    const points = makeSummary(8).data;
    const { container } = renderPlot(points);
    const marks = container.querySelectorAll("[data-datapoint-index]");
    expect(marks).toHaveLength(8);
    for (const m of marks) {
      expect(m.getAttribute("tabindex")).toBe("0");
      expect(m.getAttribute("role")).toBe("button");
    }
    const p = makePoint(1, { lambda_c: 0.25, performance: 0.9312, btc: 0.9824, bec: 0.3051, "new-error": true, "strict-imitation": false });
    renderPlot([p]);
    expect(
      screen.getByRole("button", { name: "New Error, testing, lambda_c 0.25, performance 0.931, BTC 0.982, BEC 0.305" }),
    ).toBeTruthy();
    expect(document.querySelector('[data-plot="btc"] [data-datapoint-index="1"]')).toBeTruthy();
  });

  it("uses circles for New Error and triangles for Strict Imitation", () => {
    const ne = makePoint(0, { "new-error": true, "strict-imitation": false });
    const si = makePoint(2, { "new-error": false, "strict-imitation": true });
    const { container } = renderPlot([ne, si]);
    const d0 = container.querySelector('[data-datapoint-index="0"]')!.getAttribute("d")!;
    const d2 = container.querySelector('[data-datapoint-index="2"]')!.getAttribute("d")!;
    expect(d0).toMatch(/A/); // arcs: a circle
    expect(d2).not.toMatch(/A/); // straight lines: a triangle
  });

  it("selects on click, Enter and Space", () => {
    const { onSelect, container } = renderPlot(makeSummary(4).data);
    const mark = container.querySelector('[data-datapoint-index="2"]')!;
    fireEvent.click(mark);
    fireEvent.keyDown(mark, { key: "Enter" });
    fireEvent.keyDown(mark, { key: " " });
    fireEvent.keyDown(mark, { key: "a" });
    expect(onSelect.mock.calls).toEqual([[2], [2], [2]]);
  });

  it("makes the selected point stand out", () => {
    const { container } = renderPlot(makeSummary(4).data, 3);
    const sel = container.querySelector('[data-datapoint-index="3"]')!;
    expect(sel.getAttribute("aria-pressed")).toBe("true");
    expect(sel.getAttribute("class")).toContain("bcml-point-selected");
    expect(container.querySelector('[data-datapoint-index="1"]')!.getAttribute("aria-pressed")).toBe("false");
  });

  it("draws h1's reference line per dataset in the dataset colour", () => {
    const { container } = renderPlot(makeSummary(4).data);
    const lines = container.querySelectorAll(".bcml-h1-line");
    expect(lines).toHaveLength(2);
    expect(container.querySelector('.bcml-h1-label[data-dataset="training"]')!.textContent).toBe("h1 training 0.910");
    expect(container.querySelector('.bcml-h1-label[data-dataset="testing"]')!.textContent).toBe("h1 testing 0.880");
    const training = renderPlot(makeSummary(4).data.filter((p) => p.training));
    expect(training.container.querySelectorAll(".bcml-h1-line")).toHaveLength(1);
  });

  it("marks Pareto-optimal points", () => {
    const pts = [
      makePoint(0, { btc: 0.9, performance: 0.9 }),
      makePoint(2, { btc: 0.8, performance: 0.8 }),
    ];
    const { container } = renderPlot(pts);
    expect(container.querySelectorAll(".bcml-pareto-ring")).toHaveLength(1);
    expect(container.querySelector('[data-datapoint-index="0"]')!.getAttribute("aria-description")).toBe("Pareto-optimal");
    expect(container.querySelector('[data-datapoint-index="2"]')!.hasAttribute("aria-description")).toBe(false);
  });

  it("shows a tooltip with all values on hover and focus", () => {
    const { container } = renderPlot([makePoint(0, { nfr: 0.0123, pfr: 0.0456 })]);
    const mark = container.querySelector('[data-datapoint-index="0"]')!;
    fireEvent.mouseEnter(mark);
    const tip = screen.getByRole("tooltip");
    for (const t of ["lambda_c", "BTC", "BEC", "NFR", "0.012", "PFR", "0.046", "h1 model accuracy"]) {
      expect(within(tip).getByText(t, { exact: false })).toBeTruthy();
    }
    fireEvent.mouseLeave(mark);
    expect(screen.queryByRole("tooltip")).toBeNull();
    fireEvent.focus(mark);
    expect(screen.getByRole("tooltip")).toBeTruthy();
    fireEvent.blur(mark);
    // A mouse click focuses without pinning the tooltip.
    fireEvent.mouseDown(mark);
    fireEvent.focus(mark);
    expect(screen.queryByRole("tooltip")).toBeNull();
  });

  it("renders axes with d3 and an empty message without points", () => {
    const { container } = renderPlot([]);
    expect(container.querySelectorAll(".bcml-axis .tick").length).toBeGreaterThan(2);
    expect(screen.getByText("No datapoints to show")).toBeTruthy();
  });

  it("draws no NaN for points whose numbers are null, and says how many it leaves out", () => {
    const points = [
      ...makeSummary(6).data,
      makePoint(6, { btc: null, performance: 0.99 }), // best performance, BTC not computed
      makePoint(7, { performance: null }),
    ];
    const { container } = renderPlot(points, 6, "btc");
    const attributes = [...container.querySelectorAll("*")].flatMap((el) => [...el.attributes].map((a) => `${el.tagName} ${a.name}=${a.value}`));
    expect(attributes.filter((a) => /NaN|undefined|Infinity/.test(a))).toEqual([]);
    const drawn = [...container.querySelectorAll("[data-datapoint-index]")].map((e) => e.getAttribute("data-datapoint-index"));
    expect(drawn).not.toContain("6");
    expect(drawn).not.toContain("7");
    expect(drawn).toHaveLength(6);
    expect(screen.getByText(/2 datapoints are not drawn: no BTC or model accuracy \(not computed\)/)).toBeTruthy();
    expect(screen.queryByText("No datapoints in the zoomed area")).toBeNull();
    // The same points have a BEC: only the one without performance is left out there.
    const bec = renderPlot(points, null, "bec").container;
    expect(bec.querySelectorAll("[data-datapoint-index]")).toHaveLength(7);
    expect(within(bec).getByText(/1 datapoint is not drawn/)).toBeTruthy();
  });

  it("says so when no point has numbers to draw", () => {
    renderPlot([makePoint(0, { performance: null }), makePoint(1, { performance: null })]);
    expect(screen.getByText("No datapoints to show")).toBeTruthy();
    expect(screen.queryByText("No datapoints in the zoomed area")).toBeNull();
  });

  it("fits each plot's x axis to its own metric", () => {
    const points = makeSummary(6).data;
    const btc = renderPlot(points, null, "btc").container.querySelector("svg")!;
    const [lo, hi] = btc.getAttribute("data-x-domain")!.split(",").map(Number);
    const values = points.map((p) => p.btc!);
    expect(lo).toBeLessThanOrEqual(Math.min(...values));
    expect(hi).toBeGreaterThanOrEqual(Math.max(...values));
    // Not the span of BTC and BEC together (BEC lies near 0.3-0.4).
    expect(lo).toBeGreaterThan(0.9);
  });
});
