// Venn diagram of h1's and h2's errors; each region filters the table.
import { regionLabelX, regionPaths, vennLayout } from "../charts/venn";
import { REGION_COLOR, REGION_TEXT_COLOR } from "../charts/theme";
import { fmtPercent } from "../format";
import type { EvaluationData, Region } from "../types";

export interface VennDiagramProps {
  evaluation: EvaluationData;
  activeRegion: Region | null;
  onSelectRegion: (region: Region) => void;
}

const WIDTH = 290;
const HEIGHT = 190;
const SIDE = 28;
const TOP = 14;

export const REGION_INFO: Record<Region, { title: string; hint: string }> = {
  progress: { title: "Progress", hint: "h1 wrong, h2 right" },
  common: { title: "Common", hint: "both wrong" },
  regress: { title: "Regress", hint: "h1 right, h2 wrong" },
};

const REGIONS: Region[] = ["progress", "common", "regress"];

export function regionLabel(region: Region, count: number, datasetSize: number): string {
  const noun = count === 1 ? "instance" : "instances";
  return `${REGION_INFO[region].title}: ${count} ${noun}, ${fmtPercent(count, datasetSize)} of the dataset`;
}

export function VennDiagram({ evaluation, activeRegion, onSelectRegion }: VennDiagramProps) {
  const { regions, dataset_size: size } = evaluation;
  const h1Errors = regions.progress + regions.common;
  const h2Errors = regions.common + regions.regress;
  const layout = vennLayout(h1Errors, h2Errors, regions.common, WIDTH - 2 * SIDE, HEIGHT - 2 * TOP, 4);
  return (
    <div className="bcml-venn">
      {layout ? (
        <VennSvg
          layout={layout}
          counts={regions}
          activeRegion={activeRegion}
          onSelectRegion={onSelectRegion}
        />
      ) : (
        <p className="bcml-empty bcml-venn-empty">Neither h1 nor h2 makes an error on this dataset.</p>
      )}
      <div className="bcml-venn-regions">
        {REGIONS.map((region) => (
          <button
            key={region}
            type="button"
            className={`bcml-region-button${activeRegion === region ? " bcml-active" : ""}`}
            aria-label={regionLabel(region, regions[region], size)}
            aria-pressed={activeRegion === region}
            onClick={() => onSelectRegion(region)}
          >
            <span className="bcml-region-swatch" style={{ background: REGION_COLOR[region] }} aria-hidden="true" />
            <span className="bcml-region-name">{REGION_INFO[region].title}</span>
            <span className="bcml-region-hint">{REGION_INFO[region].hint}</span>
            <span className="bcml-region-count">{regions[region]}</span>
            <span className="bcml-region-percent">{fmtPercent(regions[region], size)}</span>
          </button>
        ))}
      </div>
    </div>
  );
}

interface VennSvgProps {
  layout: NonNullable<ReturnType<typeof vennLayout>>;
  counts: Record<Region, number>;
  activeRegion: Region | null;
  onSelectRegion: (region: Region) => void;
}

function VennSvg({ layout, counts, activeRegion, onSelectRegion }: VennSvgProps) {
  const paths = regionPaths(layout);
  const labelX = regionLabelX(layout);
  const cy = layout.c1.y;
  // Region widths decide whether a count fits inside its region.
  const widths = {
    progress: Math.max(0, Math.min(layout.c2.x - layout.c2.r, layout.c1.x + layout.c1.r) - (layout.c1.x - layout.c1.r)),
    common: Math.max(0, Math.min(layout.c1.x + layout.c1.r, layout.c2.x + layout.c2.r) - Math.max(layout.c1.x - layout.c1.r, layout.c2.x - layout.c2.r)),
    regress: Math.max(0, layout.c2.x + layout.c2.r - Math.max(layout.c1.x + layout.c1.r, layout.c2.x - layout.c2.r)),
  };
  return (
    <svg className="bcml-svg bcml-venn-svg" width={WIDTH} height={HEIGHT} style={{ height: HEIGHT }} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} aria-hidden="true">
      <g transform={`translate(${SIDE},${TOP})`}>
        {REGIONS.map((region) =>
          paths[region] ? (
            <path
              key={region}
              className={`bcml-venn-region${activeRegion === region ? " bcml-active" : ""}`}
              d={paths[region]}
              fill={REGION_COLOR[region]}
              fillRule={paths.evenOdd ? "evenodd" : "nonzero"}
              data-region={region}
              onClick={() => onSelectRegion(region)}
            >
              <title>{REGION_INFO[region].title}</title>
            </path>
          ) : null,
        )}
        {layout.c1.r > 0 ? <circle className="bcml-venn-outline" cx={layout.c1.x} cy={cy} r={layout.c1.r} /> : null}
        {layout.c2.r > 0 ? <circle className="bcml-venn-outline" cx={layout.c2.x} cy={cy} r={layout.c2.r} /> : null}
        {REGIONS.map((region) =>
          counts[region] > 0 && widths[region] >= 22 ? (
            <text
              key={region}
              className="bcml-venn-count"
              x={labelX[region]}
              y={cy + 4}
              textAnchor="middle"
              fill={REGION_TEXT_COLOR[region]}
            >
              {counts[region]}
            </text>
          ) : null,
        )}
        {layout.c1.r > 0 ? (
          <text
            className="bcml-venn-name"
            x={layout.c1.x - layout.c1.r * 0.71 - 3}
            y={cy - layout.c1.r * 0.71 - 3}
            textAnchor="end"
          >
            h1
          </text>
        ) : null}
        {layout.c2.r > 0 ? (
          <text
            className="bcml-venn-name"
            x={layout.c2.x + layout.c2.r * 0.71 + 3}
            y={cy - layout.c2.r * 0.71 - 3}
            textAnchor="start"
          >
            h2
          </text>
        ) : null}
      </g>
    </svg>
  );
}
