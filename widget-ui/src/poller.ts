// Status polling: ask once, then about once a second while a sweep runs and
// every few seconds while none does (a sweep started from Python or another
// page shows up). A failed poll is reported and retried with a growing
// backoff; an error that retrying cannot mend (a refused token) stops it.
import type { SweepStatus } from "./types";

export interface PollerOptions {
  fetchStatus: () => Promise<SweepStatus>;
  onStatus?: (status: SweepStatus) => void;
  onError: (error: unknown, consecutiveFailures: number) => void;
  intervalMs?: number;
  /** Between polls while no sweep runs (default IDLE_POLL_INTERVAL_MS); 0: stop instead. */
  idleIntervalMs?: number;
  maxBackoffMs?: number;
  /** Wait one interval before the first request (default: ask at once). */
  delayFirst?: boolean;
  /** An error after which polling stops (reported to onError first). */
  isFatal?: (error: unknown) => boolean;
}

export interface Poller {
  stop(): void;
}

export const POLL_INTERVAL_MS = 1000;
export const IDLE_POLL_INTERVAL_MS = 5000;
export const MAX_BACKOFF_MS = 30_000;

export function startPolling(options: PollerOptions): Poller {
  const interval = options.intervalMs ?? POLL_INTERVAL_MS;
  const idleInterval = options.idleIntervalMs ?? IDLE_POLL_INTERVAL_MS;
  const maxBackoff = options.maxBackoffMs ?? MAX_BACKOFF_MS;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let failures = 0;

  const schedule = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(tick, delay);
  };

  async function tick(): Promise<void> {
    timer = null;
    if (stopped) return;
    let status: SweepStatus;
    try {
      status = await options.fetchStatus();
    } catch (error) {
      if (stopped) return;
      failures += 1;
      options.onError(error, failures);
      if (options.isFatal?.(error)) {
        stopped = true;
        return;
      }
      schedule(Math.min(interval * 2 ** (failures - 1), maxBackoff));
      return;
    }
    if (stopped) return;
    failures = 0;
    options.onStatus?.(status);
    if (status.running) schedule(interval);
    else if (idleInterval > 0) schedule(idleInterval);
  }

  schedule(options.delayFirst ? interval : 0);
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}
