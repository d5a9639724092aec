// Area-proportional two-circle Venn layout. The distance between the centres
// is found by bisection so that the lens area equals the common count.

export interface Circle {
  x: number;
  y: number;
  r: number;
}

/** Area of the intersection of two circles with radii r1, r2 at distance d. */
export function overlapArea(r1: number, r2: number, d: number): number {
  if (r1 <= 0 || r2 <= 0) return 0;
  if (d >= r1 + r2) return 0;
  if (d <= Math.abs(r1 - r2)) {
    const r = Math.min(r1, r2);
    return Math.PI * r * r;
  }
  const a1 = Math.acos(clamp((d * d + r1 * r1 - r2 * r2) / (2 * d * r1), -1, 1));
  const a2 = Math.acos(clamp((d * d + r2 * r2 - r1 * r1) / (2 * d * r2), -1, 1));
  const k = (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2);
  return r1 * r1 * a1 + r2 * r2 * a2 - 0.5 * Math.sqrt(Math.max(0, k));
}

/** Distance between centres whose lens area is `area` (bisection). */
export function distanceForOverlap(r1: number, r2: number, area: number, iterations = 100): number {
  const lo0 = Math.abs(r1 - r2);
  const hi0 = r1 + r2;
  if (area <= 0) return hi0;
  const maxArea = Math.PI * Math.min(r1, r2) ** 2;
  if (area >= maxArea) return lo0;
  let lo = lo0;
  let hi = hi0;
  // overlapArea decreases as d grows on [|r1 - r2|, r1 + r2].
  for (let i = 0; i < iterations; i += 1) {
    const mid = (lo + hi) / 2;
    if (overlapArea(r1, r2, mid) > area) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface VennLayout {
  c1: Circle;
  c2: Circle;
  /** Distance between the centres. */
  d: number;
}

/**
 * Lays out circles whose areas are proportional to the h1 and h2 error counts
 * and whose overlap is proportional to the common errors, centred in a box.
 */
export function vennLayout(
  h1Errors: number,
  h2Errors: number,
  common: number,
  width: number,
  height: number,
  padding = 8,
): VennLayout | null {
  if (h1Errors <= 0 && h2Errors <= 0) return null;
  const r1 = Math.sqrt(Math.max(0, h1Errors) / Math.PI);
  const r2 = Math.sqrt(Math.max(0, h2Errors) / Math.PI);
  const c = Math.max(0, Math.min(common, h1Errors, h2Errors));
  let d = r1 > 0 && r2 > 0 ? distanceForOverlap(r1, r2, c) : r1 + r2;
  // A small visible gap when nothing is shared.
  if (c === 0 && r1 > 0 && r2 > 0) d += 0.08 * Math.max(r1, r2);
  const left = Math.min(-r1, d - r2);
  const right = Math.max(r1, d + r2);
  const tall = 2 * Math.max(r1, r2);
  const scale = Math.min((width - 2 * padding) / (right - left), (height - 2 * padding) / tall);
  const x1 = width / 2 - ((left + right) / 2) * scale;
  const y = height / 2;
  return {
    c1: { x: x1, y, r: r1 * scale },
    c2: { x: x1 + d * scale, y, r: r2 * scale },
    d: d * scale,
  };
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function n(v: number): string {
  return String(Math.round(v * 100) / 100);
}

export function circlePath(c: Circle): string {
  if (c.r <= 0) return "";
  return (
    `M${n(c.x - c.r)},${n(c.y)}A${n(c.r)},${n(c.r)} 0 1 0 ${n(c.x + c.r)},${n(c.y)}` +
    `A${n(c.r)},${n(c.r)} 0 1 0 ${n(c.x - c.r)},${n(c.y)}Z`
  );
}

export interface RegionPaths {
  progress: string;
  common: string;
  regress: string;
  /** Use fill-rule evenodd (one circle lies inside the other). */
  evenOdd: boolean;
}

/** SVG paths of h1 only (progress), both (common) and h2 only (regress). */
export function regionPaths(layout: VennLayout): RegionPaths {
  const { c1, c2, d } = layout;
  const r1 = c1.r;
  const r2 = c2.r;
  if (r1 <= 0 || r2 <= 0 || d >= r1 + r2 - 1e-9) {
    return { progress: circlePath(c1), common: "", regress: circlePath(c2), evenOdd: false };
  }
  if (d <= Math.abs(r1 - r2) + 1e-9) {
    if (r1 >= r2) {
      // h2's errors are all h1's errors: nothing in regress.
      return { progress: circlePath(c1) + circlePath(c2), common: circlePath(c2), regress: "", evenOdd: true };
    }
    return { progress: "", common: circlePath(c1), regress: circlePath(c2) + circlePath(c1), evenOdd: true };
  }
  const a = (d * d + r1 * r1 - r2 * r2) / (2 * d);
  const b = d - a;
  const h = Math.sqrt(Math.max(0, r1 * r1 - a * a));
  const px = c1.x + a;
  const top = `${n(px)},${n(c1.y - h)}`;
  const bottom = `${n(px)},${n(c1.y + h)}`;
  const R1 = `${n(r1)},${n(r1)} 0`;
  const R2 = `${n(r2)},${n(r2)} 0`;
  const common = `M${top}A${R1} ${a < 0 ? 1 : 0} 1 ${bottom}A${R2} ${b < 0 ? 1 : 0} 1 ${top}Z`;
  const progress = `M${top}A${R1} ${a > 0 ? 1 : 0} 0 ${bottom}A${R2} ${b < 0 ? 1 : 0} 1 ${top}Z`;
  const regress = `M${top}A${R2} ${b > 0 ? 1 : 0} 1 ${bottom}A${R1} ${a < 0 ? 1 : 0} 0 ${top}Z`;
  return { progress, common, regress, evenOdd: false };
}

/** Horizontal centres of the three regions, for their in-diagram labels. */
export function regionLabelX(layout: VennLayout): { progress: number; common: number; regress: number } {
  const { c1, c2 } = layout;
  const l1 = c1.x - c1.r;
  const r1 = c1.x + c1.r;
  const l2 = c2.x - c2.r;
  const r2 = c2.x + c2.r;
  return {
    progress: (l1 + Math.min(l2, r1)) / 2,
    common: (Math.max(l1, l2) + Math.min(r1, r2)) / 2,
    regress: (Math.max(r1, l2) + r2) / 2,
  };
}
