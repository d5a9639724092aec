// h2 performance against BTC or BEC: one point per datapoint of the sweep.
import { useMemo, useRef, useState } from "react";
import { axisBottom, axisLeft } from "d3-axis";
import { scaleLinear } from "d3-scale";
import { line } from "d3-shape";
import { paddedDomain, useAxis } from "../charts/axis";
import { paretoFrontLine, paretoIndices } from "../charts/pareto";
import { DATASET_COLOR, lambdaFill, markerPath } from "../charts/theme";
import { useWidth } from "../charts/useWidth";
import { datasetOf, familyLabel, familyOf, fmt3, fmtLambda, pointLabel } from "../format";
import type { DataPoint, Dataset, Metric } from "../types";

export interface ScatterPlotProps {
  metric: Metric;
  points: readonly DataPoint[];
  xDomain: [number, number];
  yDomain: [number, number];
  lambdaDomain: [number, number];
  h1Lines: { training: number | null; testing: number | null };
  selectedIndex: number | null;
  onSelect: (index: number) => void;
  yLabel: string;
}

export const METRIC_TITLE: Record<Metric, string> = {
  btc: "BTC (backward trust compatibility)",
  bec: "BEC (backward error compatibility)",
};

const HEIGHT = 300;
const MARGIN = { top: 14, right: 14, bottom: 44, left: 54 };

/** Shared x domain of both plots and the y domain (with h1's lines). */
export function plotDomains(points: readonly DataPoint[], h1: { training: number | null; testing: number | null }) {
  const xs = points.flatMap((p) => [p.btc, p.bec]);
  const ys = points.map((p) => p.performance);
  if (h1.training !== null) ys.push(h1.training);
  if (h1.testing !== null) ys.push(h1.testing);
  return { xDomain: paddedDomain(xs), yDomain: paddedDomain(ys) };
}

export function lambdaDomainOf(points: readonly DataPoint[]): [number, number] {
  if (points.length === 0) return [0, 1];
  const lambdas = points.map((p) => p.lambda_c);
  const lo = Math.min(0, ...lambdas);
  const hi = Math.max(1, ...lambdas);
  return [lo, hi];
}

interface Hover {
  point: DataPoint;
}

export function ScatterPlot(props: ScatterPlotProps) {
  const { metric, points, xDomain, yDomain, lambdaDomain, h1Lines, selectedIndex, onSelect } = props;
  const [boxRef, width] = useWidth<HTMLDivElement>(520);
  const [hover, setHover] = useState<Hover | null>(null);
  const pointerFocus = useRef(false);
  const innerW = Math.max(120, width - MARGIN.left - MARGIN.right);
  const innerH = HEIGHT - MARGIN.top - MARGIN.bottom;

  const x = useMemo(() => scaleLinear().domain(xDomain).range([0, innerW]), [xDomain, innerW]);
  const y = useMemo(() => scaleLinear().domain(yDomain).range([innerH, 0]), [yDomain, innerH]);
  const xTicks = Math.max(2, Math.round(innerW / 80));
  const xAxisRef = useAxis(axisBottom(x).ticks(xTicks).tickSizeOuter(0), [x, xTicks]);
  const yAxisRef = useAxis(axisLeft(y).ticks(6).tickSizeOuter(0), [y]);

  const fills = useMemo(
    () => ({ training: lambdaFill("training", lambdaDomain), testing: lambdaFill("testing", lambdaDomain) }),
    [lambdaDomain],
  );
  const front = useMemo(() => paretoIndices(points, metric), [points, metric]);
  const frontPaths = useMemo(() => {
    const make = line<DataPoint>()
      .x((p) => x(p[metric]))
      .y((p) => y(p.performance));
    return (["training", "testing"] as Dataset[]).map((dataset) => ({
      dataset,
      d: make(paretoFrontLine(points.filter((p) => datasetOf(p) === dataset), front, metric)) ?? "",
    }));
  }, [points, front, metric, x, y]);

  // Selected point last so that it is drawn on top.
  const ordered = useMemo(() => {
    const rest = points.filter((p) => p.datapoint_index !== selectedIndex);
    const sel = points.filter((p) => p.datapoint_index === selectedIndex);
    return [...rest, ...sel];
  }, [points, selectedIndex]);

  const title = `h2 ${props.yLabel} vs ${metric.toUpperCase()}`;
  const hovered = hover && points.includes(hover.point) ? hover.point : null;

  return (
    <figure className="bcml-chart bcml-scatter" data-plot={metric}>
      <figcaption className="bcml-chart-title">{title}</figcaption>
      <div className="bcml-plot" ref={boxRef}>
        <svg
          className="bcml-svg"
          width={width}
          height={HEIGHT}
          style={{ height: HEIGHT, maxWidth: "none" }}
          role="group"
          aria-label={`Scatter plot of h2 ${props.yLabel} against ${metric.toUpperCase()}`}
        >
          <g transform={`translate(${MARGIN.left},${MARGIN.top})`}>
            <g className="bcml-grid" aria-hidden="true">
              {y.ticks(6).map((t) => (
                <line key={t} x1={0} x2={innerW} y1={y(t)} y2={y(t)} />
              ))}
            </g>
            <g ref={yAxisRef} className="bcml-axis bcml-axis-y" />
            <g ref={xAxisRef} className="bcml-axis bcml-axis-x" transform={`translate(0,${innerH})`} />
            <text className="bcml-axis-label" x={innerW / 2} y={innerH + 36} textAnchor="middle">
              {METRIC_TITLE[metric]}
            </text>
            <text
              className="bcml-axis-label"
              transform={`translate(${-42},${innerH / 2}) rotate(-90)`}
              textAnchor="middle"
            >
              {`h2 ${props.yLabel}`}
            </text>
            {(["training", "testing"] as Dataset[]).map((dataset) => {
              const v = h1Lines[dataset];
              if (v === null) return null;
              return (
                <g key={dataset} className="bcml-h1-line" data-dataset={dataset}>
                  <line
                    x1={0}
                    x2={innerW}
                    y1={y(v)}
                    y2={y(v)}
                    stroke={DATASET_COLOR[dataset]}
                    strokeDasharray="6 4"
                  />
                </g>
              );
            })}
            {frontPaths.map(({ dataset, d }) =>
              d ? (
                <path
                  key={dataset}
                  className="bcml-pareto-line"
                  d={d}
                  stroke={DATASET_COLOR[dataset]}
                  aria-hidden="true"
                />
              ) : null,
            )}
            {ordered.map((p) => {
              const dataset = datasetOf(p);
              const selected = p.datapoint_index === selectedIndex;
              const cx = x(p[metric]);
              const cy = y(p.performance);
              const onFront = front.has(p.datapoint_index);
              return (
                <g key={p.datapoint_index} transform={`translate(${cx},${cy})`}>
                  {onFront ? (
                    <circle className="bcml-pareto-ring" r={selected ? 12 : 9} aria-hidden="true" />
                  ) : null}
                  <path
                    className={`bcml-point${selected ? " bcml-point-selected" : ""}`}
                    d={markerPath(familyOf(p), selected)}
                    fill={fills[dataset](p.lambda_c)}
                    stroke={selected ? "#111" : DATASET_COLOR[dataset]}
                    tabIndex={0}
                    role="button"
                    aria-label={pointLabel(p)}
                    aria-description={onFront ? "Pareto-optimal" : undefined}
                    aria-pressed={selected}
                    data-datapoint-index={p.datapoint_index}
                    onClick={() => onSelect(p.datapoint_index)}
                    onKeyDown={(e) => {
                      if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") {
                        e.preventDefault();
                        onSelect(p.datapoint_index);
                      }
                    }}
                    onMouseEnter={() => setHover({ point: p })}
                    onMouseLeave={() => setHover(null)}
                    onMouseDown={() => {
                      pointerFocus.current = true;
                    }}
                    onFocus={() => {
                      // Keyboard focus shows the values; a mouse click does not pin them.
                      if (!pointerFocus.current) setHover({ point: p });
                      pointerFocus.current = false;
                    }}
                    onBlur={() => setHover(null)}
                  />
                </g>
              );
            })}
            {(["training", "testing"] as Dataset[]).map((dataset) => {
              const v = h1Lines[dataset];
              if (v === null) return null;
              // Training's label on the left, testing's on the right: they
              // never collide, and labels are drawn over the points.
              const left = dataset === "training";
              return (
                <text
                  key={dataset}
                  className="bcml-h1-label"
                  data-dataset={dataset}
                  x={left ? 4 : innerW - 4}
                  y={y(v) - 4}
                  textAnchor={left ? "start" : "end"}
                  fill={DATASET_COLOR[dataset]}
                >
                  {`h1 ${dataset} ${fmt3(v)}`}
                </text>
              );
            })}
          </g>
        </svg>
        {points.length === 0 ? <p className="bcml-plot-empty">No datapoints to show</p> : null}
        {hovered ? (
          <Tooltip
            point={hovered}
            left={MARGIN.left + x(hovered[metric])}
            top={MARGIN.top + y(hovered.performance)}
            width={width}
            onFront={front.has(hovered.datapoint_index)}
            yLabel={props.yLabel}
          />
        ) : null}
      </div>
    </figure>
  );
}

interface TooltipProps {
  point: DataPoint;
  left: number;
  top: number;
  width: number;
  onFront: boolean;
  yLabel: string;
}

function Tooltip({ point, left, top, width, onFront, yLabel }: TooltipProps) {
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
        {familyLabel(familyOf(point))}, {datasetOf(point)}
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
    </div>
  );
}
