// The widget's state: one reducer per mounted widget, plus pure selectors.
import { datasetOf, familyOf } from "./families";
import type {
  DataPoint,
  EvaluationData,
  InstanceFilter,
  InstancePage,
  SortKey,
  SortSpec,
  SweepStatus,
  SweepSummary,
} from "./types";

export const PAGE_SIZE = 10;
/** lambda_c values are compared with this tolerance (0.30000000000000004 is 0.3). */
export const LAMBDA_TOLERANCE = 1e-6;

export interface PointFilters {
  training: boolean;
  testing: boolean;
  /** Names of the loss families whose points are hidden (unchecked). */
  hiddenFamilies: string[];
  /** Text of the inputs; empty means unbounded. */
  lambdaMin: string;
  lambdaMax: string;
}

export interface Loadable<T> {
  /** The datapoint (or request key) this belongs to. */
  key: string | null;
  data: T | null;
  loading: boolean;
  error: string | null;
}

export interface TableState {
  filter: InstanceFilter;
  sort: SortSpec;
  page: number;
}

export interface WidgetState {
  status: SweepStatus | null;
  summary: SweepSummary | null;
  /** Error of the last user action or load, in words (shown in the alert). */
  actionError: string | null;
  /** Transient connection problem while polling; the poll is retried. */
  pollError: string | null;
  /** Why polling stopped for good (the server refused this widget), or null. */
  connectionError: string | null;
  pending: "start" | "cancel" | null;
  filters: PointFilters;
  selectedIndex: number | null;
  evaluation: Loadable<EvaluationData>;
  table: TableState;
  instances: Loadable<InstancePage>;
}

export const DEFAULT_FILTERS: PointFilters = {
  training: true,
  testing: true,
  hiddenFamilies: [],
  lambdaMin: "0",
  lambdaMax: "1",
};

export const DEFAULT_SORT: SortSpec = { key: "instance_id", descending: false };

const EMPTY_LOADABLE = { key: null, data: null, loading: false, error: null };

export function initialState(): WidgetState {
  return {
    status: null,
    summary: null,
    actionError: null,
    pollError: null,
    connectionError: null,
    pending: null,
    filters: { ...DEFAULT_FILTERS, hiddenFamilies: [] },
    selectedIndex: null,
    evaluation: { ...EMPTY_LOADABLE },
    table: { filter: {}, sort: { ...DEFAULT_SORT }, page: 0 },
    instances: { ...EMPTY_LOADABLE },
  };
}

export type Action =
  | { type: "status"; status: SweepStatus }
  | { type: "summary"; summary: SweepSummary }
  | { type: "pollFailed"; message: string }
  | { type: "pollStopped"; message: string }
  | { type: "actionFailed"; message: string }
  | { type: "dismissError" }
  | { type: "pending"; pending: "start" | "cancel" | null }
  | { type: "sweepStarted"; status: SweepStatus }
  | { type: "setFilters"; filters: Partial<PointFilters> }
  | { type: "select"; index: number | null }
  | { type: "evaluationLoading"; key: string }
  | { type: "evaluationLoaded"; key: string; data: EvaluationData }
  | { type: "evaluationFailed"; key: string; message: string }
  | { type: "tableFilter"; filter: InstanceFilter }
  | { type: "clearTableFilter" }
  | { type: "sort"; key: SortKey }
  | { type: "page"; page: number }
  | { type: "instancesLoading"; key: string }
  | { type: "instancesLoaded"; key: string; data: InstancePage }
  | { type: "instancesFailed"; key: string; message: string };

export function reducer(state: WidgetState, action: Action): WidgetState {
  switch (action.type) {
    case "status":
      return { ...state, status: action.status, pollError: null, connectionError: null };
    case "summary":
      return { ...state, summary: action.summary, pollError: null, connectionError: null };
    case "pollFailed":
      return { ...state, pollError: action.message };
    case "pollStopped":
      return { ...state, pollError: null, connectionError: action.message };
    case "actionFailed":
      return { ...state, actionError: action.message, pending: null };
    case "dismissError":
      return { ...state, actionError: null };
    case "pending":
      return { ...state, pending: action.pending };
    case "sweepStarted":
      // A new sweep replaces every datapoint: forget the old ones.
      return {
        ...state,
        status: action.status,
        pending: null,
        actionError: null,
        pollError: null,
        connectionError: null,
        summary: state.summary ? { ...state.summary, data: [] } : null,
        selectedIndex: null,
        evaluation: { ...EMPTY_LOADABLE },
        table: { ...state.table, filter: {}, page: 0 },
        instances: { ...EMPTY_LOADABLE },
      };
    case "setFilters":
      return { ...state, filters: { ...state.filters, ...action.filters } };
    case "select":
      if (action.index === state.selectedIndex) return state;
      // Selecting a new point resets the table's filters and page.
      return {
        ...state,
        selectedIndex: action.index,
        evaluation: { ...EMPTY_LOADABLE },
        table: { ...state.table, filter: {}, page: 0 },
        instances: { ...EMPTY_LOADABLE },
      };
    case "evaluationLoading":
      return { ...state, evaluation: { key: action.key, data: null, loading: true, error: null } };
    case "evaluationLoaded":
      if (state.evaluation.key !== action.key) return state;
      return { ...state, evaluation: { key: action.key, data: action.data, loading: false, error: null } };
    case "evaluationFailed":
      if (state.evaluation.key !== action.key) return state;
      return { ...state, evaluation: { key: action.key, data: null, loading: false, error: action.message } };
    case "tableFilter":
      return { ...state, table: { ...state.table, filter: { ...action.filter }, page: 0 } };
    case "clearTableFilter":
      return { ...state, table: { ...state.table, filter: {}, page: 0 } };
    case "sort": {
      const current = state.table.sort;
      const sort =
        current.key === action.key
          ? { key: action.key, descending: !current.descending }
          : { key: action.key, descending: false };
      return { ...state, table: { ...state.table, sort, page: 0 } };
    }
    case "page":
      return { ...state, table: { ...state.table, page: Math.max(0, action.page) } };
    case "instancesLoading":
      return {
        ...state,
        // Keep the previous rows while the next page loads (no flicker).
        instances: { key: action.key, data: state.instances.data, loading: true, error: null },
      };
    case "instancesLoaded":
      if (state.instances.key !== action.key) return state;
      return { ...state, instances: { key: action.key, data: action.data, loading: false, error: null } };
    case "instancesFailed":
      if (state.instances.key !== action.key) return state;
      return { ...state, instances: { key: action.key, data: null, loading: false, error: action.message } };
    default:
      return state;
  }
}

/** Parses a lambda_c bound; empty or invalid text means "no bound" (null). */
export function parseBound(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : null;
}

export function isBoundInvalid(text: string): boolean {
  return text.trim() !== "" && parseBound(text) === null;
}

/** The hidden-family list after checking (shown) or unchecking a family. */
export function withFamilyShown(hidden: readonly string[], name: string, shown: boolean): string[] {
  const rest = hidden.filter((n) => n !== name);
  return shown ? rest : [...rest, name];
}

export function visiblePoints(points: readonly DataPoint[], filters: PointFilters): DataPoint[] {
  const min = parseBound(filters.lambdaMin);
  const max = parseBound(filters.lambdaMax);
  return points.filter((p) => {
    const dataset = datasetOf(p);
    if (dataset === "training" && !filters.training) return false;
    if (dataset === "testing" && !filters.testing) return false;
    if (filters.hiddenFamilies.includes(familyOf(p))) return false;
    if (min !== null && p.lambda_c < min - LAMBDA_TOLERANCE) return false;
    if (max !== null && p.lambda_c > max + LAMBDA_TOLERANCE) return false;
    return true;
  });
}

export function selectedPoint(state: WidgetState): DataPoint | null {
  if (state.selectedIndex === null || !state.summary) return null;
  return state.summary.data.find((p) => p.datapoint_index === state.selectedIndex) ?? null;
}

/** h1's performance on each dataset, read from the points of that dataset. */
export function h1ReferenceLines(points: readonly DataPoint[]): { training: number | null; testing: number | null } {
  const first = (dataset: "training" | "testing") =>
    points.find((p) => datasetOf(p) === dataset && Number.isFinite(p.h1_performance))?.h1_performance ?? null;
  return { training: first("training"), testing: first("testing") };
}

export function instancesKey(index: number, table: TableState): string {
  const f = table.filter;
  return [
    index,
    f.region ?? "",
    f.model ?? "",
    f.class ?? "",
    `${table.sort.descending ? "-" : ""}${table.sort.key}`,
    table.page,
  ].join("|");
}
