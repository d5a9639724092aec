// Canned API answers (docs/api.md) and a fake fetch for the tests.
import type {
  DataPoint,
  EvaluationData,
  FamilyInfo,
  InstanceItem,
  InstancePage,
  SweepStatus,
  SweepSummary,
} from "../src/types";

export function makeStatus(overrides: Partial<SweepStatus> = {}): SweepStatus {
  return {
    running: false,
    state: "idle",
    percent_complete: 0,
    lambda_c: null,
    loss_family: null,
    loss: null,
    completed_points: 0,
    total_points: 0,
    eta_seconds: null,
    error: null,
    ...overrides,
  };
}

export const FAMILIES: FamilyInfo[] = [
  { name: "new-error", label: "New Error" },
  { name: "strict-imitation", label: "Strict Imitation" },
];

/**
 * A datapoint as the server sends it: `family` and `dataset` besides the
 * seed's booleans. Index map of the server: (lambda * families + family) * 2 + dataset.
 */
export function makePoint(index: number, overrides: Partial<DataPoint> = {}): DataPoint {
  const training = index % 2 === 0;
  const lambda = Math.floor(index / 4) * 0.25;
  const newError = Math.floor(index / 2) % 2 === 0;
  return {
    datapoint_index: index,
    lambda_c: lambda,
    family: newError ? "new-error" : "strict-imitation",
    dataset: training ? "training" : "testing",
    training,
    testing: !training,
    "new-error": newError,
    "strict-imitation": !newError,
    performance: 0.9 + 0.01 * (index % 5),
    h1_performance: training ? 0.91 : 0.88,
    btc: 0.95 + 0.005 * index,
    bec: 0.3 + 0.02 * index,
    nfr: 0.02,
    pfr: 0.05,
    dataset_size: training ? 1437 : 360,
    ...overrides,
  };
}

/** A point of an older folder: only the seed's booleans say its family and dataset. */
export function makeLegacyPoint(index: number, overrides: Partial<DataPoint> = {}): DataPoint {
  const { family: _family, dataset: _dataset, ...rest } = makePoint(index, overrides);
  void _family;
  void _dataset;
  return rest;
}

export function makeSummary(count: number, overrides: Partial<SweepSummary> = {}): SweepSummary {
  return {
    h1_performance: 0.88,
    performance_metric: "model_accuracy",
    families: FAMILIES,
    instance_images: true,
    data: Array.from({ length: count }, (_, i) => makePoint(i)),
    ...overrides,
  };
}

/** A summary of an older folder: no `families`, no `instance_images`, points without `family` / `dataset`. */
export function makeLegacySummary(count: number): SweepSummary {
  return {
    h1_performance: 0.88,
    performance_metric: "model_accuracy",
    data: Array.from({ length: count }, (_, i) => makeLegacyPoint(i)),
  };
}

export function makeEvaluation(index: number, overrides: Partial<EvaluationData> = {}): EvaluationData {
  const point = makePoint(index);
  return {
    ...point,
    h2_performance: point.performance,
    performance_metric: "model_accuracy",
    error_counts: { h1: 120, h2: 80 },
    regions: { progress: 60, common: 60, regress: 20 },
    sorted_classes: [0, 1, 2],
    h1_accuracy_by_class: [
      { class: 0, accuracy: 0.95, count: 140, error_count: 7 },
      { class: 1, accuracy: 0.8, count: 120, error_count: 24 },
      { class: 2, accuracy: 0.9, count: 100, error_count: 10 },
    ],
    h2_accuracy_by_class: [
      { class: 0, accuracy: 0.97, count: 140, error_count: 4 },
      { class: 1, accuracy: 0.85, count: 120, error_count: 18 },
      { class: 2, accuracy: 0.88, count: 100, error_count: 12 },
    ],
    h2_incompatible_count_by_class: [
      { class: 0, count: 3 },
      { class: 1, count: 5 },
      { class: 2, count: 12 },
    ],
    incompatible_total: 20,
    ...overrides,
  };
}

export function makeItem(id: number, overrides: Partial<InstanceItem> = {}): InstanceItem {
  return {
    instance_id: id,
    metadata: `digit ${id % 10}, sample ${id}`,
    h1_prediction: id % 10,
    h2_prediction: (id + 1) % 10,
    ground_truth: id % 10,
    region: "regress",
    ...overrides,
  };
}

export function makePage(total: number, offset = 0, limit = 10): InstancePage {
  const n = Math.max(0, Math.min(limit, total - offset));
  return { total, offset, limit, items: Array.from({ length: n }, (_, i) => makeItem(offset + i)) };
}

export interface Call {
  method: string;
  url: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
}

/** An answer: JSON of `body`, or `body` as text of `contentType` when that is given. */
export interface Answer {
  status?: number;
  body: unknown;
  contentType?: string;
}

export type Handler = (call: Call) => Answer | Promise<Answer>;

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

/** A fetch that answers from `handler` and records each call. */
export function fakeFetch(handler: Handler) {
  const calls: Call[] = [];
  const fn = async (input: string, init?: RequestInit): Promise<Response> => {
    const url = new URL(input);
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const call: Call = {
      method: init?.method ?? "GET",
      url: input,
      path: url.pathname,
      query: url.searchParams,
      headers,
    };
    calls.push(call);
    if (init?.signal?.aborted) throw new DOMException("aborted", "AbortError");
    const res = await handler(call);
    if (res.contentType) {
      return new Response(String(res.body), { status: res.status ?? 200, headers: { "Content-Type": res.contentType } });
    }
    return jsonResponse(res.body, res.status ?? 200);
  };
  return { fetch: fn, calls };
}

/** A small in-memory server following docs/api.md. */
export function fakeServer(options: { status?: SweepStatus; summary?: SweepSummary } = {}) {
  const state = {
    status: options.status ?? makeStatus({ state: "completed", completed_points: 8, total_points: 8, percent_complete: 1 }),
    summary: options.summary ?? makeSummary(8),
    evaluations: new Map<number, EvaluationData>(),
    instances: (index: number, query: URLSearchParams): InstancePage => {
      void index;
      const offset = Number(query.get("offset") ?? 0);
      const limit = Number(query.get("limit") ?? 50);
      return makePage(23, offset, limit);
    },
    csv: (index: number, query: URLSearchParams): string => {
      void query;
      const rows = makePage(23, 0, 23).items.map(
        (i) => `${i.instance_id},${i.h1_prediction},${i.h2_prediction},${i.ground_truth},${i.region}`,
      );
      void index;
      return ["instance_id,h1_prediction,h2_prediction,ground_truth,region", ...rows].join("\n") + "\n";
    },
  };
  const handler: Handler = (call) => {
    const p = call.path.replace(/^\/api\/v1\//, "");
    if (p === "sweep_status") return { body: state.status };
    if (p === "sweep_summary") return { body: state.summary };
    if (p === "start_sweep") return { status: 202, body: { started: true, status: state.status } };
    if (p === "cancel_sweep") return { body: { cancelled: true, status: state.status } };
    let m = /^evaluation_data\/(\d+)$/.exec(p);
    if (m) {
      const i = Number(m[1]);
      const ev = state.evaluations.get(i) ?? (state.summary.data.some((d) => d.datapoint_index === i) ? makeEvaluation(i) : null);
      return ev ? { body: ev } : { status: 404, body: { error: `No evaluation data for datapoint ${i}.` } };
    }
    m = /^evaluation_data\/(\d+)\/instances$/.exec(p);
    if (m) return { body: state.instances(Number(m[1]), call.query) };
    m = /^evaluation_data\/(\d+)\/instances\.csv$/.exec(p);
    if (m) return { body: state.csv(Number(m[1]), call.query), contentType: "text/csv; charset=utf-8" };
    return { status: 404, body: { error: "Unknown route." } };
  };
  const { fetch, calls } = fakeFetch(handler);
  return { state, fetch, calls };
}
