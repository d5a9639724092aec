// Instances either model gets wrong: server-side paging and sorting.
import { useRef, useState } from "react";
import { DownloadCsv } from "./DownloadCsv";
import { InstanceDialog } from "./InstanceDialog";
import { InstanceImage, NO_IMAGES_NOTICE } from "./InstanceImage";
import { REGION_INFO } from "./VennDiagram";
import type { TableState } from "../state";
import type { InstanceFilter, InstanceItem, InstancePage, SortKey } from "../types";
import { fmtLabel } from "../format";

export interface InstanceTableProps {
  page: InstancePage | null;
  loading: boolean;
  error: string | null;
  table: TableState;
  pageSize: number;
  imageUrl: (instanceId: number) => string;
  /** False when the server has no image callback: no image column, a notice instead. */
  imagesAvailable: boolean;
  /** Downloads every row under the current filter and sort as CSV. */
  onDownloadCsv: () => Promise<void>;
  onSort: (key: SortKey) => void;
  onPage: (page: number) => void;
  onClearFilter: () => void;
  /** Asks for the current page again (after a failure). */
  onRetry?: () => void;
}

interface Column {
  key: SortKey | null;
  label: string;
}

const COLUMNS: Column[] = [
  { key: null, label: "Image" },
  { key: "instance_id", label: "Instance" },
  { key: "h1_prediction", label: "h1 prediction" },
  { key: "h2_prediction", label: "h2 prediction" },
  { key: "ground_truth", label: "Ground truth" },
];

export function describeFilter(filter: InstanceFilter): string {
  const parts: string[] = [];
  if (filter.region) parts.push(`${REGION_INFO[filter.region].title} (${REGION_INFO[filter.region].hint})`);
  if (filter.model) parts.push(`${filter.model} errors`);
  if (filter.class !== undefined) parts.push(`class ${filter.class}`);
  return parts.join(", ");
}

export function hasFilter(filter: InstanceFilter): boolean {
  return filter.region !== undefined || filter.model !== undefined || filter.class !== undefined;
}

export function InstanceTable(props: InstanceTableProps) {
  const { page, table, pageSize } = props;
  const [open, setOpen] = useState<InstanceItem | null>(null);
  const lastRow = useRef<HTMLTableRowElement | null>(null);
  const total = page?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const current = Math.min(table.page, pages - 1);
  const filtered = hasFilter(table.filter);
  const columns = props.imagesAvailable ? COLUMNS : COLUMNS.filter((c) => c.key !== null);

  const openRow = (item: InstanceItem, row: HTMLTableRowElement) => {
    lastRow.current = row;
    setOpen(item);
  };
  const close = () => {
    setOpen(null);
    lastRow.current?.focus();
  };

  return (
    <section className="bcml-panel bcml-table-panel" aria-label="Instances">
      <div className="bcml-panel-head">
        <h3 className="bcml-panel-title">Instances</h3>
        <div className="bcml-filter-state">
          {filtered ? (
            <>
              <span className="bcml-filter-chip">Filter: {describeFilter(table.filter)}</span>
              <button type="button" className="bcml-button bcml-button-small" onClick={props.onClearFilter}>
                Clear filter
              </button>
            </>
          ) : (
            <span className="bcml-panel-note">Every instance h1 or h2 gets wrong</span>
          )}
          <DownloadCsv onDownload={props.onDownloadCsv} />
        </div>
      </div>
      {props.imagesAvailable ? null : (
        <p className="bcml-notice" role="note">
          {NO_IMAGES_NOTICE}
        </p>
      )}
      {props.error ? (
        <p className="bcml-inline-error">
          Could not load instances: {props.error}
          {props.onRetry ? (
            <>
              {" "}
              <button type="button" className="bcml-link-button" onClick={props.onRetry}>
                Try again
              </button>
            </>
          ) : null}
        </p>
      ) : null}
      <div className="bcml-table-wrap">
        <table className="bcml-table" aria-busy={props.loading || undefined}>
          <thead>
            <tr>
              {columns.map((col) => {
                if (!col.key) {
                  return (
                    <th key={col.label} scope="col" className="bcml-col-image">
                      {col.label}
                    </th>
                  );
                }
                const active = table.sort.key === col.key;
                const dir = active ? (table.sort.descending ? "descending" : "ascending") : "none";
                return (
                  <th key={col.label} scope="col" aria-sort={dir} className={col.key === "instance_id" ? undefined : "bcml-num"}>
                    <button
                      type="button"
                      className="bcml-sort"
                      onClick={() => props.onSort(col.key as SortKey)}
                    >
                      {col.label}
                      <span className="bcml-sort-mark" aria-hidden="true">
                        {active ? (table.sort.descending ? "▼" : "▲") : "↕"}
                      </span>
                    </button>
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {page && page.items.length > 0
              ? page.items.map((item) => (
                  <tr
                    key={item.instance_id}
                    className="bcml-row"
                    tabIndex={0}
                    aria-label={`Instance ${item.instance_id}, h1 ${fmtLabel(item.h1_prediction)}, h2 ${fmtLabel(item.h2_prediction)}, ground truth ${fmtLabel(item.ground_truth)}; open details`}
                    onClick={(e) => openRow(item, e.currentTarget)}
                    onKeyDown={(e) => {
                      if (e.key === "Enter" || e.key === " ") {
                        e.preventDefault();
                        openRow(item, e.currentTarget);
                      }
                    }}
                  >
                    {props.imagesAvailable ? (
                      <td className="bcml-col-image">
                        <InstanceImage
                          className="bcml-thumb"
                          src={props.imageUrl(item.instance_id)}
                          alt={`Instance ${item.instance_id}${item.metadata ? `: ${item.metadata}` : ""}`}
                        />
                      </td>
                    ) : null}
                    <td>
                      <span className="bcml-instance-id">#{item.instance_id}</span>
                      <span className={`bcml-tag bcml-tag-${item.region}`}>
                        {REGION_INFO[item.region]?.title ?? item.region}
                      </span>
                      <span className="bcml-metadata">{item.metadata}</span>
                    </td>
                    <Prediction value={item.h1_prediction} truth={item.ground_truth} />
                    <Prediction value={item.h2_prediction} truth={item.ground_truth} />
                    <td className="bcml-num">{fmtLabel(item.ground_truth)}</td>
                  </tr>
                ))
              : null}
          </tbody>
        </table>
        {page && page.items.length === 0 ? (
          <p className="bcml-empty bcml-table-empty">
            {filtered ? "No instances match this filter." : "Neither model makes an error on this dataset."}
          </p>
        ) : null}
        {!page && props.loading ? <p className="bcml-empty bcml-table-empty">Loading instances…</p> : null}
      </div>
      <div className="bcml-pager">
        <span className="bcml-pager-range">
          {total > 0 ? `${current * pageSize + 1}–${Math.min(total, (current + 1) * pageSize)} of ${total}` : "0 instances"}
        </span>
        <button
          type="button"
          className="bcml-button bcml-button-small"
          onClick={() => props.onPage(current - 1)}
          disabled={current <= 0}
        >
          Previous page
        </button>
        <span className="bcml-pager-page">
          page {current + 1} of {pages}
        </span>
        <button
          type="button"
          className="bcml-button bcml-button-small"
          onClick={() => props.onPage(current + 1)}
          disabled={current >= pages - 1}
        >
          Next page
        </button>
      </div>
      {open ? (
        <InstanceDialog
          item={open}
          imageUrl={props.imagesAvailable ? props.imageUrl(open.instance_id) : null}
          onClose={close}
        />
      ) : null}
    </section>
  );
}

/** A prediction, marked wrong only when both it and the ground truth are known and differ. */
function Prediction({ value, truth }: { value: number | null; truth: number | null }) {
  if (value === null || value === undefined) {
    return <td className="bcml-num bcml-unknown">n/a</td>;
  }
  const wrong = truth !== null && truth !== undefined && value !== truth;
  return (
    <td className={`bcml-num${wrong ? " bcml-wrong" : ""}`}>
      {value}
      {wrong ? <span className="bcml-visually-hidden"> (wrong)</span> : null}
    </td>
  );
}
