import { describe, expect, it, vi } from "vitest";
import { act, fireEvent, render, screen } from "@testing-library/react";
import { fitDomains, offScale, zoomFromPixels, H1_MAX_STRETCH } from "../src/charts/domains";
import { lambdaDomainOf, ScatterPlot } from "../src/components/ScatterPlot";
import { FAMILIES, makePoint } from "./fixtures";
import type { DataPoint } from "../src/types";

/** BTC between 0.97 and 0.99, BEC between 0.2 and 0.9: the case that used to share one x axis. */
function spread(): DataPoint[] {
  return Array.from({ length: 8 }, (_, i) =>
    makePoint(i, { btc: 0.97 + 0.0025 * i, bec: 0.2 + 0.1 * i, performance: 0.93 + 0.002 * i, h1_performance: 0.92 }),
  );
}

function renderPlot(points: DataPoint[], metric: "btc" | "bec", h1 = { training: 0.92, testing: 0.92 }) {
  return render(
    <ScatterPlot
      metric={metric}
      points={points}
      families={FAMILIES}
      lambdaDomain={lambdaDomainOf(points)}
      h1Lines={h1}
      selectedIndex={null}
      onSelect={vi.fn()}
      yLabel="accuracy"
    />,
  );
}

const domainOf = (svg: Element, axis: "x" | "y") => svg.getAttribute(`data-${axis}-domain`)!.split(",").map(Number);

describe("axis domains", () => {
  it("fit each plot's own points with padding", () => {
    const points = spread();
    const btc = fitDomains(points, "btc", { training: null, testing: null });
    expect(btc.x[0]).toBeLessThan(0.97);
    expect(btc.x[0]).toBeGreaterThan(0.965);
    expect(btc.x[1]).toBeGreaterThan(0.9875);
    expect(btc.x[1]).toBeLessThan(0.993);
    const bec = fitDomains(points, "bec", { training: null, testing: null });
    expect(bec.x[0]).toBeLessThan(0.2);
    expect(bec.x[1]).toBeGreaterThan(0.9);
    // Identical values: a small span around them, not a zero-width axis.
    const same = fitDomains([makePoint(0, { btc: 0.5, performance: 0.7 }), makePoint(1, { btc: 0.5, performance: 0.7 })], "btc", {
      training: null,
      testing: null,
    });
    expect(same.x[1] - same.x[0]).toBeGreaterThan(0.015);
    expect(same.x[0]).toBeLessThan(0.5);
    expect(same.y[1]).toBeGreaterThan(0.7);
  });

  it("include h1's line when it is near the points, and leave it out when far", () => {
    const points = spread(); // performance 0.930 .. 0.944
    const near = fitDomains(points, "btc", { training: 0.92, testing: null });
    expect(near.y[0]).toBeLessThan(0.92);
    const far = fitDomains(points, "btc", { training: 0.5, testing: null });
    expect(far.y[0]).toBeGreaterThan(0.9);
    expect(H1_MAX_STRETCH).toBeGreaterThan(1);
    expect(offScale(0.5, far.y)).toBe("below");
    expect(offScale(0.99, far.y)).toBe("above");
    expect(offScale(0.935, far.y)).toBeNull();
  });

  it("turn a brushed rectangle into a zoom box, ignoring tiny ones", () => {
    const invertX = (px: number) => px / 100;
    const invertY = (py: number) => 1 - py / 100;
    const box = zoomFromPixels([[10, 20], [50, 80]], invertX, invertY)!;
    expect(box.x).toEqual([0.1, 0.5]);
    expect(box.y[0]).toBeCloseTo(0.2, 12);
    expect(box.y[1]).toBeCloseTo(0.8, 12);
    expect(zoomFromPixels([[10, 20], [12, 80]], invertX, invertY)).toBeNull();
  });
});

describe("the scatter plot's axes and zoom", () => {
  it("BTC and BEC plots each fit their own x axis", () => {
    const points = spread();
    const btc = renderPlot(points, "btc").container.querySelector("svg")!;
    const [lo, hi] = domainOf(btc, "x");
    expect(lo).toBeGreaterThan(0.96);
    expect(hi).toBeLessThan(1);
    const bec = renderPlot(points, "bec").container.querySelectorAll("svg");
    const [blo, bhi] = domainOf(bec[bec.length - 1], "x");
    expect(blo).toBeLessThan(0.2);
    expect(bhi).toBeGreaterThan(0.9);
  });

  it("shows h1's line inside the axis, or an arrow at the edge when it lies outside", () => {
    const inside = renderPlot(spread(), "btc").container;
    expect(inside.querySelectorAll(".bcml-h1-line")).toHaveLength(2);
    expect(inside.querySelector(".bcml-h1-offscale")).toBeNull();
    const far = renderPlot(spread(), "btc", { training: 0.5, testing: 0.99 }).container;
    expect(far.querySelectorAll(".bcml-h1-line")).toHaveLength(0);
    const training = far.querySelector('.bcml-h1-offscale[data-dataset="training"]')!;
    expect(training.getAttribute("data-offscale")).toBe("below");
    expect(training.textContent).toBe("h1 training 0.500 (below)");
    expect(far.querySelector('.bcml-h1-offscale[data-dataset="testing"]')!.textContent).toBe("h1 testing 0.990 (above)");
  });

  it("zooms to a dragged rectangle and resets with the button", async () => {
    const { container } = renderPlot(spread(), "btc");
    const svg = container.querySelector("svg")!;
    const reset = screen.getByRole("button", { name: "Reset zoom of the BTC plot" }) as HTMLButtonElement;
    expect(reset.disabled).toBe(true);
    expect(svg.getAttribute("data-zoomed")).toBe("false");
    const before = domainOf(svg, "x");
    const overlay = container.querySelector(".bcml-brush .overlay")!;
    expect(overlay).toBeTruthy();
    // d3-brush reads the pointer from clientX/Y relative to the element's box (0,0 in jsdom)
    // and follows the drag on the event's view.
    // (jsdom refuses its own window as the `view` member under vitest: set it on the event.)
    const view = container.ownerDocument.defaultView!;
    const mouse = (type: string, x: number, y: number) => {
      const event = new MouseEvent(type, { bubbles: true, cancelable: true, clientX: x, clientY: y, button: 0 });
      Object.defineProperty(event, "view", { value: view });
      return event;
    };
    act(() => {
      overlay.dispatchEvent(mouse("mousedown", 20, 10));
      view.dispatchEvent(mouse("mousemove", 200, 150));
      view.dispatchEvent(mouse("mouseup", 200, 150));
    });
    expect(svg.getAttribute("data-zoomed")).toBe("true");
    const after = domainOf(svg, "x");
    expect(after[0]).toBeGreaterThan(before[0]);
    expect(after[1]).toBeLessThan(before[1]);
    expect(reset.disabled).toBe(false);
    // Points outside the zoomed area are not drawn (nor focusable).
    expect(container.querySelectorAll("[data-datapoint-index]").length).toBeLessThan(8);
    // d3-drag swallows the click that ends a drag until its next timer tick
    // (registered before this one): let it pass, as a browser's next click would.
    await act(() => new Promise<void>((resolve) => setTimeout(resolve, 0)));
    fireEvent.click(reset);
    expect(svg.getAttribute("data-zoomed")).toBe("false");
    expect(domainOf(svg, "x")).toEqual(before);
    expect(container.querySelectorAll("[data-datapoint-index]")).toHaveLength(8);
  });
});
