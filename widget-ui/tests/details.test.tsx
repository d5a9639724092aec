import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/react";
import { PointDetails } from "../src/components/PointDetails";
import { FAMILIES, makeEvaluation, makePoint } from "./fixtures";

describe("PointDetails", () => {
  it("asks for a selection when none", () => {
    render(<PointDetails point={null} families={FAMILIES} evaluation={null} metricLabel="model accuracy" />);
    expect(screen.getByText(/Select a point/)).toBeTruthy();
  });

  it("prints each value with 3 decimals in data-field elements", () => {
    const point = makePoint(1, {
      lambda_c: 0.30000000000000004,
      btc: 0.98234,
      bec: 0.4,
      nfr: 0.0184,
      performance: 0.93,
      h1_performance: 0.9,
    });
    const { container } = render(
      <PointDetails point={point} families={FAMILIES} evaluation={makeEvaluation(1, { h2_performance: 0.93 })} metricLabel="model accuracy" />,
    );
    const field = (name: string) => container.querySelector(`[data-field="${name}"]`)?.textContent;
    expect(field("btc")).toBe("0.982");
    expect(field("bec")).toBe("0.400");
    expect(field("nfr")).toBe("0.018");
    expect(field("lambda_c")).toBe("0.300");
    expect(field("h1_performance")).toBe("0.900");
    expect(field("h2_performance")).toBe("0.930");
    expect(field("performance_difference")).toBe("+0.030");
    expect(field("family")).toBe("New Error");
    expect(field("dataset")).toBe("testing");
  });

  it("h2 − h1 is n/a when either is null (a metric not computed; h1 on training in older folders)", () => {
    const field = (container: HTMLElement, name: string) => container.querySelector(`[data-field="${name}"]`)?.textContent;
    const noH1 = render(
      <PointDetails point={makePoint(0, { h1_performance: null, performance: 0.25 })} families={FAMILIES} evaluation={null} metricLabel="performance" />,
    ).container;
    expect(field(noH1, "h1_performance")).toBe("n/a");
    expect(field(noH1, "h2_performance")).toBe("0.250");
    expect(field(noH1, "performance_difference")).toBe("n/a");
    const noH2 = render(
      <PointDetails
        point={makePoint(1, { performance: null, h1_performance: 0.9 })}
        families={FAMILIES}
        evaluation={makeEvaluation(1, { performance: null, h2_performance: null })}
        metricLabel="performance"
      />,
    ).container;
    expect(field(noH2, "h2_performance")).toBe("n/a");
    expect(field(noH2, "performance_difference")).toBe("n/a");
  });
});
