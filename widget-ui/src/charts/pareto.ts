// Pareto front of (x, y) where both are to be maximised, per dataset.
import { datasetOf } from "../families";
import { isScore } from "../format";
import type { DataPoint, Metric } from "../types";

/** A point with both numbers of a plot: x (its metric) and y (its performance). */
export interface Positioned {
  point: DataPoint;
  x: number;
  y: number;
}

/**
 * The points that have both numbers of a plot, with them; a point whose
 * metric or performance is null (not computed) has no place in it.
 */
export function positioned(points: readonly DataPoint[], metric: Metric): Positioned[] {
  const out: Positioned[] = [];
  for (const point of points) {
    const x = point[metric];
    const y = point.performance;
    if (isScore(x) && isScore(y)) out.push({ point, x, y });
  }
  return out;
}

/**
 * Indices of the points that no other point of the same dataset dominates.
 * Points without both numbers are neither on the front nor dominate others.
 */
export function paretoIndices(points: readonly DataPoint[], metric: Metric): Set<number> {
  const result = new Set<number>();
  const placed = positioned(points, metric);
  for (const p of placed) {
    const dominated = placed.some(
      (q) =>
        q !== p &&
        datasetOf(q.point) === datasetOf(p.point) &&
        q.x >= p.x &&
        q.y >= p.y &&
        (q.x > p.x || q.y > p.y),
    );
    if (!dominated) result.add(p.point.datapoint_index);
  }
  return result;
}

/** Pareto points of one dataset ordered by x, for drawing the front. */
export function paretoFrontLine(points: readonly DataPoint[], front: Set<number>, metric: Metric): Positioned[] {
  return positioned(points, metric)
    .filter((p) => front.has(p.point.datapoint_index))
    .sort((a, b) => a.x - b.x || b.y - a.y);
}
