// Dataset, loss family and lambda_c range filters of the scatter plots.
import { useId, type ReactNode } from "react";
import { isBoundInvalid, withFamilyShown, type PointFilters } from "../state";
import { DATASET_COLOR, markerPath } from "../charts/theme";
import type { FamilyInfo } from "../types";

export interface FiltersProps {
  filters: PointFilters;
  /** The sweep's loss families, in order (one checkbox and marker shape each). */
  families: readonly FamilyInfo[];
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

/** The marker shape of the family at `index`, as the plots draw it. */
export function FamilyShape({ index, className = "bcml-shape" }: { index: number; className?: string }) {
  return (
    <svg className={className} width="12" height="12" viewBox="-6 -6 12 12" aria-hidden="true">
      <path d={markerPath(index, false, 50)} />
    </svg>
  );
}

export function Filters({ filters, families, onChange, shown, total }: FiltersProps) {
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
      {families.length > 0 ? (
        <fieldset className="bcml-fieldset">
          <legend className="bcml-legend-title">Dissonance</legend>
          {families.map((family, index) => (
            <Check
              key={family.name}
              label={family.label}
              checked={!filters.hiddenFamilies.includes(family.name)}
              onChange={(checked) =>
                onChange({ hiddenFamilies: withFamilyShown(filters.hiddenFamilies, family.name, checked) })
              }
              swatch={<FamilyShape index={index} />}
            />
          ))}
        </fieldset>
      ) : null}
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
