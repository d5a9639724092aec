// Number and label formatting shared by the views.
import { datasetOf, familyIndex, familyLabel, familyOf } from "./families";
import type { DataPoint, FamilyInfo, RunningJob } from "./types";

/** Whether a score is a number (the API sends null for a metric that could not be computed). */
export function isScore(value: number | null | undefined): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** A value with exactly three decimals ("0.931"); "n/a" when missing. */
export function fmt3(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return value.toFixed(3);
}

/**
 * A loss with three significant digits: "0.731", "0.000412" (not "0.000" for a
 * small loss late in training), "12.3"; "1.23e+4" from 1000 on.
 */
export function fmtLoss(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return Math.abs(value) >= 1000 ? value.toExponential(2) : value.toPrecision(3);
}

/** A class label as text; "n/a" where the server has none. */
export function fmtLabel(value: number | null | undefined): string {
  return value === null || value === undefined ? "n/a" : String(value);
}

/** A prediction with "(right)" or "(wrong)", or alone where it or the ground truth is unknown. */
export function fmtVerdict(prediction: number | null | undefined, truth: number | null | undefined): string {
  if (prediction === null || prediction === undefined) return "n/a";
  if (truth === null || truth === undefined) return String(prediction);
  return `${prediction} ${prediction === truth ? "(right)" : "(wrong)"}`;
}

/** A signed difference with three decimals ("+0.030", "-0.012", "0.000"). */
export function fmtSigned3(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const rounded = Number(value.toFixed(3));
  if (rounded === 0) return "0.000";
  return `${rounded > 0 ? "+" : "-"}${Math.abs(value).toFixed(3)}`;
}

/**
 * lambda_c without float noise: 0.30000000000000004 -> "0.3", 0.25 -> "0.25",
 * and the digits a fine step needs: 0.0025 -> "0.0025" (not "0.003").
 */
export function fmtLambda(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return String(Number(value.toFixed(6)));
}

/** A share as a percentage with a fixed number of decimals ("5.6%"). */
export function fmtPercent(part: number, whole: number, decimals = 1): string {
  if (!whole) return `${(0).toFixed(decimals)}%`;
  return `${((100 * part) / whole).toFixed(decimals)}%`;
}

export function fmtEta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "unknown";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The accessible name of a scatter-plot point. */
export function pointLabel(point: DataPoint, families: readonly FamilyInfo[]): string {
  return (
    `${familyLabel(familyOf(point), families)}, ${datasetOf(point)}, lambda_c ${fmtLambda(point.lambda_c)}, ` +
    `performance ${fmt3(point.performance)}, BTC ${fmt3(point.btc)}, BEC ${fmt3(point.bec)}`
  );
}

export function metricLabel(metric: string | null | undefined): string {
  if (!metric) return "performance";
  return metric.replace(/_/g, " ");
}

/** A list of lambda_c values, shortened when long: "0, 0.1, …, 1 (11 values)". */
export function fmtLambdaList(values: readonly number[], max = 4): string {
  const sorted = [...values].sort((a, b) => a - b).map(fmtLambda);
  if (sorted.length <= max) return sorted.join(", ");
  return `${sorted[0]}, ${sorted[1]}, …, ${sorted[sorted.length - 1]} (${sorted.length} values)`;
}

/**
 * The jobs that train now, grouped by family in the sweep's order:
 * "New Error at lambda_c 0, 0.5; Strict Imitation at lambda_c 0". Empty: "".
 */
export function fmtRunningJobs(jobs: readonly RunningJob[], families: readonly FamilyInfo[]): string {
  const groups = new Map<string, number[]>();
  for (const job of jobs) {
    if (!job || typeof job.family !== "string" || !Number.isFinite(job.lambda_c)) continue;
    const list = groups.get(job.family) ?? [];
    list.push(job.lambda_c);
    groups.set(job.family, list);
  }
  const order = (name: string) => familyIndex(name, families);
  return [...groups.entries()]
    .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([family, lambdas]) => `${familyLabel(family, families)} at lambda_c ${fmtLambdaList(lambdas)}`)
    .join("; ");
}
