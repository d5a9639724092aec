import { describe, expect, it } from "vitest";
import {
  DEFAULT_FILTERS,
  h1ReferenceLines,
  initialState,
  isBoundInvalid,
  parseBound,
  reducer,
  selectedPoint,
  visiblePoints,
} from "../src/state";
import { makeEvaluation, makePage, makePoint, makeStatus, makeSummary } from "./fixtures";

describe("visiblePoints", () => {
  const points = makeSummary(16).data;

  it("keeps everything with the default filters", () => {
    expect(visiblePoints(points, DEFAULT_FILTERS)).toHaveLength(16);
  });

  it("filters by dataset and loss family", () => {
    const training = visiblePoints(points, { ...DEFAULT_FILTERS, testing: false });
    expect(training.every((p) => p.training)).toBe(true);
    const si = visiblePoints(points, { ...DEFAULT_FILTERS, hiddenFamilies: ["new-error"] });
    expect(si.length).toBeGreaterThan(0);
    expect(si.every((p) => p["strict-imitation"])).toBe(true);
    expect(visiblePoints(points, { ...DEFAULT_FILTERS, training: false, testing: false })).toEqual([]);
  });

  it("compares lambda_c with a tolerance", () => {
    const noisy = [makePoint(0, { lambda_c: 0.30000000000000004 }), makePoint(1, { lambda_c: 0.29999999999999993 })];
    expect(visiblePoints(noisy, { ...DEFAULT_FILTERS, lambdaMin: "0.3", lambdaMax: "0.3" })).toHaveLength(2);
    expect(visiblePoints(noisy, { ...DEFAULT_FILTERS, lambdaMin: "0.31" })).toHaveLength(0);
  });

  it("treats empty or invalid bounds as no bound", () => {
    expect(parseBound("")).toBeNull();
    expect(parseBound("abc")).toBeNull();
    expect(parseBound(" 0.5 ")).toBe(0.5);
    expect(isBoundInvalid("abc")).toBe(true);
    expect(isBoundInvalid("")).toBe(false);
    expect(visiblePoints(points, { ...DEFAULT_FILTERS, lambdaMin: "", lambdaMax: "x" })).toHaveLength(16);
  });
});

describe("reducer", () => {
  it("selecting a new point resets the table filter and page, keeps the sort", () => {
    let s = initialState();
    s = reducer(s, { type: "select", index: 1 });
    s = reducer(s, { type: "tableFilter", filter: { region: "regress", class: 2 } });
    s = reducer(s, { type: "sort", key: "ground_truth" });
    s = reducer(s, { type: "page", page: 3 });
    expect(s.table).toEqual({ filter: { region: "regress", class: 2 }, sort: { key: "ground_truth", descending: false }, page: 3 });
    s = reducer(s, { type: "select", index: 2 });
    expect(s.selectedIndex).toBe(2);
    expect(s.table.filter).toEqual({});
    expect(s.table.page).toBe(0);
    expect(s.table.sort.key).toBe("ground_truth");
  });

  it("a new table filter or sort goes back to the first page; sorting twice flips direction", () => {
    let s = reducer(initialState(), { type: "page", page: 2 });
    s = reducer(s, { type: "tableFilter", filter: { model: "h1", class: 0 } });
    expect(s.table.page).toBe(0);
    s = reducer(s, { type: "page", page: 1 });
    s = reducer(s, { type: "sort", key: "instance_id" });
    expect(s.table.sort).toEqual({ key: "instance_id", descending: true });
    expect(s.table.page).toBe(0);
    s = reducer(s, { type: "sort", key: "instance_id" });
    expect(s.table.sort.descending).toBe(false);
    s = reducer(s, { type: "clearTableFilter" });
    expect(s.table.filter).toEqual({});
    expect(reducer(s, { type: "page", page: -4 }).table.page).toBe(0);
  });

  it("ignores answers for a request that is no longer current", () => {
    let s = reducer(initialState(), { type: "select", index: 1 });
    s = reducer(s, { type: "evaluationLoading", key: "1" });
    s = reducer(s, { type: "evaluationLoaded", key: "0", data: makeEvaluation(0) });
    expect(s.evaluation.data).toBeNull();
    s = reducer(s, { type: "evaluationLoaded", key: "1", data: makeEvaluation(1) });
    expect(s.evaluation.data?.datapoint_index).toBe(1);
    s = reducer(s, { type: "instancesLoading", key: "a" });
    s = reducer(s, { type: "instancesLoaded", key: "b", data: makePage(3) });
    expect(s.instances.data).toBeNull();
    s = reducer(s, { type: "instancesFailed", key: "a", message: "boom" });
    expect(s.instances.error).toBe("boom");
  });

  it("starting a sweep forgets the old points and selection", () => {
    let s = reducer(initialState(), { type: "summary", summary: makeSummary(4) });
    s = reducer(s, { type: "select", index: 2 });
    expect(selectedPoint(s)?.datapoint_index).toBe(2);
    s = reducer(s, { type: "pending", pending: "start" });
    s = reducer(s, { type: "sweepStarted", status: makeStatus({ running: true, state: "running" }) });
    expect(s.summary?.data).toEqual([]);
    expect(s.selectedIndex).toBeNull();
    expect(s.pending).toBeNull();
  });

  it("keeps poll errors apart from action errors", () => {
    let s = reducer(initialState(), { type: "pollFailed", message: "offline" });
    expect(s.pollError).toBe("offline");
    s = reducer(s, { type: "status", status: makeStatus() });
    expect(s.pollError).toBeNull();
    s = reducer(s, { type: "actionFailed", message: "409" });
    expect(s.actionError).toBe("409");
    s = reducer(s, { type: "dismissError" });
    expect(s.actionError).toBeNull();
  });
});

describe("h1ReferenceLines", () => {
  it("reads h1's performance per dataset", () => {
    expect(h1ReferenceLines(makeSummary(4).data)).toEqual({ training: 0.91, testing: 0.88 });
    expect(h1ReferenceLines([])).toEqual({ training: null, testing: null });
  });
});
