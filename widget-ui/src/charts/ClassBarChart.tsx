// A grouped bar chart by class: a fixed y axis and a horizontally scrolling
// plot, so that many classes stay readable. Every bar is a button.
import { useMemo } from "react";
import { axisBottom, axisLeft } from "d3-axis";
import { scaleBand, scaleLinear } from "d3-scale";
import { useAxis } from "./axis";
import { useWidth } from "./useWidth";

export interface BarSeries {
  key: string;
  label: string;
  color: string;
  /** Value per class (missing classes draw no bar). */
  values: Map<number, number>;
}

export interface ClassBarChartProps {
  classes: readonly number[];
  series: readonly BarSeries[];
  yMax: number;
  yTickFormat: (v: number) => string;
  yLabel: string;
  barLabel: (series: BarSeries, cls: number, value: number) => string;
  onBar: (series: BarSeries, cls: number) => void;
  isActive: (series: BarSeries, cls: number) => boolean;
}

const HEIGHT = 210;
const MARGIN = { top: 10, bottom: 38 };
const AXIS_WIDTH = 48;
const MAX_BAR = 14;
const MIN_BAR = 7;
const GROUP_GAP = 8;

export function ClassBarChart(props: ClassBarChartProps) {
  const { classes, series } = props;
  const [boxRef, boxWidth] = useWidth<HTMLDivElement>(480);
  const innerH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const available = Math.max(120, boxWidth - AXIS_WIDTH - 4);
  // Bars shrink to fit the width down to MIN_BAR; past that the plot scrolls.
  const fit = (available / Math.max(1, classes.length) - GROUP_GAP) / Math.max(1, series.length);
  const BAR_WIDTH = Math.max(MIN_BAR, Math.min(MAX_BAR, Math.floor(fit)));
  const groupWidth = series.length * BAR_WIDTH + GROUP_GAP;
  const scrolls = classes.length * groupWidth > available;
  // When scrolling, 8px at the end keep the last label inside.
  const bandsWidth = scrolls ? classes.length * groupWidth : available;
  const plotWidth = scrolls ? bandsWidth + 8 : available;
  const domain = useMemo(() => classes.map(String), [classes]);

  const x = useMemo(() => scaleBand<string>().domain(domain).range([0, bandsWidth]), [domain, bandsWidth]);
  const y = useMemo(() => scaleLinear().domain([0, props.yMax || 1]).range([innerH, 0]), [props.yMax, innerH]);
  const yAxisRef = useAxis(axisLeft(y).ticks(5).tickFormat((v) => props.yTickFormat(Number(v))).tickSizeOuter(0), [y]);
  // Thin out the class labels when they would overlap (many classes).
  const longest = Math.max(1, ...domain.map((d) => d.length));
  const labelStep = Math.max(1, Math.ceil((longest * 7 + 8) / Math.max(1, x.bandwidth())));
  const xAxisRef = useAxis(
    axisBottom(x)
      .tickValues(domain.filter((_, i) => i % labelStep === 0))
      .tickSizeOuter(0),
    [x, labelStep],
  );

  const band = x.bandwidth();
  const inner = series.length * BAR_WIDTH;
  return (
    <>
    <div className="bcml-bars" ref={boxRef}>
      <svg className="bcml-svg bcml-bars-axis" width={AXIS_WIDTH} height={HEIGHT} style={{ height: HEIGHT }} aria-hidden="true">
        <g transform={`translate(${AXIS_WIDTH - 1},${MARGIN.top})`}>
          <g ref={yAxisRef} className="bcml-axis bcml-axis-y" />
        </g>
        <text
          className="bcml-axis-label"
          transform={`translate(11,${MARGIN.top + innerH / 2}) rotate(-90)`}
          textAnchor="middle"
        >
          {props.yLabel}
        </text>
      </svg>
      <div
        className="bcml-bars-scroll"
        tabIndex={scrolls ? 0 : undefined}
        role={scrolls ? "region" : undefined}
        aria-label={scrolls ? `${props.yLabel} by class, scrollable` : undefined}
      >
        <svg className="bcml-svg" width={plotWidth} height={HEIGHT} style={{ height: HEIGHT, maxWidth: "none" }} role="group" aria-label={props.yLabel}>
          <g transform={`translate(0,${MARGIN.top})`}>
            <g className="bcml-grid" aria-hidden="true">
              {y.ticks(5).map((t) => (
                <line key={t} x1={0} x2={plotWidth} y1={y(t)} y2={y(t)} />
              ))}
            </g>
            <g ref={xAxisRef} className="bcml-axis bcml-axis-x" transform={`translate(0,${innerH})`} />
            <text className="bcml-axis-label" x={Math.min(plotWidth, available) / 2} y={innerH + 32} textAnchor="middle">
              Class (ground truth)
            </text>
            {classes.map((cls) => {
              const x0 = (x(String(cls)) ?? 0) + (band - inner) / 2;
              return series.map((s, i) => {
                const value = s.values.get(cls);
                if (value === undefined) return null;
                const top = y(Math.max(0, value));
                const active = props.isActive(s, cls);
                return (
                  <g
                    key={`${s.key}-${cls}`}
                    className={`bcml-bar${active ? " bcml-active" : ""}`}
                    role="button"
                    tabIndex={0}
                    aria-label={props.barLabel(s, cls, value)}
                    aria-pressed={active}
                    data-series={s.key}
                    data-class={cls}
                    onClick={() => props.onBar(s, cls)}
                    onKeyDown={(e) => {
                      if (e.key === "Enter" || e.key === " ") {
                        e.preventDefault();
                        props.onBar(s, cls);
                      }
                    }}
                  >
                    <title>{props.barLabel(s, cls, value)}</title>
                    <rect className="bcml-bar-hit" x={x0 + i * BAR_WIDTH} y={0} width={BAR_WIDTH} height={innerH} />
                    <rect
                      className="bcml-bar-rect"
                      x={x0 + i * BAR_WIDTH + 1}
                      y={top}
                      width={BAR_WIDTH - 2}
                      height={Math.max(0, innerH - top)}
                      fill={s.color}
                    />
                  </g>
                );
              });
            })}
          </g>
        </svg>
      </div>
    </div>
    {scrolls ? <p className="bcml-scroll-hint">Scroll sideways for all {classes.length} classes →</p> : null}
    </>
  );
}
