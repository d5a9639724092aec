import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { executorText, Header, statusAnnouncement, statusText } from "../src/components/Header";
import { FAMILIES, makeStatus } from "./fixtures";
import type { SweepStatus } from "../src/types";

function renderHeader(status: SweepStatus | null, extra: Partial<Parameters<typeof Header>[0]> = {}) {
  const props = {
    status,
    families: FAMILIES,
    pending: null,
    actionError: null,
    pollError: null,
    onStart: vi.fn(),
    onCancel: vi.fn(),
    onDismissError: vi.fn(),
    ...extra,
  };
  render(<Header {...props} />);
  return props;
}

describe("Header", () => {
  it("idle: Start enabled, Cancel disabled, progress 0", () => {
    const props = renderHeader(makeStatus());
    const start = screen.getByRole("button", { name: "Start sweep" });
    const cancel = screen.getByRole("button", { name: "Cancel sweep" });
    expect((start as HTMLButtonElement).disabled).toBe(false);
    expect((cancel as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByRole("progressbar").getAttribute("aria-valuenow")).toBe("0");
    fireEvent.click(start);
    expect(props.onStart).toHaveBeenCalledOnce();
  });

  it("running: shows percent, lambda_c, family and ETA; Cancel works", () => {
    const props = renderHeader(
      makeStatus({
        running: true,
        state: "running",
        percent_complete: 0.42,
        lambda_c: 0.30000000000000004,
        loss_family: "strict-imitation",
        loss: 0.7312,
        completed_points: 6,
        total_points: 20,
        eta_seconds: 12.5,
      }),
    );
    const bar = screen.getByRole("progressbar");
    expect(bar.getAttribute("aria-valuenow")).toBe("42");
    expect(bar.getAttribute("aria-valuemin")).toBe("0");
    expect(bar.getAttribute("aria-valuemax")).toBe("100");
    const text = screen.getByRole("status").textContent ?? "";
    expect(text).toContain("lambda_c 0.3");
    expect(text).toContain("Strict Imitation");
    expect(text).toContain("ETA 13 s");
    expect(text).toContain("6 of 20 points");
    expect((screen.getByRole("button", { name: "Start sweep" }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByRole("button", { name: "Cancel sweep" }));
    expect(props.onCancel).toHaveBeenCalledOnce();
  });

  it("announces points and states, not every poll's loss and ETA (the live region stays quiet)", () => {
    const running = makeStatus({
      running: true, state: "running", lambda_c: 0.25, loss_family: "new-error", loss: 0.7, completed_points: 6,
      total_points: 20, eta_seconds: 12, percent_complete: 0.3,
    });
    const next = { ...running, lambda_c: 0.5, loss: 0.6, eta_seconds: 11 };
    expect(statusText(next, FAMILIES)).not.toBe(statusText(running, FAMILIES));
    expect(statusAnnouncement(next, FAMILIES)).toBe(statusAnnouncement(running, FAMILIES));
    expect(statusAnnouncement(running, FAMILIES)).toBe("Running: 6 of 20 points");
    expect(statusAnnouncement({ ...running, completed_points: 7 }, FAMILIES)).toBe("Running: 7 of 20 points");
    const done = makeStatus({ state: "completed", completed_points: 20, total_points: 20 });
    expect(statusAnnouncement(done, FAMILIES)).toBe(statusText(done, FAMILIES));
    renderHeader(running);
    const live = screen.getByRole("status");
    expect(live.textContent).toBe(statusText(running, FAMILIES)); // all of it is shown
    const hidden = live.querySelector('[aria-hidden="true"]');
    expect(hidden?.textContent).toBe(" · lambda_c 0.25 · New Error · loss 0.700 · ETA 12 s");
    expect(live.textContent?.replace(hidden?.textContent ?? "", "")).toBe("Running: 6 of 20 points");
    expect(screen.getByRole("progressbar").getAttribute("aria-valuetext")).toBe(
      "30% · lambda_c 0.25 · New Error · loss 0.700 · ETA 12 s",
    );
  });

  it("says in words when a sweep was cancelled or failed", () => {
    renderHeader(makeStatus({ state: "cancelled", completed_points: 3, total_points: 8, percent_complete: 0.375 }));
    expect(screen.getByText(/Sweep cancelled/)).toBeTruthy();
    expect(screen.getByRole("alert").textContent).toBe("");
  });

  it("shows a failed sweep's error in the alert", () => {
    renderHeader(makeStatus({ state: "failed", error: "ValueError: bad lambda" }));
    expect(screen.getByRole("alert").textContent).toContain("Sweep failed: ValueError: bad lambda");
    expect(screen.getAllByText(/Sweep failed/)).toHaveLength(1);
  });

  it("shows action errors in the alert and connection trouble in the status", () => {
    const props = renderHeader(makeStatus({ state: "completed", percent_complete: 1 }), {
      actionError: "Could not start the sweep: A sweep is already running.",
      pollError: "Cannot reach the widget server",
    });
    expect(screen.getByRole("alert").textContent).toContain("A sweep is already running.");
    expect(screen.getByRole("status").textContent).toContain("retrying");
    expect(screen.getByRole("progressbar").getAttribute("aria-valuenow")).toBe("100");
    fireEvent.click(screen.getByRole("button", { name: "Dismiss" }));
    expect(props.onDismissError).toHaveBeenCalledOnce();
  });

  it("shows the executor, its note and the jobs running now", () => {
    const { container } = render(
      <Header
        status={makeStatus({
          running: true,
          state: "running",
          total_points: 20,
          executor: "vectorized",
          executor_note: null,
          running_jobs: [
            { lambda_c: 0.5, family: "strict-imitation" },
            { lambda_c: 0, family: "new-error" },
            { lambda_c: 0.25, family: "new-error" },
          ],
        })}
        families={FAMILIES}
        pending={null}
        actionError={null}
        pollError={null}
        onStart={vi.fn()}
        onCancel={vi.fn()}
        onDismissError={vi.fn()}
      />,
    );
    const line = container.querySelector('[data-field="executor"]')!;
    expect(line.textContent).toBe(
      "Executor: vectorized · training 3 jobs: New Error at lambda_c 0, 0.25; Strict Imitation at lambda_c 0.5",
    );
  });

  it("shows a fallback note, shortens long job lists, and hides jobs once the sweep stops", () => {
    const jobs = Array.from({ length: 11 }, (_, i) => ({ lambda_c: i / 10, family: "new-error" }));
    const running = makeStatus({
      running: true,
      state: "running",
      executor: "sequential",
      executor_note: "vectorized does not apply: LBFGS is not an element-wise optimizer",
      running_jobs: jobs,
    });
    expect(executorText(running, FAMILIES)).toBe(
      "Executor: sequential (vectorized does not apply: LBFGS is not an element-wise optimizer) · " +
        "training 11 jobs: New Error at lambda_c 0, 0.1, …, 1 (11 values)",
    );
    renderHeader(running);
    expect(screen.getByText(/^Executor: sequential \(vectorized does not apply: LBFGS/)).toBeTruthy();
    expect(executorText(makeStatus({ executor: null, executor_note: "falling back" }), FAMILIES)).toBe("falling back");
    const done = makeStatus({ state: "completed", executor: "vectorized", running_jobs: jobs });
    expect(executorText(done, FAMILIES)).toBe("Executor: vectorized");
  });

  it("says nothing of executors an older server does not report", () => {
    const { container } = render(
      <Header
        status={makeStatus({ running: true, state: "running" })}
        families={FAMILIES}
        pending={null}
        actionError={null}
        pollError={null}
        onStart={vi.fn()}
        onCancel={vi.fn()}
        onDismissError={vi.fn()}
      />,
    );
    expect(container.querySelector('[data-field="executor"]')).toBeNull();
    expect(executorText(null, FAMILIES)).toBe("");
  });

  it("labels the running family from the sweep's families", () => {
    const text = statusText(
      makeStatus({ running: true, state: "running", lambda_c: 0.5, loss_family: "focal" }),
      [{ name: "focal", label: "Focal dissonance" }],
    );
    expect(text).toContain("Focal dissonance");
  });
});
