// A small menu listing the points stacked under a click, to pick one of them.
import { useEffect, useId, useRef, useState, type KeyboardEvent } from "react";
import { DATASET_COLOR, markerPath } from "../charts/theme";
import { datasetOf, familyIndex, familyLabel, familyOf } from "../families";
import { fmtLambda, pointLabel } from "../format";
import type { DataPoint, FamilyInfo } from "../types";

export interface StackChooserProps {
  /** The stacked points, in the order to list them. */
  points: readonly DataPoint[];
  families: readonly FamilyInfo[];
  selectedIndex: number | null;
  /** Position of the stack in the plot box (pixels) and the box's width. */
  left: number;
  top: number;
  width: number;
  /** `byKeyboard`: chosen with Enter or Space rather than a mouse click. */
  onChoose: (datapointIndex: number, byKeyboard: boolean) => void;
  /** `restoreFocus`: Escape (focus goes back to the stack) rather than a click elsewhere or Tab. */
  onClose: (restoreFocus: boolean) => void;
}

const MENU_WIDTH = 290;
const GAP = 16;

/**
 * Where the menu goes: right of the stack, else left of it, else below it
 * (so that it never hides the stack), within the plot's width.
 */
export function menuPosition(x: number, y: number, width: number, menuWidth = MENU_WIDTH): { left: number; top: number } {
  const top = Math.max(0, y - GAP);
  if (x + GAP + menuWidth <= width) return { left: x + GAP, top };
  if (x - GAP - menuWidth >= 0) return { left: x - GAP - menuWidth, top };
  return { left: Math.max(0, Math.min(width - menuWidth, x - menuWidth / 2)), top: y + GAP };
}

export function StackChooser(props: StackChooserProps) {
  const { points, families, selectedIndex } = props;
  const titleId = useId();
  const boxRef = useRef<HTMLDivElement>(null);
  const items = useRef<(HTMLButtonElement | null)[]>([]);
  const initial = Math.max(0, points.findIndex((p) => p.datapoint_index === selectedIndex));
  const [active, setActive] = useState(initial);
  const onClose = useRef(props.onClose);
  onClose.current = props.onClose;

  useEffect(() => {
    items.current[initial]?.focus();
    // Focus once, when the menu opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const doc = boxRef.current?.ownerDocument;
    if (!doc) return;
    const onPointerDown = (event: Event) => {
      if (boxRef.current && !boxRef.current.contains(event.target as Node)) onClose.current(false);
    };
    doc.addEventListener("mousedown", onPointerDown, true);
    return () => doc.removeEventListener("mousedown", onPointerDown, true);
  }, []);

  const move = (to: number) => {
    const n = points.length;
    const next = ((to % n) + n) % n;
    setActive(next);
    items.current[next]?.focus();
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === "ArrowDown") move(active + 1);
    else if (e.key === "ArrowUp") move(active - 1);
    else if (e.key === "Home") move(0);
    else if (e.key === "End") move(points.length - 1);
    else if (e.key === "Escape") props.onClose(true);
    else if (e.key === "Tab") {
      props.onClose(false);
      return;
    } else return;
    e.preventDefault();
    e.stopPropagation();
  };

  const style = { ...menuPosition(props.left, props.top, props.width), width: MENU_WIDTH };

  return (
    <div className="bcml-chooser" ref={boxRef} style={style} onKeyDown={onKeyDown}>
      <p className="bcml-chooser-title" id={titleId}>
        {points.length} datapoints here: choose one
      </p>
      <div className="bcml-chooser-list" role="menu" aria-labelledby={titleId}>
        {points.map((p, i) => {
          const dataset = datasetOf(p);
          const family = familyOf(p);
          return (
            <button
              key={p.datapoint_index}
              ref={(el) => {
                items.current[i] = el;
              }}
              type="button"
              role="menuitemradio"
              aria-checked={p.datapoint_index === selectedIndex}
              aria-label={pointLabel(p, families)}
              tabIndex={i === active ? 0 : -1}
              className="bcml-chooser-item"
              data-choice-index={p.datapoint_index}
              onFocus={() => setActive(i)}
              onClick={(e) => props.onChoose(p.datapoint_index, e.detail === 0)}
            >
              <svg width="14" height="14" viewBox="-7 -7 14 14" aria-hidden="true">
                <path d={markerPath(familyIndex(family, families), false, 60)} fill="#ffffff" stroke={DATASET_COLOR[dataset]} />
              </svg>
              <span className="bcml-chooser-lambda">lambda_c {fmtLambda(p.lambda_c)}</span>
              <span className="bcml-chooser-family">{familyLabel(family, families)}</span>
              <span className="bcml-chooser-dataset" style={{ color: DATASET_COLOR[dataset] }}>
                {dataset}
              </span>
            </button>
          );
        })}
      </div>
    </div>
  );
}
