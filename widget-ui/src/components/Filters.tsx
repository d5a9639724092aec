// Dataset, loss family and lambda_c range filters of the scatter plots.
import { useId, type ReactNode } from "react";
import { isBoundInvalid, type PointFilters } from "../state";
import { DATASET_COLOR } from "../charts/theme";

export interface FiltersProps {
  filters: PointFilters;
  onChange: (filters: Partial<PointFilters>) => void;
  shown: number;
  total: number;
}

interface CheckProps {
  label: string;
  checked: boolean;
  onChange: (checked: boolean) => void;
  swatch?: ReactNode;
}

function Check({ label, checked, onChange, swatch }: CheckProps) {
  return (
    <label className="bcml-check">
      <input type="checkbox" checked={checked} onChange={(e) => onChange(e.currentTarget.checked)} />
      {swatch}
      <span>{label}</span>
    </label>
  );
}

function Swatch({ color }: { color: string }) {
  return <span className="bcml-swatch" style={{ background: color }} aria-hidden="true" />;
}

function Shape({ kind }: { kind: "circle" | "triangle" }) {
  return (
    <svg className="bcml-shape" width="12" height="12" viewBox="-6 -6 12 12" aria-hidden="true">
      {kind === "circle" ? <circle r="4.5" /> : <path d="M0,-5.2L5,3.6L-5,3.6Z" />}
    </svg>
  );
}

export function Filters({ filters, onChange, shown, total }: FiltersProps) {
  const id = useId();
  const minInvalid = isBoundInvalid(filters.lambdaMin);
  const maxInvalid = isBoundInvalid(filters.lambdaMax);
  return (
    <section className="bcml-filters" aria-label="Filters">
      <fieldset className="bcml-fieldset">
        <legend className="bcml-legend-title">Dataset</legend>
        <Check
          label="Training"
          checked={filters.training}
          onChange={(training) => onChange({ training })}
          swatch={<Swatch color={DATASET_COLOR.training} />}
        />
        <Check
          label="Testing"
          checked={filters.testing}
          onChange={(testing) => onChange({ testing })}
          swatch={<Swatch color={DATASET_COLOR.testing} />}
        />
      </fieldset>
      <fieldset className="bcml-fieldset">
        <legend className="bcml-legend-title">Dissonance</legend>
        <Check
          label="New Error"
          checked={filters.newError}
          onChange={(newError) => onChange({ newError })}
          swatch={<Shape kind="circle" />}
        />
        <Check
          label="Strict Imitation"
          checked={filters.strictImitation}
          onChange={(strictImitation) => onChange({ strictImitation })}
          swatch={<Shape kind="triangle" />}
        />
      </fieldset>
      <fieldset className="bcml-fieldset">
        <legend className="bcml-legend-title">lambda_c range</legend>
        <label className="bcml-range-label" htmlFor={`${id}-min`}>
          Minimum lambda_c
        </label>
        <input
          id={`${id}-min`}
          className="bcml-number"
          type="number"
          inputMode="decimal"
          step="0.05"
          value={filters.lambdaMin}
          aria-invalid={minInvalid || undefined}
          onChange={(e) => onChange({ lambdaMin: e.currentTarget.value })}
        />
        <label className="bcml-range-label" htmlFor={`${id}-max`}>
          Maximum lambda_c
        </label>
        <input
          id={`${id}-max`}
          className="bcml-number"
          type="number"
          inputMode="decimal"
          step="0.05"
          value={filters.lambdaMax}
          aria-invalid={maxInvalid || undefined}
          onChange={(e) => onChange({ lambdaMax: e.currentTarget.value })}
        />
      </fieldset>
      <p className="bcml-filter-count" aria-live="polite">
        {total === 0 ? "No datapoints yet" : `${shown} of ${total} datapoints shown`}
      </p>
    </section>
  );
}
