// Renders a d3-axis into an SVG <g> owned by React.
import { useLayoutEffect, useRef } from "react";
import type { Axis, AxisDomain } from "d3-axis";
import { select } from "d3-selection";

export function useAxis<D extends AxisDomain>(axis: Axis<D>, deps: readonly unknown[]) {
  const ref = useRef<SVGGElement>(null);
  useLayoutEffect(() => {
    if (!ref.current) return;
    const g = select(ref.current);
    g.call(axis);
    // d3-axis sets font attributes; the stylesheet decides them instead.
    g.attr("font-family", null).attr("font-size", null);
    g.attr("aria-hidden", "true");
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return ref;
}

/** A [min, max] domain around the values with some padding; stable for one value. */
export function paddedDomain(values: readonly number[], fraction = 0.08, minSpan = 0.02): [number, number] {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  const span = Math.max(hi - lo, minSpan);
  const mid = (lo + hi) / 2;
  lo = Math.min(lo, mid - span / 2) - span * fraction;
  hi = Math.max(hi, mid + span / 2) + span * fraction;
  return [lo, hi];
}
