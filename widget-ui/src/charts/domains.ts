// Axis domains of one scatter plot: fitted to its own points, with padding.
import { isScore } from "../format";
import { paddedDomain } from "./axis";
import type { DataPoint, Dataset, Metric } from "../types";

export type Domain = [number, number];

export interface PlotDomains {
  x: Domain;
  y: Domain;
}

export type H1Lines = Record<Dataset, number | null>;

/**
 * h1's reference line widens the y axis to include it only while the axis
 * stays at most this many times as tall as the points alone need; farther
 * away, the plot shows an arrow at its edge instead (see `offScale`).
 */
export const H1_MAX_STRETCH = 2.5;
/** Smallest span of a fitted axis (a single value or equal values). */
export const MIN_SPAN = 0.02;

function finite(values: readonly (number | null)[]): number[] {
  return values.filter(isScore);
}

/**
 * The x axis fits `metric` of the points and the y axis their performance,
 * each with padding; h1's lines join the y axis when they are near the points.
 * No points: the unit square (and h1's lines).
 */
export function fitDomains(points: readonly DataPoint[], metric: Metric, h1Lines: H1Lines): PlotDomains {
  const h1 = finite([h1Lines.training ?? NaN, h1Lines.testing ?? NaN]);
  const xs = finite(points.map((p) => p[metric]));
  const ys = finite(points.map((p) => p.performance));
  if (xs.length === 0 || ys.length === 0) {
    return { x: [0, 1], y: h1.length > 0 ? paddedDomain(h1) : [0, 1] };
  }
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const limit = H1_MAX_STRETCH * Math.max(hi - lo, MIN_SPAN);
  const near = h1.filter((v) => Math.max(hi, v) - Math.min(lo, v) <= limit);
  return { x: paddedDomain(xs, 0.08, MIN_SPAN), y: paddedDomain([...ys, ...near], 0.08, MIN_SPAN) };
}

/** Where a value lies against a domain: inside it, or off the scale above or below. */
export function offScale(value: number, domain: Domain): "above" | "below" | null {
  if (value > domain[1]) return "above";
  if (value < domain[0]) return "below";
  return null;
}

/** A zoom box from a brushed pixel rectangle, or null when the rectangle is too small to mean one. */
export function zoomFromPixels(
  selection: [[number, number], [number, number]],
  invertX: (px: number) => number,
  invertY: (px: number) => number,
  minPixels = 4,
): PlotDomains | null {
  const [[x0, y0], [x1, y1]] = selection;
  if (Math.abs(x1 - x0) < minPixels || Math.abs(y1 - y0) < minPixels) return null;
  const xs = [invertX(x0), invertX(x1)].sort((a, b) => a - b) as Domain;
  const ys = [invertY(y0), invertY(y1)].sort((a, b) => a - b) as Domain;
  return { x: xs, y: ys };
}

/** Text of a domain for data attributes ("0.9712,0.9904"). */
export function domainText(domain: Domain): string {
  return domain.map((v) => String(Number(v.toPrecision(6)))).join(",");
}
