// Points drawn on top of each other: which ones a click reaches, and where
// the plot marks a stack with its size.
import { datasetOf, familyIndex, familyOf } from "../families";
import type { DataPoint, FamilyInfo } from "../types";

/** A point at its pixel position in a plot. */
export interface Placed {
  point: DataPoint;
  cx: number;
  cy: number;
}

/**
 * Markers whose centres lie this close (pixels) hide each other: a click on
 * one of them offers all of them. A marker's radius is about 5.4 pixels.
 */
export const STACK_RADIUS = 6;

function near(a: Placed, b: Placed, radius: number): boolean {
  return Math.hypot(a.cx - b.cx, a.cy - b.cy) <= radius;
}

/** Order of the chooser: family (as the sweep lists them), dataset, lambda_c. */
export function stackOrder(families: readonly FamilyInfo[]) {
  return (a: DataPoint, b: DataPoint): number =>
    familyIndex(familyOf(a), families) - familyIndex(familyOf(b), families) ||
    (datasetOf(a) === datasetOf(b) ? 0 : datasetOf(a) === "training" ? -1 : 1) ||
    a.lambda_c - b.lambda_c ||
    a.datapoint_index - b.datapoint_index;
}

/** Every point whose marker centre lies within `radius` of `target`'s (itself included), ordered. */
export function stackAt(
  placed: readonly Placed[],
  target: Placed,
  families: readonly FamilyInfo[],
  radius = STACK_RADIUS,
): DataPoint[] {
  return placed
    .filter((p) => near(p, target, radius))
    .map((p) => p.point)
    .sort(stackOrder(families));
}

export interface Cluster {
  /** The point drawn on top (the last one drawn). */
  top: Placed;
  size: number;
}

/**
 * Groups of at least two stacked points, for the count badge: greedy, from
 * the point drawn last (on top) down.
 */
export function stackClusters(drawOrder: readonly Placed[], radius = STACK_RADIUS): Cluster[] {
  const taken = new Set<number>();
  const clusters: Cluster[] = [];
  for (let i = drawOrder.length - 1; i >= 0; i -= 1) {
    const top = drawOrder[i];
    if (taken.has(i)) continue;
    let size = 0;
    for (let j = i; j >= 0; j -= 1) {
      if (!taken.has(j) && near(drawOrder[j], top, radius)) {
        taken.add(j);
        size += 1;
      }
    }
    if (size > 1) clusters.push({ top, size });
  }
  return clusters;
}
