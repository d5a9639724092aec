import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { Filters } from "../src/components/Filters";
import { PlotLegend } from "../src/components/PlotLegend";
import { ScatterPlot } from "../src/components/ScatterPlot";
import { datasetOf, familiesOf, familyLabel, familyOf, humanize, LEGACY_FAMILIES } from "../src/families";
import { pointLabel } from "../src/format";
import { DEFAULT_FILTERS, visiblePoints, withFamilyShown } from "../src/state";
import { FAMILIES, makeLegacyPoint, makeLegacySummary, makePoint, makeSummary } from "./fixtures";
import type { DataPoint, FamilyInfo, SweepSummary } from "../src/types";

const THREE: FamilyInfo[] = [
  { name: "new-error", label: "New Error" },
  { name: "strict-imitation", label: "Strict Imitation" },
  { name: "focal", label: "Focal dissonance" },
];

/** A sweep of three families, indices as the server maps them: (lambda * 3 + family) * 2 + dataset. */
function threeFamilySummary(): SweepSummary {
  const data: DataPoint[] = [];
  for (let l = 0; l < 2; l += 1) {
    for (let f = 0; f < 3; f += 1) {
      for (let d = 0; d < 2; d += 1) {
        const index = (l * 3 + f) * 2 + d;
        data.push(
          makePoint(index, {
            lambda_c: l * 0.5,
            family: THREE[f].name,
            dataset: d === 0 ? "training" : "testing",
            training: d === 0,
            testing: d === 1,
            // The seed's booleans stay false for a family they do not know.
            "new-error": f === 0,
            "strict-imitation": f === 1,
            btc: 0.9 + 0.01 * index,
            bec: 0.5 + 0.01 * index,
          }),
        );
      }
    }
  }
  return makeSummary(0, { families: THREE, data });
}

describe("families as data", () => {
  it("reads the summary's families, in order, with their labels", () => {
    expect(familiesOf(threeFamilySummary())).toEqual(THREE);
    expect(familiesOf(null)).toEqual([]);
  });

  it("falls back to the seed's two families when the summary lists none", () => {
    const legacy = makeLegacySummary(8);
    expect(legacy.families).toBeUndefined();
    expect(familiesOf(legacy)).toEqual([...LEGACY_FAMILIES]);
    expect(familiesOf(makeSummary(4, { families: [] }))).toEqual([...LEGACY_FAMILIES]);
  });

  it("adds a family a point names that the list lacks, and labels missing labels", () => {
    const summary = makeSummary(2, {
      families: [{ name: "new-error", label: "" } as FamilyInfo],
      data: [makePoint(0), makePoint(2, { family: "my_family" })],
    });
    expect(familiesOf(summary)).toEqual([
      { name: "new-error", label: "New Error" },
      { name: "my_family", label: "My family" },
    ]);
    const names = makeSummary(0, { families: ["strict-imitation", "focal"] as unknown as FamilyInfo[] });
    expect(familiesOf(names)).toEqual([
      { name: "strict-imitation", label: "Strict Imitation" },
      { name: "focal", label: "Focal" },
    ]);
    expect(humanize("strict-imitation")).toBe("Strict imitation");
  });

  it("reads a point's family and dataset from its fields, else from the seed's booleans", () => {
    const p = makePoint(3, { family: "focal", dataset: "testing", "new-error": false, "strict-imitation": false });
    expect(familyOf(p)).toBe("focal");
    expect(datasetOf(p)).toBe("testing");
    const legacy = makeLegacyPoint(2);
    expect(legacy.family).toBeUndefined();
    expect(familyOf(legacy)).toBe("strict-imitation");
    expect(datasetOf(legacy)).toBe("training");
    expect(familyOf(makeLegacyPoint(1))).toBe("new-error");
    expect(datasetOf(makeLegacyPoint(1))).toBe("testing");
  });

  it("labels a family from the list, the seed's names, or its name", () => {
    expect(familyLabel("focal", THREE)).toBe("Focal dissonance");
    expect(familyLabel("strict-imitation", [])).toBe("Strict Imitation");
    expect(familyLabel("brand-new", [])).toBe("Brand new");
    expect(familyLabel(null, THREE)).toBe("n/a");
    const p = threeFamilySummary().data[5];
    expect(pointLabel(p, THREE)).toMatch(/^Focal dissonance, testing, lambda_c 0, /);
  });

  it("filters any family by name", () => {
    const points = threeFamilySummary().data;
    const hidden = withFamilyShown([], "focal", false);
    expect(hidden).toEqual(["focal"]);
    const shown = visiblePoints(points, { ...DEFAULT_FILTERS, hiddenFamilies: hidden });
    expect(shown).toHaveLength(8);
    expect(shown.some((p) => p.family === "focal")).toBe(false);
    expect(withFamilyShown(hidden, "focal", true)).toEqual([]);
    // Older folders: the booleans decide.
    const legacy = makeLegacySummary(8).data;
    const ne = visiblePoints(legacy, { ...DEFAULT_FILTERS, hiddenFamilies: ["strict-imitation"] });
    expect(ne.map((p) => p.datapoint_index)).toEqual([0, 1, 4, 5]);
  });

  it("draws one checkbox, legend entry and marker shape per family", () => {
    const onChange = vi.fn();
    render(<Filters filters={DEFAULT_FILTERS} families={THREE} onChange={onChange} shown={12} total={12} />);
    for (const f of THREE) expect((screen.getByRole("checkbox", { name: f.label }) as HTMLInputElement).checked).toBe(true);
    fireEvent.click(screen.getByRole("checkbox", { name: "Focal dissonance" }));
    expect(onChange).toHaveBeenLastCalledWith({ hiddenFamilies: ["focal"] });

    const legend = render(<PlotLegend lambdaDomain={[0, 1]} families={THREE} />).container;
    const entries = [...legend.querySelectorAll("[data-family]")];
    expect(entries.map((e) => e.textContent)).toEqual(THREE.map((f) => f.label));
    const legendShapes = entries.map((e) => e.querySelector("path")!.getAttribute("d"));
    expect(new Set(legendShapes).size).toBe(3);

    const summary = threeFamilySummary();
    const plot = render(
      <ScatterPlot
        metric="btc"
        points={summary.data}
        families={THREE}
        lambdaDomain={[0, 1]}
        h1Lines={{ training: null, testing: null }}
        selectedIndex={null}
        onSelect={() => {}}
        yLabel="accuracy"
      />,
    ).container;
    const shapeOf = (i: number) => plot.querySelector(`[data-datapoint-index="${i}"]`)!.getAttribute("d");
    // Families 0, 1, 2 at lambda 0, training: indices 0, 2, 4; the same family keeps its shape.
    expect(new Set([shapeOf(0), shapeOf(2), shapeOf(4)]).size).toBe(3);
    expect(shapeOf(4)).toBe(shapeOf(10));
    expect(plot.querySelector('[data-datapoint-index="5"]')!.getAttribute("aria-label")).toMatch(/^Focal dissonance, testing/);
  });

  it("keeps the seed's look for New Error (circle) and Strict Imitation (triangle)", () => {
    const plot = render(
      <ScatterPlot
        metric="btc"
        points={makeLegacySummary(4).data}
        families={familiesOf(makeLegacySummary(4))}
        lambdaDomain={[0, 1]}
        h1Lines={{ training: null, testing: null }}
        selectedIndex={null}
        onSelect={() => {}}
        yLabel="accuracy"
      />,
    ).container;
    expect(plot.querySelector('[data-datapoint-index="0"]')!.getAttribute("d")).toMatch(/A/);
    expect(plot.querySelector('[data-datapoint-index="2"]')!.getAttribute("d")).not.toMatch(/A/);
    expect(FAMILIES.map((f) => f.name)).toEqual(LEGACY_FAMILIES.map((f) => f.name));
  });
});
