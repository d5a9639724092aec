// Effects that keep one widget's state in step with the server.
import { useCallback, useEffect, useRef, useState, type Dispatch } from "react";
import { ApiClient, errorMessage, isAbortError } from "./api";
import { startPolling } from "./poller";
import { instancesKey, PAGE_SIZE, type Action, type WidgetState } from "./state";

/**
 * Asks for the status at once, then polls about once a second while a sweep
 * runs; refreshes the summary whenever points stream in or the state changes.
 * Returns the start and cancel actions.
 */
export function useSweepSync(api: ApiClient, dispatch: Dispatch<Action>, intervalMs?: number) {
  const [generation, setGeneration] = useState(0);
  const summaryKey = useRef<string | null>(null);

  useEffect(() => {
    let alive = true;
    const refreshSummary = (key: string) => {
      api.getSummary().then(
        (summary) => {
          if (!alive) return;
          summaryKey.current = key;
          dispatch({ type: "summary", summary });
        },
        (err) => {
          if (alive) dispatch({ type: "pollFailed", message: errorMessage(err) });
        },
      );
    };
    const poller = startPolling({
      fetchStatus: () => api.getStatus(),
      intervalMs,
      delayFirst: generation > 0,
      onStatus: (status) => {
        if (!alive) return;
        dispatch({ type: "status", status });
        const key = `${status.state}:${status.completed_points}:${status.total_points}`;
        if (key !== summaryKey.current) refreshSummary(key);
      },
      onError: (err) => {
        if (alive) dispatch({ type: "pollFailed", message: errorMessage(err) });
      },
    });
    return () => {
      alive = false;
      poller.stop();
    };
  }, [api, dispatch, generation, intervalMs]);

  const start = useCallback(() => {
    dispatch({ type: "pending", pending: "start" });
    api.startSweep().then(
      (res) => {
        summaryKey.current = null;
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

/** Loads the selected datapoint's evaluation; retried as new points arrive. */
export function useEvaluation(api: ApiClient, state: WidgetState, dispatch: Dispatch<Action>) {
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
}

/** Loads the current page of the instance table. */
export function useInstances(api: ApiClient, state: WidgetState, dispatch: Dispatch<Action>) {
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
  }, [api, dispatch, key, ready]);
}
