// Saving a file the client fetched (with the token in a header) to the user's disk.
import type { InstanceQuery } from "./types";

/** How long an object URL lives after its click started the download. */
export const REVOKE_AFTER_MS = 30_000;

/**
 * Saves `blob` as `filename`: an object URL on a temporary `<a download>`
 * that is clicked and removed. The URL is revoked a while later, once the
 * browser has read it.
 */
export function saveBlob(blob: Blob, filename: string, doc: Document = document): void {
  const url = URL.createObjectURL(blob);
  const link = doc.createElement("a");
  link.href = url;
  link.download = filename;
  link.rel = "noopener";
  link.style.display = "none";
  doc.body.appendChild(link);
  try {
    link.click();
  } finally {
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), REVOKE_AFTER_MS);
  }
}

/** "bcml-datapoint-3-instances-regress-class-4.csv": the datapoint and the filter, in the name. */
export function csvFileName(datapointIndex: number, query: InstanceQuery): string {
  const parts = [`bcml-datapoint-${datapointIndex}-instances`];
  if (query.region) parts.push(query.region);
  if (query.model) parts.push(`${query.model}-errors`);
  if (query.class !== undefined) parts.push(`class-${query.class}`);
  return `${parts.join("-")}.csv`;
}
