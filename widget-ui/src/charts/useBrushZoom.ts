// Drag a rectangle (d3-brush) over a plot to zoom into it.
import { useEffect, useRef } from "react";
import { brush, type D3BrushEvent } from "d3-brush";
import { select } from "d3-selection";

export type PixelBox = [[number, number], [number, number]];

/**
 * Binds a d3 brush to the `<g>` of the returned ref, over `width` x `height`.
 * When a drag ends, `onBrush` gets the rectangle in pixels and the brush's
 * rectangle disappears. Draw the points after this group so that they stay
 * clickable; dragging from the empty plot area brushes.
 */
export function useBrushZoom(width: number, height: number, onBrush: (box: PixelBox) => void) {
  const ref = useRef<SVGGElement>(null);
  const callback = useRef(onBrush);
  callback.current = onBrush;
  useEffect(() => {
    const node = ref.current;
    if (!node) return;
    const g = select(node);
    const b = brush<unknown>()
      .extent([
        [0, 0],
        [width, height],
      ])
      .on("end", (event: D3BrushEvent<unknown>) => {
        // Programmatic moves (clearing below) have no source event.
        if (!event.sourceEvent || !event.selection) return;
        const box = event.selection as PixelBox;
        g.call(b.move, null);
        callback.current(box);
      });
    g.call(b);
    g.attr("aria-hidden", "true");
    return () => {
      g.on(".brush", null);
      g.selectAll("*").remove();
    };
  }, [width, height]);
  return ref;
}
