// Title, Start / Cancel buttons, progress bar and errors in words.
import { familyLabel } from "../families";
import { fmtEta, fmtLambda, fmtLoss, fmtRunningJobs } from "../format";
import type { FamilyInfo, SweepStatus } from "../types";

export interface HeaderProps {
  status: SweepStatus | null;
  /** The sweep's loss families (their labels). */
  families: readonly FamilyInfo[];
  pending: "start" | "cancel" | null;
  actionError: string | null;
  pollError: string | null;
  /** Polling stopped for good: why (shown as an alert). */
  connectionError?: string | null;
  onStart: () => void;
  onCancel: () => void;
  onDismissError: () => void;
}

export function statusText(
  status: SweepStatus | null,
  families: readonly FamilyInfo[] = [],
  disconnected = false,
): string {
  if (!status) return disconnected ? "Not connected to the widget server." : "Connecting to the widget server…";
  const points = pointsText(status);
  switch (status.state) {
    case "idle":
      return "No sweep yet. Start a sweep to train h2 for each lambda_c.";
    case "running":
      return `Running: ${points}${statusDetails(status, families)}`;
    case "completed":
      return `Sweep completed: ${points}.`;
    case "cancelled":
      return `Sweep cancelled after ${points}.`;
    case "failed":
      // The alert says "Sweep failed: <error>"; say it only once.
      return `Stopped after ${points}.`;
    default:
      return `Sweep ${status.state}.`;
  }
}

/**
 * What changes at every poll while a sweep runs: " · lambda_c 0.25 · New Error
 * · loss 0.731 · ETA 13 s" ("" when nothing runs). It is shown, but kept out
 * of what the live region announces (see :func:`statusAnnouncement`), and
 * screen readers find it on the progress bar instead.
 */
export function statusDetails(status: SweepStatus | null, families: readonly FamilyInfo[] = []): string {
  if (!status || status.state !== "running") return "";
  const parts: string[] = [];
  if (status.lambda_c !== null) parts.push(`lambda_c ${fmtLambda(status.lambda_c)}`);
  if (status.loss_family) parts.push(familyLabel(status.loss_family, families));
  if (status.loss !== null && status.loss !== undefined) parts.push(`loss ${fmtLoss(status.loss)}`);
  parts.push(`ETA ${fmtEta(status.eta_seconds)}`);
  return parts.map((part) => ` · ${part}`).join("");
}

/**
 * What the live region announces: the status line without its details, so
 * that a screen reader speaks when a point is done or the state changes, not
 * at every poll.
 */
export function statusAnnouncement(
  status: SweepStatus | null,
  families: readonly FamilyInfo[] = [],
  disconnected = false,
): string {
  if (status?.state === "running") return `Running: ${pointsText(status)}`;
  return statusText(status, families, disconnected);
}

function pointsText(status: SweepStatus): string {
  return `${status.completed_points} of ${status.total_points} points`;
}

/**
 * The executor, its note and what it trains now, in one line:
 * "Executor: vectorized (10 trainings as 1 stacked model) · training 10 jobs:
 * New Error at lambda_c 0, 0.25, …, 1 (5 values); ...". Empty when the server
 * says nothing of it (older servers).
 */
export function executorText(status: SweepStatus | null, families: readonly FamilyInfo[]): string {
  if (!status) return "";
  const parts: string[] = [];
  const note = status.executor_note?.trim();
  if (status.executor) parts.push(`Executor: ${status.executor}${note ? ` (${note})` : ""}`);
  else if (note) parts.push(note);
  const jobs = status.running && Array.isArray(status.running_jobs) ? status.running_jobs : [];
  const running = fmtRunningJobs(jobs, families);
  if (running) parts.push(`training ${jobs.length} ${jobs.length === 1 ? "job" : "jobs"}: ${running}`);
  return parts.join(" · ");
}

export function progressPercent(status: SweepStatus | null): number {
  if (!status) return 0;
  if (status.state === "completed") return 100;
  const p = Number.isFinite(status.percent_complete) ? status.percent_complete : 0;
  return Math.max(0, Math.min(100, Math.round(p * 100)));
}

export function Header(props: HeaderProps) {
  const { status, pending } = props;
  const running = status?.running ?? false;
  const percent = progressPercent(status);
  const details = statusDetails(status, props.families);
  const failure = status?.state === "failed" ? `Sweep failed: ${status.error ?? "unknown error"}` : null;
  const alertText = props.actionError ?? props.connectionError ?? failure;
  return (
    <header className="bcml-header">
      <div className="bcml-header-row">
        <h2 className="bcml-title">Compatibility analysis</h2>
        <div className="bcml-actions">
          <button
            type="button"
            className="bcml-button bcml-button-primary"
            onClick={props.onStart}
            disabled={running || pending !== null || !status}
          >
            {pending === "start" ? "Starting…" : "Start sweep"}
          </button>
          <button
            type="button"
            className="bcml-button"
            onClick={props.onCancel}
            disabled={!running || pending !== null}
          >
            {pending === "cancel" ? "Cancelling…" : "Cancel sweep"}
          </button>
        </div>
      </div>
      <div className="bcml-progress-row">
        <div
          className={`bcml-progress bcml-progress-${status?.state ?? "unknown"}`}
          role="progressbar"
          aria-label="Sweep progress"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={percent}
          aria-valuetext={`${percent}%${details}`}
        >
          <div className="bcml-progress-fill" style={{ width: `${percent}%` }} />
        </div>
        <span className="bcml-progress-percent" aria-hidden="true">
          {percent}%
        </span>
      </div>
      <p className="bcml-status-text" role="status">
        {statusAnnouncement(status, props.families, Boolean(props.connectionError))}
        {details ? <span aria-hidden="true">{details}</span> : null}
        {props.pollError ? (
          <span className="bcml-poll-error"> Connection problem, retrying: {props.pollError}</span>
        ) : null}
      </p>
      <ExecutorLine status={status} families={props.families} />
      <div className={`bcml-alert${alertText ? " bcml-alert-visible" : ""}`} role="alert">
        {alertText ? (
          <>
            <span>{alertText}</span>
            {props.actionError ? (
              <button type="button" className="bcml-link-button" onClick={props.onDismissError}>
                Dismiss
              </button>
            ) : null}
          </>
        ) : null}
      </div>
    </header>
  );
}

function ExecutorLine({ status, families }: { status: SweepStatus | null; families: readonly FamilyInfo[] }) {
  const text = executorText(status, families);
  if (!text) return null;
  return (
    <p className="bcml-executor" data-field="executor" title={status?.executor_note ?? undefined}>
      {text}
    </p>
  );
}
