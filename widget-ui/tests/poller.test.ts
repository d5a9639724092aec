import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startPolling } from "../src/poller";
import { makeStatus } from "./fixtures";
import type { SweepStatus } from "../src/types";

describe("startPolling", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("asks once and stops when no sweep runs", async () => {
    const fetchStatus = vi.fn(async () => makeStatus({ state: "completed" }));
    const onStatus = vi.fn();
    startPolling({ fetchStatus, onStatus, onError: vi.fn() });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(5000);
    expect(fetchStatus).toHaveBeenCalledTimes(1);
    expect(onStatus).toHaveBeenCalledTimes(1);
  });

  it("polls about once a second while running, until the sweep ends", async () => {
    const answers: SweepStatus[] = [
      makeStatus({ running: true, state: "running", completed_points: 1 }),
      makeStatus({ running: true, state: "running", completed_points: 2 }),
      makeStatus({ running: false, state: "completed", completed_points: 3 }),
    ];
    const fetchStatus = vi.fn(async () => answers.shift()!);
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
    await vi.advanceTimersByTimeAsync(10000);
    expect(fetchStatus).toHaveBeenCalledTimes(3);
    expect(onStatus.mock.calls.map((c) => c[0].completed_points)).toEqual([1, 2, 3]);
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
