// Legend shared by both scatter plots.
import { DATASET_COLOR, lambdaFill } from "../charts/theme";
import { DATASETS } from "../families";
import { fmtLambda } from "../format";
import type { FamilyInfo } from "../types";
import { FamilyShape } from "./Filters";

export interface PlotLegendProps {
  lambdaDomain: [number, number];
  families: readonly FamilyInfo[];
}

export function PlotLegend({ lambdaDomain, families }: PlotLegendProps) {
  return (
    <div className="bcml-plot-legend" aria-label="Legend" role="group">
      {families.map((family, index) => (
        <span key={family.name} className="bcml-legend-item" data-family={family.name}>
          <FamilyShape index={index} className="bcml-legend-shape" />
          {family.label}
        </span>
      ))}
      {DATASETS.map((dataset) => {
        const fill = lambdaFill(dataset, lambdaDomain);
        const stops = [0, 0.5, 1].map((t) => fill(lambdaDomain[0] + t * (lambdaDomain[1] - lambdaDomain[0])));
        return (
          <span key={dataset} className="bcml-legend-item">
            <span className="bcml-legend-dataset" style={{ color: DATASET_COLOR[dataset] }}>
              {dataset}
            </span>
            <span className="bcml-legend-lambda">lambda_c {fmtLambda(lambdaDomain[0])}</span>
            <span
              className="bcml-gradient"
              style={{ background: `linear-gradient(to right, ${stops.join(", ")})`, borderColor: DATASET_COLOR[dataset] }}
              aria-hidden="true"
            />
            <span className="bcml-legend-lambda">{fmtLambda(lambdaDomain[1])}</span>
          </span>
        );
      })}
      <span className="bcml-legend-item">
        <svg width="16" height="16" viewBox="-8 -8 16 16" aria-hidden="true">
          <circle r="6.5" className="bcml-pareto-ring" />
        </svg>
        Pareto-optimal
      </span>
      <span className="bcml-legend-item">
        <svg width="22" height="10" aria-hidden="true">
          <line x1="0" x2="22" y1="5" y2="5" stroke="#555" strokeDasharray="5 3" strokeWidth="1.5" />
        </svg>
        h1 on the same dataset
      </span>
    </div>
  );
}
