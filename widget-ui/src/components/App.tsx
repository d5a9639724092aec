// One widget: header, filters, plots, details, Venn, class charts, table.
import { useCallback, useMemo, useReducer } from "react";
import type { ApiClient } from "../api";
import { csvFileName, saveBlob } from "../download";
import { familiesOf } from "../families";
import { metricLabel } from "../format";
import { h1ReferenceLines, initialState, PAGE_SIZE, reducer, selectedPoint, visiblePoints } from "../state";
import { useEvaluation, useInstances, useSweepSync } from "../sync";
import type { InstanceFilter, Region } from "../types";
import { AccuracyByClass, IncompatibleByClass } from "./ClassCharts";
import { Filters } from "./Filters";
import { Header } from "./Header";
import { InstanceTable } from "./InstanceTable";
import { PlotLegend } from "./PlotLegend";
import { PointDetails } from "./PointDetails";
import { lambdaDomainOf, ScatterPlot } from "./ScatterPlot";
import { VennDiagram } from "./VennDiagram";

export interface AppProps {
  api: ApiClient;
  /** Poll intervals while a sweep runs and while none does (tests make them short). */
  pollIntervalMs?: number;
  idlePollIntervalMs?: number;
}

export function App({ api, pollIntervalMs, idlePollIntervalMs }: AppProps) {
  const [state, dispatch] = useReducer(reducer, undefined, initialState);
  const { start, cancel } = useSweepSync(api, dispatch, pollIntervalMs, idlePollIntervalMs);
  const retryEvaluation = useEvaluation(api, state, dispatch);
  const retryInstances = useInstances(api, state, dispatch);

  const all = state.summary?.data ?? [];
  const points = useMemo(() => visiblePoints(all, state.filters), [all, state.filters]);
  const h1Lines = useMemo(() => h1ReferenceLines(points), [points]);
  const lambdaDomain = useMemo(() => lambdaDomainOf(all), [all]);
  const yLabel = metricLabel(state.summary?.performance_metric);
  const point = selectedPoint(state);
  const evaluation = state.evaluation.data;
  const filter = state.table.filter;
  const families = useMemo(() => familiesOf(state.summary), [state.summary]);
  const imagesAvailable = state.summary?.instance_images !== false;

  const onSelect = useCallback((index: number) => dispatch({ type: "select", index }), []);
  const onFilter = useCallback((f: InstanceFilter) => dispatch({ type: "tableFilter", filter: f }), []);
  const onRegion = useCallback(
    (region: Region) => dispatch({ type: "tableFilter", filter: { region } }),
    [],
  );
  const { selectedIndex, table } = state;
  const onDownloadCsv = useCallback(async () => {
    if (selectedIndex === null) return;
    const query = { ...table.filter, sort: table.sort };
    const blob = await api.getInstancesCsv(selectedIndex, query);
    saveBlob(blob, csvFileName(selectedIndex, query));
  }, [api, selectedIndex, table]);

  return (
    <div className="bcml-app">
      <Header
        status={state.status}
        families={families}
        pending={state.pending}
        actionError={state.actionError}
        pollError={state.pollError}
        connectionError={state.connectionError}
        onStart={start}
        onCancel={cancel}
        onDismissError={() => dispatch({ type: "dismissError" })}
      />
      <Filters
        filters={state.filters}
        families={families}
        onChange={(filters) => dispatch({ type: "setFilters", filters })}
        shown={points.length}
        total={all.length}
      />
      <PlotLegend lambdaDomain={lambdaDomain} families={families} />
      <div className="bcml-grid-2">
        {(["btc", "bec"] as const).map((metric) => (
          <ScatterPlot
            key={metric}
            metric={metric}
            points={points}
            families={families}
            lambdaDomain={lambdaDomain}
            h1Lines={h1Lines}
            selectedIndex={state.selectedIndex}
            onSelect={onSelect}
            yLabel={yLabel}
          />
        ))}
      </div>
      <div className="bcml-grid-2">
        <PointDetails point={point} families={families} evaluation={evaluation} metricLabel={yLabel} />
        <section className="bcml-panel" aria-label="Errors of h1 and h2">
          <h3 className="bcml-panel-title">Errors of h1 and h2</h3>
          {evaluation ? (
            <VennDiagram evaluation={evaluation} activeRegion={filter.class === undefined ? filter.region ?? null : null} onSelectRegion={onRegion} />
          ) : (
            <EvaluationPlaceholder
              selected={point !== null}
              loading={state.evaluation.loading}
              error={state.evaluation.error}
              onRetry={retryEvaluation}
            />
          )}
        </section>
      </div>
      {evaluation ? (
        <>
          <div className="bcml-grid-2">
            <AccuracyByClass evaluation={evaluation} filter={filter} onFilter={onFilter} />
            <IncompatibleByClass evaluation={evaluation} filter={filter} onFilter={onFilter} />
          </div>
          <InstanceTable
            page={state.instances.data}
            loading={state.instances.loading}
            error={state.instances.error}
            table={state.table}
            pageSize={PAGE_SIZE}
            imageUrl={(id) => api.instanceImageUrl(id)}
            imagesAvailable={imagesAvailable}
            onDownloadCsv={onDownloadCsv}
            onSort={(key) => dispatch({ type: "sort", key })}
            onPage={(page) => dispatch({ type: "page", page })}
            onClearFilter={() => dispatch({ type: "clearTableFilter" })}
            onRetry={retryInstances}
          />
        </>
      ) : null}
    </div>
  );
}

interface EvaluationPlaceholderProps {
  selected: boolean;
  loading: boolean;
  error: string | null;
  onRetry: () => void;
}

function EvaluationPlaceholder({ selected, loading, error, onRetry }: EvaluationPlaceholderProps) {
  if (!selected) return <p className="bcml-empty">Select a point to compare the errors of h1 and h2.</p>;
  if (error) {
    return (
      <p className="bcml-inline-error">
        Could not load this datapoint's evaluation: {error}{" "}
        <button type="button" className="bcml-link-button" onClick={onRetry}>
          Try again
        </button>
      </p>
    );
  }
  if (loading) return <p className="bcml-empty">Loading the evaluation…</p>;
  return null;
}
