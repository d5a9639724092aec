// Loss families and datasets as data: read from the summary and the points,
// with the seed's booleans as the fallback of folders written before.
import type { DataPoint, Dataset, FamilyInfo, LossFamily, SweepSummary } from "./types";

/**
 * The families of folders whose summary does not list them: the seed's
 * records only carry a boolean per family (`"new-error": true`).
 */
export const LEGACY_FAMILIES: readonly FamilyInfo[] = [
  { name: "new-error", label: "New Error" },
  { name: "strict-imitation", label: "Strict Imitation" },
];

export const DATASETS: readonly Dataset[] = ["training", "testing"];

/** "my-new_family" -> "My new family": a label for a family the summary does not name. */
export function humanize(name: string): string {
  const words = name.replace(/[-_]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : name;
}

function isFamilyInfo(value: unknown): value is FamilyInfo {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as FamilyInfo).name === "string" &&
    (value as FamilyInfo).name !== ""
  );
}

/** The family of a point: its `family` field, else the seed's boolean that is true. */
export function familyOf(point: DataPoint): LossFamily {
  if (typeof point.family === "string" && point.family !== "") return point.family;
  const flags = point as unknown as Record<string, unknown>;
  const flagged = LEGACY_FAMILIES.find((f) => flags[f.name] === true);
  return flagged ? flagged.name : "unknown";
}

/** The dataset of a point: its `dataset` field, else the seed's booleans. */
export function datasetOf(point: DataPoint): Dataset {
  if (point.dataset === "training" || point.dataset === "testing") return point.dataset;
  return point.training ? "training" : "testing";
}

/**
 * The sweep's families in order: the summary's `families` (labels as given),
 * else the seed's two; any family a point names that the list lacks is
 * appended. No summary yet: no families.
 */
export function familiesOf(summary: SweepSummary | null): FamilyInfo[] {
  if (!summary) return [];
  // Entries are {name, label}; a bare name is accepted too.
  const raw: unknown[] = Array.isArray(summary.families) ? summary.families : [];
  const listed = raw
    .map((f) => (typeof f === "string" && f !== "" ? { name: f, label: "" } : f))
    .filter(isFamilyInfo);
  const families: FamilyInfo[] = (listed.length > 0 ? listed : LEGACY_FAMILIES).map((f) => ({
    name: f.name,
    label:
      typeof f.label === "string" && f.label.trim() !== ""
        ? f.label
        : (LEGACY_FAMILIES.find((l) => l.name === f.name)?.label ?? humanize(f.name)),
  }));
  const known = new Set(families.map((f) => f.name));
  for (const point of summary.data ?? []) {
    const name = familyOf(point);
    if (!known.has(name)) {
      known.add(name);
      families.push({ name, label: humanize(name) });
    }
  }
  return families;
}

/** The label of a family; "n/a" for none. */
export function familyLabel(name: LossFamily | null | undefined, families: readonly FamilyInfo[]): string {
  if (!name) return "n/a";
  const found = families.find((f) => f.name === name) ?? LEGACY_FAMILIES.find((f) => f.name === name);
  return found ? found.label : humanize(name);
}

/** Position of a family in the sweep's list (its marker shape); unknown ones after the rest. */
export function familyIndex(name: LossFamily, families: readonly FamilyInfo[]): number {
  const i = families.findIndex((f) => f.name === name);
  return i >= 0 ? i : families.length;
}
