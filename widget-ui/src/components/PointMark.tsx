// One datapoint's marker in a scatter plot: a focusable button.
import { useRef } from "react";
import type { Placed } from "../charts/stacks";
import { DATASET_COLOR, markerPath } from "../charts/theme";
import { datasetOf, familyIndex, familyOf } from "../families";
import { pointLabel } from "../format";
import type { FamilyInfo } from "../types";

export interface PointMarkProps {
  item: Placed;
  families: readonly FamilyInfo[];
  selected: boolean;
  onFront: boolean;
  fill: string;
  /** A mouse click (the plot decides: select, or offer the stack). */
  onClick: () => void;
  /** Enter or Space: select this very point. */
  onSelect: (index: number) => void;
  /** The point whose values the tooltip shows, or null. */
  onHover: (index: number | null) => void;
}

export function PointMark({ item, families, selected, onFront, fill, onClick, onSelect, onHover }: PointMarkProps) {
  const pointerFocus = useRef(false);
  const p = item.point;
  const dataset = datasetOf(p);
  return (
    <g transform={`translate(${item.cx},${item.cy})`}>
      {onFront ? <circle className="bcml-pareto-ring" r={selected ? 12 : 9} aria-hidden="true" /> : null}
      <path
        className={`bcml-point${selected ? " bcml-point-selected" : ""}`}
        d={markerPath(familyIndex(familyOf(p), families), selected)}
        fill={fill}
        stroke={selected ? "#111" : DATASET_COLOR[dataset]}
        tabIndex={0}
        role="button"
        aria-label={pointLabel(p, families)}
        aria-description={onFront ? "Pareto-optimal" : undefined}
        aria-pressed={selected}
        data-datapoint-index={p.datapoint_index}
        onClick={onClick}
        onKeyDown={(e) => {
          if (e.key === "Enter" || e.key === " " || e.key === "Spacebar") {
            e.preventDefault();
            onSelect(p.datapoint_index);
          }
        }}
        onMouseEnter={() => onHover(p.datapoint_index)}
        onMouseLeave={() => onHover(null)}
        onMouseDown={() => {
          pointerFocus.current = true;
        }}
        onFocus={() => {
          // Keyboard focus shows the values; a mouse click does not pin them.
          if (!pointerFocus.current) onHover(p.datapoint_index);
          pointerFocus.current = false;
        }}
        onBlur={() => onHover(null)}
      />
    </g>
  );
}
