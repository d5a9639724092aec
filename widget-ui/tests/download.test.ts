import { afterEach, describe, expect, it, vi } from "vitest";
import { csvFileName, REVOKE_AFTER_MS, saveBlob } from "../src/download";

describe("saveBlob", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("clicks a temporary <a download> on an object URL, removes it, and revokes the URL later", () => {
    vi.useFakeTimers();
    const created: Blob[] = [];
    const revoked: string[] = [];
    // jsdom has no object URLs.
    Object.assign(URL, {
      createObjectURL: (blob: Blob) => {
        created.push(blob);
        return "blob:http://127.0.0.1/1234";
      },
      revokeObjectURL: (url: string) => revoked.push(url),
    });
    const clicks: { href: string; download: string; attached: boolean }[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      clicks.push({ href: this.href, download: this.download, attached: document.body.contains(this) });
    });
    const blob = new Blob(["a,b\n1,2\n"], { type: "text/csv" });
    saveBlob(blob, "bcml-datapoint-3-instances.csv");
    expect(created).toEqual([blob]);
    expect(clicks).toEqual([{ href: "blob:http://127.0.0.1/1234", download: "bcml-datapoint-3-instances.csv", attached: true }]);
    expect(document.querySelectorAll("a")).toHaveLength(0);
    expect(revoked).toEqual([]);
    vi.advanceTimersByTime(REVOKE_AFTER_MS);
    expect(revoked).toEqual(["blob:http://127.0.0.1/1234"]);
  });

  it("names the file after the datapoint and the filter", () => {
    expect(csvFileName(3, {})).toBe("bcml-datapoint-3-instances.csv");
    expect(csvFileName(3, { region: "regress", class: 0 })).toBe("bcml-datapoint-3-instances-regress-class-0.csv");
    expect(csvFileName(12, { model: "h1", class: 4, sort: { key: "ground_truth", descending: true } })).toBe(
      "bcml-datapoint-12-instances-h1-errors-class-4.csv",
    );
  });
});
