// Colours (Okabe-Ito based, colourblind-safe) and marker shapes.
import { scaleLinear } from "d3-scale";
import {
  symbol,
  symbolCircle,
  symbolCross,
  symbolDiamond,
  symbolSquare,
  symbolStar,
  symbolTriangle,
  symbolWye,
  type SymbolType,
} from "d3-shape";
import type { Dataset } from "../types";

export const DATASET_COLOR: Record<Dataset, string> = {
  training: "#0072B2",
  testing: "#D55E00",
};

/** Lightest fill (lambda_c at the low end) per dataset. */
const DATASET_TINT: Record<Dataset, string> = {
  training: "#d4e6f4",
  testing: "#f8dccb",
};

export const MODEL_COLOR = { h1: "#8a94a6", h2: "#1f3f77" } as const;

export const REGION_COLOR = {
  progress: "#009E73",
  common: "#8a8a8a",
  regress: "#CC79A7",
} as const;

export const REGION_TEXT_COLOR = {
  progress: "#00664a",
  common: "#4d4d4d",
  regress: "#8f3f6d",
} as const;

/** Fill of a point: light for low lambda_c, the dataset colour for high. */
export function lambdaFill(dataset: Dataset, domain: [number, number]) {
  return scaleLinear<string>().domain(domain).range([DATASET_TINT[dataset], DATASET_COLOR[dataset]]).clamp(true);
}

const AREA = 90;
const SELECTED_AREA = 200;

/** One marker shape per loss family, in the order the sweep lists them (then again). */
const SHAPES: readonly SymbolType[] = [
  symbolCircle,
  symbolTriangle,
  symbolSquare,
  symbolDiamond,
  symbolStar,
  symbolCross,
  symbolWye,
];

/** The marker of the family at `familyIndex` (its position in the sweep's family list). */
export function markerPath(familyIndex: number, selected = false, area?: number): string {
  const type = SHAPES[((familyIndex % SHAPES.length) + SHAPES.length) % SHAPES.length];
  return symbol(type, area ?? (selected ? SELECTED_AREA : AREA))() ?? "";
}
