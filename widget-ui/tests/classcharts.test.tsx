import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { AccuracyByClass, IncompatibleByClass } from "../src/components/ClassCharts";
import { makeEvaluation } from "./fixtures";

describe("AccuracyByClass", () => {
  it("one button per model and class; a click filters to that model's errors of that class", () => {
    const onFilter = vi.fn();
    render(<AccuracyByClass evaluation={makeEvaluation(1)} filter={{}} onFilter={onFilter} />);
    const bar = screen.getByRole("button", { name: "Class 1: h2 accuracy 85.0%, 18 of 120 wrong" });
    fireEvent.click(bar);
    expect(onFilter).toHaveBeenLastCalledWith({ model: "h2", class: 1 });
    const h1bar = screen.getByRole("button", { name: /^Class 0: h1 accuracy 95\.0%/ });
    fireEvent.keyDown(h1bar, { key: "Enter" });
    expect(onFilter).toHaveBeenLastCalledWith({ model: "h1", class: 0 });
    expect(screen.getAllByRole("button")).toHaveLength(6);
  });

  it("draws no bar for an accuracy that is null, rather than a 0.0% one", () => {
    const evaluation = makeEvaluation(1);
    evaluation.h1_accuracy_by_class = evaluation.h1_accuracy_by_class.map((c) => (c.class === 0 ? { ...c, accuracy: null } : c));
    render(<AccuracyByClass evaluation={evaluation} filter={{}} onFilter={() => {}} />);
    expect(screen.queryByRole("button", { name: /^Class 0: h1/ })).toBeNull();
    expect(screen.queryByRole("button", { name: /accuracy 0\.0%/ })).toBeNull();
    expect(screen.getByRole("button", { name: /^Class 0: h2 accuracy 97\.0%/ })).toBeTruthy();
    expect(screen.getAllByRole("button")).toHaveLength(5);
  });

  it("says so when the record has no accuracy by class (folders of the earlier tool)", () => {
    const evaluation = makeEvaluation(1, { h1_accuracy_by_class: [], h2_accuracy_by_class: [] });
    render(<AccuracyByClass evaluation={evaluation} filter={{}} onFilter={() => {}} />);
    expect(screen.getByText(/No accuracy by class/)).toBeTruthy();
    expect(screen.queryAllByRole("button")).toHaveLength(0);
    expect(screen.queryByText(/Click a bar/)).toBeNull();
  });

  it("marks the active bar", () => {
    render(<AccuracyByClass evaluation={makeEvaluation(1)} filter={{ model: "h1", class: 2 }} onFilter={() => {}} />);
    expect(screen.getByRole("button", { name: /^Class 2: h1/ }).getAttribute("aria-pressed")).toBe("true");
  });
});

describe("IncompatibleByClass", () => {
  it("shows each class's share of all incompatible instances; a click filters to regress + class", () => {
    const onFilter = vi.fn();
    render(<IncompatibleByClass evaluation={makeEvaluation(1)} filter={{}} onFilter={onFilter} />);
    const bar = screen.getByRole("button", { name: "Class 2: 60.0% of incompatible instances (12 of 20)" });
    fireEvent.click(bar);
    expect(onFilter).toHaveBeenLastCalledWith({ region: "regress", class: 2 });
    expect(screen.getByRole("button", { name: "Class 0: 15.0% of incompatible instances (3 of 20)" })).toBeTruthy();
  });

  it("classes without incompatible instances show 0%", () => {
    render(
      <IncompatibleByClass
        evaluation={makeEvaluation(1, { h2_incompatible_count_by_class: [{ class: 2, count: 4 }], incompatible_total: 4 })}
        filter={{}}
        onFilter={() => {}}
      />,
    );
    expect(screen.getByRole("button", { name: "Class 0: 0.0% of incompatible instances (0 of 4)" })).toBeTruthy();
  });

  it("says so when there are no incompatible instances", () => {
    render(
      <IncompatibleByClass
        evaluation={makeEvaluation(1, { h2_incompatible_count_by_class: [], incompatible_total: 0 })}
        filter={{}}
        onFilter={() => {}}
      />,
    );
    expect(screen.getByText(/No incompatible instances/)).toBeTruthy();
    // No bars: no hint to click one.
    expect(screen.queryByText(/click a bar/i)).toBeNull();
  });

  it("many classes scroll instead of squeezing", () => {
    const classes = Array.from({ length: 100 }, (_, i) => i);
    const { container } = render(
      <IncompatibleByClass
        evaluation={makeEvaluation(1, {
          sorted_classes: classes,
          h2_incompatible_count_by_class: classes.map((c) => ({ class: c, count: 1 })),
          incompatible_total: 100,
        })}
        filter={{}}
        onFilter={() => {}}
      />,
    );
    const svg = container.querySelector(".bcml-bars-scroll svg")!;
    expect(Number(svg.getAttribute("width"))).toBeGreaterThanOrEqual(100 * 15);
    expect(screen.getByText(/Scroll sideways for all 100 classes/)).toBeTruthy();
    expect(screen.getByRole("region", { name: /scrollable/ })).toBeTruthy();
    expect(screen.getAllByRole("button", { name: /of incompatible instances/ })).toHaveLength(100);
  });
});
