// "Download CSV": every row of the instance table under its current filter and sort.
import { useEffect, useRef, useState } from "react";
import { errorMessage } from "../api";

export interface DownloadCsvProps {
  /** Fetches the CSV and saves it; rejects with a message for people. */
  onDownload: () => Promise<void>;
}

export function DownloadCsv({ onDownload }: DownloadCsvProps) {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const alive = useRef(true);
  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
    };
  }, []);
  const run = () => {
    setPending(true);
    setError(null);
    onDownload().then(
      () => {
        if (alive.current) setPending(false);
      },
      (err) => {
        if (!alive.current) return;
        setPending(false);
        setError(errorMessage(err));
      },
    );
  };
  return (
    <>
      <button
        type="button"
        className="bcml-button bcml-button-small"
        onClick={run}
        disabled={pending}
      >
        {pending ? "Preparing CSV…" : "Download CSV"}
      </button>
      {error ? (
        <span className="bcml-inline-error bcml-download-error" role="alert">
          Could not download the CSV: {error}
        </span>
      ) : null}
    </>
  );
}
