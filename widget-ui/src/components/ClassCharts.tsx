// Per-class charts: h1 vs h2 accuracy, and where the incompatible instances are.
import { useMemo } from "react";
import { ClassBarChart, type BarSeries } from "../charts/ClassBarChart";
import { MODEL_COLOR, REGION_COLOR } from "../charts/theme";
import { fmtPercent, isScore } from "../format";
import type { EvaluationData, InstanceFilter, ModelName } from "../types";

export interface ClassChartsProps {
  evaluation: EvaluationData;
  filter: InstanceFilter;
  onFilter: (filter: InstanceFilter) => void;
}

const pct0 = (v: number) => `${Math.round(v * 100)}%`;

export function AccuracyByClass({ evaluation, filter, onFilter }: ClassChartsProps) {
  const series = useMemo<BarSeries[]>(
    () =>
      (["h1", "h2"] as ModelName[]).map((model) => ({
        key: model,
        label: model,
        color: MODEL_COLOR[model],
        // A class without an accuracy (null: not computed) draws no bar.
        values: new Map(
          evaluation[`${model}_accuracy_by_class`].flatMap((c) => (isScore(c.accuracy) ? [[c.class, c.accuracy]] : [])),
        ),
      })),
    [evaluation],
  );
  const hasAccuracy = series.some((s) => s.values.size > 0);
  const details = useMemo(() => {
    const m = new Map<string, { count: number; errors: number }>();
    for (const model of ["h1", "h2"] as ModelName[]) {
      for (const c of evaluation[`${model}_accuracy_by_class`]) {
        m.set(`${model}-${c.class}`, { count: c.count, errors: c.error_count });
      }
    }
    return m;
  }, [evaluation]);
  const classes = evaluation.sorted_classes;
  return (
    <section className="bcml-panel" aria-label="Accuracy by class">
      <div className="bcml-panel-head">
        <h3 className="bcml-panel-title">Accuracy by class</h3>
        <span className="bcml-inline-legend" aria-hidden="true">
          <span className="bcml-swatch" style={{ background: MODEL_COLOR.h1 }} /> h1
          <span className="bcml-swatch" style={{ background: MODEL_COLOR.h2 }} /> h2
        </span>
      </div>
      {classes.length === 0 ? (
        <p className="bcml-empty">No classes.</p>
      ) : !hasAccuracy ? (
        <p className="bcml-empty">No accuracy by class: this datapoint's record does not have it.</p>
      ) : (
        <ClassBarChart
          classes={classes}
          series={series}
          yMax={1}
          yTickFormat={pct0}
          yLabel="Accuracy"
          barLabel={(s, cls, value) => {
            const d = details.get(`${s.key}-${cls}`);
            const extra = d ? `, ${d.errors} of ${d.count} wrong` : "";
            return `Class ${cls}: ${s.label} accuracy ${(value * 100).toFixed(1)}%${extra}`;
          }}
          isActive={(s, cls) => filter.model === s.key && filter.class === cls && !filter.region}
          onBar={(s, cls) => onFilter({ model: s.key as ModelName, class: cls })}
        />
      )}
      {classes.length > 0 && hasAccuracy ? (
        <p className="bcml-hint">Click a bar to list that model's errors of that class.</p>
      ) : null}
    </section>
  );
}

export function IncompatibleByClass({ evaluation, filter, onFilter }: ClassChartsProps) {
  const total = evaluation.incompatible_total;
  const counts = useMemo(
    () => new Map(evaluation.h2_incompatible_count_by_class.map((c) => [c.class, c.count])),
    [evaluation],
  );
  const series = useMemo<BarSeries[]>(
    () => [
      {
        key: "regress",
        label: "incompatible",
        color: REGION_COLOR.regress,
        values: new Map(
          evaluation.sorted_classes.map((cls) => [cls, total > 0 ? (counts.get(cls) ?? 0) / total : 0]),
        ),
      },
    ],
    [evaluation, total, counts],
  );
  const maxShare = Math.max(0, ...series[0].values.values());
  const yMax = maxShare > 0 ? Math.min(1, Math.ceil(maxShare * 10) / 10) : 1;
  const classes = evaluation.sorted_classes;
  return (
    <section className="bcml-panel" aria-label="Incompatible instances by class">
      <div className="bcml-panel-head">
        <h3 className="bcml-panel-title">Incompatible instances by class</h3>
        <span className="bcml-panel-note">{total} in all (h1 right, h2 wrong)</span>
      </div>
      {total === 0 ? (
        <p className="bcml-empty">No incompatible instances: h2 is right wherever h1 is.</p>
      ) : (
        <ClassBarChart
          classes={classes}
          series={series}
          yMax={yMax}
          yTickFormat={pct0}
          yLabel="Share of incompatible"
          barLabel={(_s, cls) => {
            const count = counts.get(cls) ?? 0;
            return `Class ${cls}: ${fmtPercent(count, total)} of incompatible instances (${count} of ${total})`;
          }}
          isActive={(_s, cls) => filter.region === "regress" && filter.class === cls}
          onBar={(_s, cls) => onFilter({ region: "regress", class: cls })}
        />
      )}
      {total > 0 ? (
        <p className="bcml-hint">
          {total === 1 ? "Share of the 1 incompatible instance" : `Share of all ${total} incompatible instances`}; click a bar
          to list them.
        </p>
      ) : null}
    </section>
  );
}
