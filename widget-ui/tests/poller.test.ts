import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { IDLE_POLL_INTERVAL_MS, MAX_BACKOFF_MS, startPolling } from "../src/poller";
import { makeStatus } from "./fixtures";
import type { SweepStatus } from "../src/types";

describe("startPolling", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("asks at once, then only every idle interval while no sweep runs", async () => {
    // A sweep started from Python or another page must show up: no poller stops for good.
    const fetchStatus = vi.fn(async () => makeStatus({ state: "completed" }));
    const onStatus = vi.fn();
    startPolling({ fetchStatus, onStatus, onError: vi.fn() });
    await vi.advanceTimersByTimeAsync(0);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(IDLE_POLL_INTERVAL_MS - 1);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchStatus).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(IDLE_POLL_INTERVAL_MS);
    expect(fetchStatus).toHaveBeenCalledTimes(3);
    expect(onStatus).toHaveBeenCalledTimes(3);
  });

  it("idleIntervalMs 0 asks once and stops when no sweep runs", async () => {
    const fetchStatus = vi.fn(async () => makeStatus({ state: "completed" }));
    startPolling({ fetchStatus, onError: vi.fn(), idleIntervalMs: 0 });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
  });

  it("polls about once a second while running, then slows down when the sweep ends", async () => {
    const answers: SweepStatus[] = [
      makeStatus({ running: true, state: "running", completed_points: 1 }),
      makeStatus({ running: true, state: "running", completed_points: 2 }),
      makeStatus({ running: false, state: "completed", completed_points: 3 }),
    ];
    const fetchStatus = vi.fn(async () => answers.shift() ?? makeStatus({ state: "completed", completed_points: 3 }));
    const onStatus = vi.fn();
    startPolling({ fetchStatus, onStatus, onError: vi.fn() });
    await vi.advanceTimersByTimeAsync(0);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchStatus).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(fetchStatus).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(IDLE_POLL_INTERVAL_MS - 1);
    expect(fetchStatus).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchStatus).toHaveBeenCalledTimes(4);
    expect(onStatus.mock.calls.map((c) => c[0].completed_points)).toEqual([1, 2, 3, 3]);
  });

  it("retries a failed poll instead of giving up", async () => {
    let n = 0;
    const fetchStatus = vi.fn(async () => {
      n += 1;
      if (n <= 2) throw new Error("network down");
      return makeStatus({ state: "completed" });
    });
    const onError = vi.fn();
    const onStatus = vi.fn();
    startPolling({ fetchStatus, onStatus, onError });
    await vi.advanceTimersByTimeAsync(0);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0][1]).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(onError).toHaveBeenCalledTimes(2);
    // Backoff doubles: the third try comes 2 s later.
    await vi.advanceTimersByTimeAsync(1999);
    expect(fetchStatus).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchStatus).toHaveBeenCalledTimes(3);
    expect(onStatus).toHaveBeenCalledTimes(1);
  });

  it("backs off up to 30 s while the server cannot be reached, and never faster", async () => {
    const fetchStatus = vi.fn(async (): Promise<SweepStatus> => {
      throw new Error("Failed to fetch");
    });
    startPolling({ fetchStatus, onError: vi.fn() });
    await vi.advanceTimersByTimeAsync(0);
    const times: number[] = [];
    let last = fetchStatus.mock.calls.length;
    for (let t = 1; t <= 150_000; t += 500) {
      await vi.advanceTimersByTimeAsync(500);
      if (fetchStatus.mock.calls.length !== last) {
        last = fetchStatus.mock.calls.length;
        times.push(t + 499);
      }
    }
    const gaps = times.map((t, i) => t - (i === 0 ? 0 : times[i - 1]));
    // 1, 2, 4, 8, 16, then 30 s: about 9 requests in 150 s, not 30 (5 s) or unbounded.
    expect(gaps.slice(0, 6).map((g) => Math.round(g / 1000))).toEqual([1, 2, 4, 8, 16, 30]);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(MAX_BACKOFF_MS + 500);
    expect(fetchStatus.mock.calls.length).toBeLessThanOrEqual(10);
  });

  it("stops after an error that isFatal says retrying cannot mend, reporting it once", async () => {
    const refused = new Error("Missing or wrong token.");
    const fetchStatus = vi.fn(async (): Promise<SweepStatus> => {
      throw refused;
    });
    const onError = vi.fn();
    startPolling({ fetchStatus, onError, isFatal: (e) => e === refused });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0][0]).toBe(refused);
  });

  it("stop() ends polling and ignores answers in flight", async () => {
    const fetchStatus = vi.fn(async () => makeStatus({ running: true, state: "running" }));
    const onStatus = vi.fn();
    const poller = startPolling({ fetchStatus, onStatus, onError: vi.fn(), delayFirst: true });
    await vi.advanceTimersByTimeAsync(1000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    poller.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
  });
});
