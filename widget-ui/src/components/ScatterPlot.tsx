// h2 performance against BTC or BEC: one point per datapoint of the sweep.
// Each plot fits its axes to its own points; drag to zoom, "Reset zoom" to
// go back; a click on stacked points offers all of them in a small menu.
import { useEffect, useId, useMemo, useRef, useState } from "react";
import { axisBottom, axisLeft } from "d3-axis";
import { scaleLinear } from "d3-scale";
import { line } from "d3-shape";
import { useAxis } from "../charts/axis";
import { domainText, fitDomains, zoomFromPixels, type H1Lines, type PlotDomains } from "../charts/domains";
import { paretoFrontLine, paretoIndices, positioned, type Positioned } from "../charts/pareto";
import { stackAt, stackClusters, type Placed } from "../charts/stacks";
import { DATASET_COLOR, lambdaFill } from "../charts/theme";
import { useBrushZoom } from "../charts/useBrushZoom";
import { useWidth } from "../charts/useWidth";
import { DATASETS, datasetOf } from "../families";
import type { DataPoint, FamilyInfo, Metric } from "../types";
import { PlotTooltip } from "./PlotTooltip";
import { PointMark } from "./PointMark";
import { ReferenceLines } from "./ReferenceLines";
import { StackChooser } from "./StackChooser";

export interface ScatterPlotProps {
  metric: Metric;
  points: readonly DataPoint[];
  families: readonly FamilyInfo[];
  lambdaDomain: [number, number];
  h1Lines: H1Lines;
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

export function lambdaDomainOf(points: readonly DataPoint[]): [number, number] {
  if (points.length === 0) return [0, 1];
  const lambdas = points.map((p) => p.lambda_c);
  return [Math.min(0, ...lambdas), Math.max(1, ...lambdas)];
}

export function ScatterPlot(props: ScatterPlotProps) {
  const { metric, points, families, lambdaDomain, h1Lines, selectedIndex, onSelect } = props;
  const [boxRef, width] = useWidth<HTMLDivElement>(520);
  const [hover, setHover] = useState<number | null>(null);
  const [zoom, setZoom] = useState<PlotDomains | null>(null);
  const [chooser, setChooser] = useState<number | null>(null);
  const focusAfterRender = useRef<number | null>(null);
  const svgRef = useRef<SVGSVGElement>(null);
  const clipId = `bcml-clip-${useId().replace(/[^A-Za-z0-9_-]/g, "")}`;
  const innerW = Math.max(120, width - MARGIN.left - MARGIN.right);
  const innerH = HEIGHT - MARGIN.top - MARGIN.bottom;

  const fitted = useMemo(() => fitDomains(points, metric, h1Lines), [points, metric, h1Lines]);
  const domains = zoom ?? fitted;
  const x = useMemo(() => scaleLinear().domain(domains.x).range([0, innerW]), [domains.x, innerW]);
  const y = useMemo(() => scaleLinear().domain(domains.y).range([innerH, 0]), [domains.y, innerH]);
  const xTicks = Math.max(2, Math.round(innerW / 80));
  const xAxisRef = useAxis(axisBottom(x).ticks(xTicks).tickSizeOuter(0), [x, xTicks]);
  const yAxisRef = useAxis(axisLeft(y).ticks(6).tickSizeOuter(0), [y]);
  const brushRef = useBrushZoom(innerW, innerH, (box) => {
    const next = zoomFromPixels(box, (px) => x.invert(px), (py) => y.invert(py));
    if (next) {
      setZoom(next);
      setChooser(null);
    }
  });

  const fills = useMemo(
    () => ({ training: lambdaFill("training", lambdaDomain), testing: lambdaFill("testing", lambdaDomain) }),
    [lambdaDomain],
  );
  const front = useMemo(() => paretoIndices(points, metric), [points, metric]);
  // Points whose metric or performance is null (not computed) have no place here.
  const drawable = useMemo(() => positioned(points, metric), [points, metric]);
  const frontPaths = useMemo(() => {
    const make = line<Positioned>()
      .x((p) => x(p.x))
      .y((p) => y(p.y));
    return DATASETS.map((dataset) => ({
      dataset,
      d: make(paretoFrontLine(points.filter((p) => datasetOf(p) === dataset), front, metric)) ?? "",
    }));
  }, [points, front, metric, x, y]);

  // Points inside the view, the selected one last so that it is drawn on top.
  const placed: Placed[] = useMemo(() => {
    const rest = drawable.filter((p) => p.point.datapoint_index !== selectedIndex);
    const sel = drawable.filter((p) => p.point.datapoint_index === selectedIndex);
    return [...rest, ...sel]
      .map((p) => ({ point: p.point, cx: x(p.x), cy: y(p.y) }))
      .filter(({ cx, cy }) => cx >= -0.5 && cx <= innerW + 0.5 && cy >= -0.5 && cy <= innerH + 0.5);
  }, [drawable, selectedIndex, x, y, innerW, innerH]);
  const missing = points.length - drawable.length;
  const clusters = useMemo(() => stackClusters(placed), [placed]);
  const byIndex = useMemo(() => new Map(placed.map((p) => [p.point.datapoint_index, p])), [placed]);
  const anchor = chooser === null ? null : byIndex.get(chooser) ?? null;
  const stack = anchor ? stackAt(placed, anchor, families) : [];

  useEffect(() => {
    const index = focusAfterRender.current;
    if (index === null) return;
    focusAfterRender.current = null;
    svgRef.current?.querySelector<SVGElement>(`[data-datapoint-index="${index}"]`)?.focus();
  });

  const onPointClick = (item: Placed) => {
    if (stackAt(placed, item, families).length > 1) setChooser(item.point.datapoint_index);
    else onSelect(item.point.datapoint_index);
  };

  const title = `h2 ${props.yLabel} vs ${metric.toUpperCase()}`;
  const hovered = hover === null ? null : byIndex.get(hover) ?? null;

  return (
    <figure className="bcml-chart bcml-scatter" data-plot={metric}>
      <figcaption className="bcml-chart-head">
        <span className="bcml-chart-title">{title}</span>
        <span className="bcml-zoom-hint">{zoom ? "zoomed" : "drag to zoom"}</span>
        <button
          type="button"
          className="bcml-button bcml-button-small"
          aria-label={`Reset zoom of the ${metric.toUpperCase()} plot`}
          disabled={zoom === null}
          onClick={() => setZoom(null)}
        >
          Reset zoom
        </button>
      </figcaption>
      <div className="bcml-plot" ref={boxRef}>
        <svg
          ref={svgRef}
          className="bcml-svg"
          width={width}
          height={HEIGHT}
          style={{ height: HEIGHT, maxWidth: "none" }}
          role="group"
          aria-label={`Scatter plot of h2 ${props.yLabel} against ${metric.toUpperCase()}`}
          data-x-domain={domainText(domains.x)}
          data-y-domain={domainText(domains.y)}
          data-zoomed={zoom ? "true" : "false"}
          onDoubleClick={() => setZoom(null)}
        >
          <defs>
            <clipPath id={clipId}>
              <rect x={0} y={0} width={innerW} height={innerH} />
            </clipPath>
          </defs>
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
            <text className="bcml-axis-label" transform={`translate(${-42},${innerH / 2}) rotate(-90)`} textAnchor="middle">
              {`h2 ${props.yLabel}`}
            </text>
            <g ref={brushRef} className="bcml-brush" />
            <g clipPath={`url(#${clipId})`} className="bcml-no-pointer" aria-hidden="true">
              <ReferenceLines h1Lines={h1Lines} y={y} yDomain={domains.y} width={innerW} height={innerH} layer="lines" />
              {frontPaths.map(({ dataset, d }) =>
                d ? <path key={dataset} className="bcml-pareto-line" d={d} stroke={DATASET_COLOR[dataset]} /> : null,
              )}
            </g>
            {placed.map((item) => (
              <PointMark
                key={item.point.datapoint_index}
                item={item}
                families={families}
                selected={item.point.datapoint_index === selectedIndex}
                onFront={front.has(item.point.datapoint_index)}
                fill={fills[datasetOf(item.point)](item.point.lambda_c)}
                onClick={() => onPointClick(item)}
                onSelect={onSelect}
                onHover={setHover}
              />
            ))}
            {clusters.map(({ top, size }) => (
              <text
                key={`stack-${top.point.datapoint_index}`}
                className="bcml-stack-badge"
                x={top.cx + 8}
                y={top.cy - 7}
                aria-hidden="true"
              >
                {`×${size}`}
              </text>
            ))}
            <ReferenceLines h1Lines={h1Lines} y={y} yDomain={domains.y} width={innerW} height={innerH} layer="labels" />
          </g>
        </svg>
        {drawable.length === 0 ? <p className="bcml-plot-empty">No datapoints to show</p> : null}
        {drawable.length > 0 && placed.length === 0 ? (
          <p className="bcml-plot-empty">No datapoints in the zoomed area</p>
        ) : null}
        {missing > 0 ? (
          <p className="bcml-plot-note" data-missing={missing}>
            {missing === 1 ? "1 datapoint is" : `${missing} datapoints are`} not drawn: no {metric.toUpperCase()} or{" "}
            {props.yLabel} (not computed).
          </p>
        ) : null}
        {hovered && !anchor ? (
          <PlotTooltip
            point={hovered.point}
            families={families}
            left={MARGIN.left + hovered.cx}
            top={MARGIN.top + hovered.cy}
            width={width}
            onFront={front.has(hovered.point.datapoint_index)}
            yLabel={props.yLabel}
            stacked={stackAt(placed, hovered, families).length}
          />
        ) : null}
        {anchor && stack.length > 1 ? (
          <StackChooser
            key={chooser ?? undefined}
            points={stack}
            families={families}
            selectedIndex={selectedIndex}
            left={MARGIN.left + anchor.cx}
            top={MARGIN.top + anchor.cy}
            width={width}
            onChoose={(index, byKeyboard) => {
              setChooser(null);
              if (byKeyboard) focusAfterRender.current = index;
              onSelect(index);
            }}
            onClose={(restoreFocus) => {
              if (restoreFocus) focusAfterRender.current = anchor.point.datapoint_index;
              setChooser(null);
            }}
          />
        ) : null}
      </div>
    </figure>
  );
}
