// Effects that keep one widget's state in step with the server.
import { useCallback, useEffect, useRef, useState, type Dispatch } from "react";
import { ApiClient, ApiError, errorMessage, isAbortError } from "./api";
import { startPolling } from "./poller";
import { instancesKey, PAGE_SIZE, type Action, type WidgetState } from "./state";
import type { SweepStatus } from "./types";

/**
 * Which summary a status calls for: it changes when points stream in, the
 * state changes or another run of the sweep began (`sweep_id`), which tells
 * apart two finished sweeps when a new one ran entirely between two polls.
 * A server without `sweep_id` (an older version) is told apart by the last
 * loss, while nothing runs.
 */
export function summaryKeyOf(status: SweepStatus): string {
  const key = `${status.state}:${status.completed_points}:${status.total_points}`;
  if (status.sweep_id != null) return `${key}:${status.sweep_id}`;
  return status.running ? key : `${key}:${status.loss ?? ""}`;
}

/** A refused token or Host (401/403): the server this widget was made for is gone; retrying cannot help. */
export function isFatalPollError(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 401 || err.status === 403);
}

export function fatalPollMessage(err: unknown): string {
  return (
    `${errorMessage(err)} The server at this port does not accept this widget: its own server has stopped, ` +
    "or another one took its port. Updates stopped: show the widget again (run its cell again, or open the URL the server printed)."
  );
}

/**
 * Asks for the status at once, then polls about once a second while a sweep
 * runs and every few seconds while none does (so that a sweep started from
 * Python or another page shows up). Each poll fetches the summary too when
 * points streamed in or the state changed, in order, so that a failed
 * summary is retried with the poll and an older one never replaces a newer.
 * Returns the start and cancel actions.
 */
export function useSweepSync(api: ApiClient, dispatch: Dispatch<Action>, intervalMs?: number, idleIntervalMs?: number) {
  const [generation, setGeneration] = useState(0);
  const summaryKey = useRef<string | null>(null);
  /** The last status a poll (or Start) brought: a change while nothing ran means a new sweep. */
  const lastStatus = useRef<SweepStatus | null>(null);

  useEffect(() => {
    let alive = true;
    const poll = async (): Promise<SweepStatus> => {
      const status = await api.getStatus();
      if (!alive) return status;
      const key = summaryKeyOf(status);
      const previous = lastStatus.current;
      lastStatus.current = status;
      if (previous !== null && !previous.running && key !== summaryKeyOf(previous)) {
        // A sweep started elsewhere: its points replace the earlier ones.
        summaryKey.current = null;
        dispatch({ type: "sweepStarted", status });
      } else {
        dispatch({ type: "status", status });
      }
      if (key !== summaryKey.current) {
        const summary = await api.getSummary();
        if (!alive) return status;
        summaryKey.current = key;
        dispatch({ type: "summary", summary });
      }
      return status;
    };
    const poller = startPolling({
      fetchStatus: poll,
      intervalMs,
      idleIntervalMs,
      delayFirst: generation > 0,
      isFatal: isFatalPollError,
      onError: (err) => {
        if (!alive) return;
        if (isFatalPollError(err)) dispatch({ type: "pollStopped", message: fatalPollMessage(err) });
        else dispatch({ type: "pollFailed", message: errorMessage(err) });
      },
    });
    return () => {
      alive = false;
      poller.stop();
    };
  }, [api, dispatch, generation, intervalMs, idleIntervalMs]);

  const start = useCallback(() => {
    dispatch({ type: "pending", pending: "start" });
    api.startSweep().then(
      (res) => {
        summaryKey.current = null;
        lastStatus.current = res.status;
        dispatch({ type: "sweepStarted", status: res.status });
        setGeneration((g) => g + 1);
      },
      (err) => dispatch({ type: "actionFailed", message: `Could not start the sweep: ${errorMessage(err)}` }),
    );
  }, [api, dispatch]);

  const cancel = useCallback(() => {
    dispatch({ type: "pending", pending: "cancel" });
    api.cancelSweep().then(
      (res) => {
        dispatch({ type: "pending", pending: null });
        dispatch({ type: "status", status: res.status });
        // Let the poller see the final state (and refresh the summary).
        setGeneration((g) => g + 1);
      },
      (err) => dispatch({ type: "actionFailed", message: `Could not cancel the sweep: ${errorMessage(err)}` }),
    );
  }, [api, dispatch]);

  return { start, cancel };
}

/**
 * Loads the selected datapoint's evaluation; retried as new points arrive.
 * Returns `retry`, which asks for it again (after a failure).
 */
export function useEvaluation(api: ApiClient, state: WidgetState, dispatch: Dispatch<Action>): () => void {
  const index = state.selectedIndex;
  const [attempt, setAttempt] = useState(0);
  const failed = state.evaluation.error !== null;
  const progress = `${state.summary?.data.length ?? 0}:${state.status?.state ?? ""}`;
  // A datapoint whose evaluation is not there yet (404 during a sweep) is
  // asked for again when new points arrive or the sweep's state changes.
  const failedRef = useRef(failed);
  failedRef.current = failed;
  useEffect(() => {
    if (failedRef.current) setAttempt((a) => a + 1);
  }, [progress]);
  useEffect(() => {
    if (index === null) return;
    const key = String(index);
    const controller = new AbortController();
    dispatch({ type: "evaluationLoading", key });
    api.getEvaluation(index, controller.signal).then(
      (data) => dispatch({ type: "evaluationLoaded", key, data }),
      (err) => {
        if (!isAbortError(err)) dispatch({ type: "evaluationFailed", key, message: errorMessage(err) });
      },
    );
    return () => controller.abort();
  }, [api, dispatch, index, attempt]);
  return useCallback(() => setAttempt((a) => a + 1), []);
}

/** Loads the current page of the instance table. Returns `retry`, which asks for it again. */
export function useInstances(api: ApiClient, state: WidgetState, dispatch: Dispatch<Action>): () => void {
  const [attempt, setAttempt] = useState(0);
  const index = state.selectedIndex;
  const ready = state.evaluation.data !== null;
  const { table } = state;
  const key = index === null ? null : instancesKey(index, table);
  useEffect(() => {
    if (index === null || !ready || key === null) return;
    const controller = new AbortController();
    dispatch({ type: "instancesLoading", key });
    api
      .getInstances(
        index,
        { ...table.filter, sort: table.sort, offset: table.page * PAGE_SIZE, limit: PAGE_SIZE },
        controller.signal,
      )
      .then(
        (data) => dispatch({ type: "instancesLoaded", key, data }),
        (err) => {
          if (!isAbortError(err)) dispatch({ type: "instancesFailed", key, message: errorMessage(err) });
        },
      );
    return () => controller.abort();
    // `key` captures index, filter, sort and page.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, dispatch, key, ready, attempt]);
  return useCallback(() => setAttempt((a) => a + 1), []);
}
