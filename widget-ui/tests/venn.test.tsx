import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { VennDiagram } from "../src/components/VennDiagram";
import { makeEvaluation } from "./fixtures";

describe("VennDiagram", () => {
  it("has region buttons named with count and share of the dataset", () => {
    const onSelectRegion = vi.fn();
    const { container } = render(
      <VennDiagram evaluation={makeEvaluation(1)} activeRegion="common" onSelectRegion={onSelectRegion} />,
    );
    // dataset_size 360 for the testing point
    expect(screen.getByRole("button", { name: "Progress: 60 instances, 16.7% of the dataset" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Common: 60 instances, 16.7% of the dataset" }).getAttribute("aria-pressed")).toBe("true");
    const regress = screen.getByRole("button", { name: "Regress: 20 instances, 5.6% of the dataset" });
    fireEvent.click(regress);
    expect(onSelectRegion).toHaveBeenLastCalledWith("regress");
    // The drawn regions filter too.
    fireEvent.click(container.querySelector('path[data-region="progress"]')!);
    expect(onSelectRegion).toHaveBeenLastCalledWith("progress");
    const names = [...container.querySelectorAll(".bcml-venn-name")].map((n) => n.textContent);
    expect(names).toEqual(["h1", "h2"]);
  });

  it("area-proportional circles", () => {
    const { container } = render(
      <VennDiagram evaluation={makeEvaluation(1)} activeRegion={null} onSelectRegion={() => {}} />,
    );
    const [c1, c2] = [...container.querySelectorAll(".bcml-venn-outline")].map((c) => Number(c.getAttribute("r")));
    expect((c1 / c2) ** 2).toBeCloseTo(120 / 80, 5);
  });

  it("is empty but working when neither model errs", () => {
    const onSelectRegion = vi.fn();
    const { container } = render(
      <VennDiagram
        evaluation={makeEvaluation(1, { regions: { progress: 0, common: 0, regress: 0 }, error_counts: { h1: 0, h2: 0 } })}
        activeRegion={null}
        onSelectRegion={onSelectRegion}
      />,
    );
    expect(screen.getByText(/Neither h1 nor h2 makes an error/)).toBeTruthy();
    expect(container.querySelector("svg")).toBeNull();
    expect(screen.getByRole("button", { name: "Regress: 0 instances, 0.0% of the dataset" })).toBeTruthy();
  });

  it("uses the singular for one instance", () => {
    render(
      <VennDiagram
        evaluation={makeEvaluation(1, { regions: { progress: 0, common: 0, regress: 1 } })}
        activeRegion={null}
        onSelectRegion={() => {}}
      />,
    );
    expect(screen.getByRole("button", { name: "Regress: 1 instance, 0.3% of the dataset" })).toBeTruthy();
  });
});
