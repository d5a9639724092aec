// h1's performance per dataset: a dashed line, or an arrow at the plot's edge
// when the value lies outside the y axis (the axis fits the points).
import type { ScaleLinear } from "d3-scale";
import { offScale, type Domain, type H1Lines } from "../charts/domains";
import { DATASET_COLOR } from "../charts/theme";
import { DATASETS } from "../families";
import { fmt3 } from "../format";

export interface ReferenceLinesProps {
  h1Lines: H1Lines;
  y: ScaleLinear<number, number>;
  yDomain: Domain;
  width: number;
  height: number;
  /** The lines (under the points) or their labels (over the points). */
  layer: "lines" | "labels";
}

export function ReferenceLines({ h1Lines, y, yDomain, width, height, layer }: ReferenceLinesProps) {
  return (
    <g className="bcml-no-pointer">
      {DATASETS.map((dataset) => {
        const v = h1Lines[dataset];
        if (v === null || !Number.isFinite(v)) return null;
        const off = offScale(v, yDomain);
        // Training's label on the left, testing's on the right: they never collide.
        const left = dataset === "training";
        const lx = left ? 4 : width - 4;
        const anchor = left ? "start" : "end";
        const color = DATASET_COLOR[dataset];
        if (off === null) {
          if (layer === "lines") {
            return (
              <g key={dataset} className="bcml-h1-line" data-dataset={dataset}>
                <line x1={0} x2={width} y1={y(v)} y2={y(v)} stroke={color} strokeDasharray="6 4" />
              </g>
            );
          }
          return (
            <text key={dataset} className="bcml-h1-label" data-dataset={dataset} x={lx} y={y(v) - 4} textAnchor={anchor} fill={color}>
              {`h1 ${dataset} ${fmt3(v)}`}
            </text>
          );
        }
        if (layer === "lines") return null;
        // Off the scale: an arrow at the edge that points towards the value.
        const edge = off === "above" ? 0 : height;
        const ax = left ? 8 : width - 8;
        const arrow =
          off === "above"
            ? `M${ax - 5},${edge + 8}L${ax},${edge + 1}L${ax + 5},${edge + 8}Z`
            : `M${ax - 5},${edge - 8}L${ax},${edge - 1}L${ax + 5},${edge - 8}Z`;
        return (
          <g key={dataset} className="bcml-h1-offscale" data-dataset={dataset} data-offscale={off}>
            <path d={arrow} fill={color} />
            <text
              className="bcml-h1-label"
              data-dataset={dataset}
              data-offscale={off}
              x={left ? lx + 12 : lx - 12}
              y={off === "above" ? edge + 10 : edge - 3}
              textAnchor={anchor}
              fill={color}
            >
              {`h1 ${dataset} ${fmt3(v)} ${off === "above" ? "(above)" : "(below)"}`}
            </text>
          </g>
        );
      })}
    </g>
  );
}
