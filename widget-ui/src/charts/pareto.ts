// Pareto front of (x, y) where both are to be maximised, per dataset.
import { datasetOf } from "../families";
import type { DataPoint, Metric } from "../types";

/** Indices of the points that no other point of the same dataset dominates. */
export function paretoIndices(points: readonly DataPoint[], metric: Metric): Set<number> {
  const result = new Set<number>();
  for (const p of points) {
    const dominated = points.some(
      (q) =>
        q !== p &&
        datasetOf(q) === datasetOf(p) &&
        q[metric] >= p[metric] &&
        q.performance >= p.performance &&
        (q[metric] > p[metric] || q.performance > p.performance),
    );
    if (!dominated) result.add(p.datapoint_index);
  }
  return result;
}

/** Pareto points of one dataset ordered by x, for drawing the front. */
export function paretoFrontLine(points: readonly DataPoint[], front: Set<number>, metric: Metric): DataPoint[] {
  return points
    .filter((p) => front.has(p.datapoint_index))
    .sort((a, b) => a[metric] - b[metric] || b.performance - a.performance);
}
