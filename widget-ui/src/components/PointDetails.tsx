// Numbers of the selected datapoint.
import { datasetOf, familyLabel, familyOf } from "../families";
import { fmt3, fmtLambda, fmtSigned3, isScore } from "../format";
import type { DataPoint, EvaluationData, FamilyInfo } from "../types";

export interface PointDetailsProps {
  point: DataPoint | null;
  families: readonly FamilyInfo[];
  evaluation: EvaluationData | null;
  metricLabel: string;
}

interface Row {
  label: string;
  field?: string;
  value: string;
  hint?: string;
}

export function PointDetails({ point, families, evaluation, metricLabel }: PointDetailsProps) {
  if (!point) {
    return (
      <section className="bcml-panel bcml-details" aria-label="Selected model">
        <h3 className="bcml-panel-title">Selected model</h3>
        <p className="bcml-empty">Select a point in a scatter plot to see its details.</p>
      </section>
    );
  }
  const h2 = evaluation?.h2_performance ?? point.performance;
  const h1 = point.h1_performance;
  // The difference exists only when both are numbers (a metric may be null: not computed).
  const difference = isScore(h1) && isScore(h2) ? h2 - h1 : null;
  const rows: Row[] = [
    { label: "lambda_c", field: "lambda_c", value: fmt3(point.lambda_c) },
    { label: "BTC", field: "btc", value: fmt3(point.btc), hint: "backward trust compatibility" },
    { label: "BEC", field: "bec", value: fmt3(point.bec), hint: "backward error compatibility" },
    { label: "NFR", field: "nfr", value: fmt3(point.nfr), hint: "negative flip rate" },
    { label: "PFR", field: "pfr", value: fmt3(point.pfr), hint: "positive flip rate" },
    { label: `h1 ${metricLabel}`, field: "h1_performance", value: fmt3(h1) },
    { label: `h2 ${metricLabel}`, field: "h2_performance", value: fmt3(h2) },
    { label: "h2 − h1", field: "performance_difference", value: difference === null ? "n/a" : fmtSigned3(difference) },
  ];
  if (evaluation) {
    rows.push({ label: "h1 errors", value: String(evaluation.error_counts.h1) });
    rows.push({ label: "h2 errors", value: String(evaluation.error_counts.h2) });
  }
  const family = familyLabel(familyOf(point), families);
  const dataset = datasetOf(point);
  return (
    <section className="bcml-panel bcml-details" aria-label="Selected model">
      <h3 className="bcml-panel-title">Selected model</h3>
      <p className="bcml-details-subtitle">
        <span data-field="family">{family}</span>, <span data-field="dataset">{dataset}</span> set,
        lambda_c {fmtLambda(point.lambda_c)} · {point.dataset_size} instances
      </p>
      <dl className="bcml-dl">
        {rows.map((r) => (
          <div className="bcml-dl-row" key={r.label}>
            <dt title={r.hint}>{r.label}</dt>
            <dd data-field={r.field}>{r.value}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}
