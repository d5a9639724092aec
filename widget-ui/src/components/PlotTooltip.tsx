// The values of the point under the pointer (or keyboard focus).
import { datasetOf, familyLabel, familyOf } from "../families";
import { fmt3, fmtLambda } from "../format";
import type { DataPoint, FamilyInfo } from "../types";

export interface PlotTooltipProps {
  point: DataPoint;
  families: readonly FamilyInfo[];
  left: number;
  top: number;
  width: number;
  onFront: boolean;
  yLabel: string;
  /** How many points share this position (1: none other). */
  stacked: number;
}

export function PlotTooltip({ point, families, left, top, width, onFront, yLabel, stacked }: PlotTooltipProps) {
  const flip = left > width - 210;
  const style = flip
    ? { right: width - left + 14, top: Math.max(0, top - 12) }
    : { left: left + 14, top: Math.max(0, top - 12) };
  const rows: [string, string][] = [
    ["lambda_c", fmtLambda(point.lambda_c)],
    [`h2 ${yLabel}`, fmt3(point.performance)],
    [`h1 ${yLabel}`, fmt3(point.h1_performance)],
    ["BTC", fmt3(point.btc)],
    ["BEC", fmt3(point.bec)],
    ["NFR", fmt3(point.nfr)],
    ["PFR", fmt3(point.pfr)],
    ["instances", String(point.dataset_size)],
  ];
  return (
    <div className="bcml-tooltip" style={style} role="tooltip">
      <div className="bcml-tooltip-title">
        {familyLabel(familyOf(point), families)}, {datasetOf(point)}
        {onFront ? <span className="bcml-tooltip-tag">Pareto</span> : null}
      </div>
      <table className="bcml-tooltip-table">
        <tbody>
          {rows.map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {stacked > 1 ? <p className="bcml-tooltip-note">{stacked} datapoints here: click to choose one</p> : null}
    </div>
  );
}
