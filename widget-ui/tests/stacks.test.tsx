import { describe, expect, it, vi } from "vitest";
import { act, fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { stackAt, stackClusters, type Placed } from "../src/charts/stacks";
import { lambdaDomainOf, ScatterPlot } from "../src/components/ScatterPlot";
import { menuPosition } from "../src/components/StackChooser";
import { h1ReferenceLines } from "../src/state";
import { FAMILIES, makePoint } from "./fixtures";
import type { DataPoint } from "../src/types";

/** 12 datapoints (3 lambda_c x 2 families x 2 datasets) with identical coordinates. */
function twelveStacked(): DataPoint[] {
  return Array.from({ length: 12 }, (_, i) =>
    makePoint(i, { lambda_c: Math.floor(i / 4) * 0.5, performance: 0.9, btc: 0.98, bec: 0.75, h1_performance: 0.9 }),
  );
}

function renderPlot(points: DataPoint[], selectedIndex: number | null = null, onSelect = vi.fn()) {
  const props = {
    metric: "btc" as const,
    points,
    families: FAMILIES,
    lambdaDomain: lambdaDomainOf(points),
    h1Lines: h1ReferenceLines(points),
    onSelect,
    yLabel: "accuracy",
  };
  const utils = render(<ScatterPlot {...props} selectedIndex={selectedIndex} />);
  const rerender = (selected: number | null) => utils.rerender(<ScatterPlot {...props} selectedIndex={selected} />);
  return { ...utils, onSelect, rerender };
}

const mark = (container: HTMLElement, i: number) => container.querySelector(`[data-datapoint-index="${i}"]`) as SVGElement;

describe("stacks", () => {
  const at = (point: DataPoint, cx: number, cy: number): Placed => ({ point, cx, cy });

  it("a stack is every marker within a few pixels, ordered by family, dataset, lambda_c", () => {
    const [a, b, c, d] = [makePoint(6), makePoint(0), makePoint(3), makePoint(1)];
    const placed = [at(a, 10, 10), at(b, 12, 13), at(c, 10, 10), at(d, 40, 10)];
    const stack = stackAt(placed, placed[0], FAMILIES);
    // 0: NE training 0; 6: SI training 0.25; 3: SI testing 0.
    expect(stack.map((p) => p.datapoint_index)).toEqual([0, 6, 3]);
    expect(stackAt(placed, placed[3], FAMILIES).map((p) => p.datapoint_index)).toEqual([1]);
  });

  it("counts clusters from the top marker down", () => {
    const pts = [0, 1, 2, 3].map((i) => makePoint(i));
    const placed = [at(pts[0], 0, 0), at(pts[1], 100, 0), at(pts[2], 2, 1), at(pts[3], 1, 0)];
    const clusters = stackClusters(placed);
    expect(clusters).toHaveLength(1);
    expect(clusters[0].size).toBe(3);
    expect(clusters[0].top.point.datapoint_index).toBe(3);
  });
});

describe("choosing among stacked points", () => {
  it("marks the stack with its size and offers every point of it on a click", () => {
    const { container, onSelect, rerender } = renderPlot(twelveStacked());
    expect([...container.querySelectorAll(".bcml-stack-badge")].map((b) => b.textContent)).toEqual(["×12"]);
    for (let i = 0; i < 12; i += 1) {
      // Whichever marker the click lands on (the top one in a browser), the menu lists all 12.
      fireEvent.click(mark(container, (i * 5) % 12));
      const menu = i === 0 ? screen.getByRole("menu", { name: "12 datapoints here: choose one" }) : screen.getByRole("menu");
      expect(menu.querySelectorAll('[role="menuitemradio"]')).toHaveLength(12);
      const item = menu.querySelector(`[data-choice-index="${i}"]`) as HTMLElement;
      fireEvent.click(item, { detail: 1 });
      expect(onSelect).toHaveBeenLastCalledWith(i);
      expect(screen.queryByRole("menu")).toBeNull();
      rerender(i);
      expect(mark(container, i).getAttribute("aria-pressed")).toBe("true");
    }
    expect(onSelect.mock.calls.map((c) => c[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it("lists lambda_c, family and dataset, grouped by family then dataset", () => {
    const { container } = renderPlot(twelveStacked(), 6);
    fireEvent.click(mark(container, 6));
    const items = screen.getAllByRole("menuitemradio");
    expect(items[0].textContent).toBe("lambda_c 0New Errortraining");
    expect(items.map((e) => e.getAttribute("data-choice-index"))).toEqual(
      ["0", "4", "8", "1", "5", "9", "2", "6", "10", "3", "7", "11"],
    );
    expect(items[0].getAttribute("aria-label")).toBe(
      "New Error, training, lambda_c 0, performance 0.900, BTC 0.980, BEC 0.750",
    );
    // The selected point is checked and has the focus.
    const selected = items.find((e) => e.getAttribute("data-choice-index") === "6")!;
    expect(selected.getAttribute("aria-checked")).toBe("true");
    expect(document.activeElement).toBe(selected);
  });

  it("is reachable by keyboard: arrows move, Enter chooses and focuses the point, Escape closes", async () => {
    const user = userEvent.setup();
    const { container, onSelect, rerender } = renderPlot(twelveStacked());
    fireEvent.click(mark(container, 3));
    const items = screen.getAllByRole("menuitemradio");
    expect(document.activeElement).toBe(items[0]);
    await user.keyboard("{ArrowDown}{ArrowDown}");
    expect(document.activeElement).toBe(items[2]);
    await user.keyboard("{ArrowUp}");
    expect(document.activeElement).toBe(items[1]);
    await user.keyboard("{End}");
    expect(document.activeElement).toBe(items[11]);
    await user.keyboard("{ArrowDown}");
    expect(document.activeElement).toBe(items[0]);
    await user.keyboard("{Enter}");
    expect(onSelect).toHaveBeenLastCalledWith(0);
    expect(screen.queryByRole("menu")).toBeNull();
    rerender(0);
    expect(document.activeElement).toBe(mark(container, 0));

    fireEvent.click(mark(container, 5));
    expect(screen.getByRole("menu")).toBeTruthy();
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("menu")).toBeNull();
    expect(document.activeElement).toBe(mark(container, 5));
    expect(onSelect).toHaveBeenCalledTimes(1);
  });

  it("closes on a click elsewhere", () => {
    const { container, onSelect } = renderPlot(twelveStacked());
    fireEvent.click(mark(container, 3));
    expect(screen.getByRole("menu")).toBeTruthy();
    act(() => {
      fireEvent.mouseDown(document.body);
    });
    expect(screen.queryByRole("menu")).toBeNull();
    expect(onSelect).not.toHaveBeenCalled();
  });

  it("selects a lone point at once, and a focused stacked point with Enter", () => {
    const points = [makePoint(0, { btc: 0.9, performance: 0.8 }), makePoint(1, { btc: 0.99, performance: 0.95 })];
    const { container, onSelect } = renderPlot(points);
    fireEvent.click(mark(container, 1));
    expect(onSelect).toHaveBeenLastCalledWith(1);
    expect(screen.queryByRole("menu")).toBeNull();
    expect(container.querySelector(".bcml-stack-badge")).toBeNull();

    const stacked = renderPlot(twelveStacked());
    fireEvent.keyDown(mark(stacked.container, 7), { key: "Enter" });
    expect(stacked.onSelect).toHaveBeenLastCalledWith(7);
    expect(screen.queryByRole("menu")).toBeNull();
  });

  it("places the menu beside the stack, inside the plot", () => {
    expect(menuPosition(100, 50, 520, 290)).toEqual({ left: 116, top: 34 });
    expect(menuPosition(400, 10, 520, 290)).toEqual({ left: 94, top: 0 });
    // No room beside it: below the stack, so that the stack stays visible.
    expect(menuPosition(250, 100, 520, 290)).toEqual({ left: 105, top: 116 });
    expect(menuPosition(150, 100, 200, 290)).toEqual({ left: 0, top: 116 });
  });

  it("says in the tooltip that points are stacked", () => {
    const { container } = renderPlot(twelveStacked());
    fireEvent.mouseEnter(mark(container, 2));
    expect(screen.getByRole("tooltip").textContent).toContain("12 datapoints here: click to choose one");
  });
});
