import { describe, expect, it, vi } from "vitest";
import { act, fireEvent, render, screen, within } from "@testing-library/react";
import { InstanceTable, type InstanceTableProps } from "../src/components/InstanceTable";
import { DEFAULT_SORT, type TableState } from "../src/state";
import { makeItem, makePage } from "./fixtures";
import type { InstancePage } from "../src/types";

function renderTable(page: InstancePage | null, table: Partial<TableState> = {}, extra: Partial<InstanceTableProps> = {}) {
  const props = {
    page,
    loading: false,
    error: null,
    table: { filter: {}, sort: DEFAULT_SORT, page: 0, ...table },
    pageSize: 10,
    imageUrl: (id: number) => `http://127.0.0.1:5012/api/v1/instance_data/${id}?token=tok`,
    imagesAvailable: true,
    onDownloadCsv: vi.fn(async () => {}),
    onSort: vi.fn(),
    onPage: vi.fn(),
    onClearFilter: vi.fn(),
    ...extra,
  };
  const utils = render(<InstanceTable {...props} />);
  return { props, ...utils };
}

describe("InstanceTable", () => {
  it("is a real table with the expected columns, images with alt text", () => {
    renderTable(makePage(23));
    const table = screen.getByRole("table");
    const headers = within(table).getAllByRole("columnheader").map((h) => h.textContent?.replace(/[▲▼↕]/g, ""));
    expect(headers).toEqual(["Image", "Instance", "h1 prediction", "h2 prediction", "Ground truth"]);
    const img = screen.getByAltText("Instance 3: digit 3, sample 3") as HTMLImageElement;
    expect(img.src).toBe("http://127.0.0.1:5012/api/v1/instance_data/3?token=tok");
    expect(screen.getByText("digit 3, sample 3")).toBeTruthy();
    expect(within(table).getAllByRole("row")).toHaveLength(11);
  });

  it("pages on the server: page X of Y, Previous / Next", () => {
    const { props } = renderTable(makePage(23, 10), { page: 1 });
    expect(screen.getByText("page 2 of 3")).toBeTruthy();
    expect(screen.getByText("11–20 of 23")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Next page" }));
    expect(props.onPage).toHaveBeenLastCalledWith(2);
    fireEvent.click(screen.getByRole("button", { name: "Previous page" }));
    expect(props.onPage).toHaveBeenLastCalledWith(0);
  });

  it("disables paging at the ends", () => {
    renderTable(makePage(5));
    expect((screen.getByRole("button", { name: "Previous page" }) as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByRole("button", { name: "Next page" }) as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByText("page 1 of 1")).toBeTruthy();
  });

  it("sorts with aria-sort", () => {
    const { props } = renderTable(makePage(3), { sort: { key: "h2_prediction", descending: true } });
    const th = screen.getByRole("columnheader", { name: /h2 prediction/ });
    expect(th.getAttribute("aria-sort")).toBe("descending");
    expect(screen.getByRole("columnheader", { name: /Ground truth/ }).getAttribute("aria-sort")).toBe("none");
    fireEvent.click(screen.getByRole("button", { name: /Ground truth/ }));
    expect(props.onSort).toHaveBeenLastCalledWith("ground_truth");
  });

  it("shows the active filter with Clear filter", () => {
    const { props } = renderTable(makePage(3), { filter: { region: "regress", class: 4 } });
    expect(screen.getByText(/Filter: Regress \(h1 right, h2 wrong\), class 4/)).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Clear filter" }));
    expect(props.onClearFilter).toHaveBeenCalledOnce();
  });

  it("opens a dialog on row click and on Enter; Escape and Close close it", () => {
    renderTable({ total: 2, offset: 0, limit: 10, items: [makeItem(17), makeItem(18)] });
    const rows = screen.getAllByRole("row").slice(1);
    fireEvent.click(rows[0]);
    let dialog = screen.getByRole("dialog", { name: "Instance 17" });
    expect(within(dialog).getByAltText(/Instance 17/)).toBeTruthy();
    expect(within(dialog).getByText("digit 7, sample 17")).toBeTruthy();
    expect(document.activeElement).toBe(within(dialog).getByRole("button", { name: "Close" }));
    fireEvent.keyDown(dialog, { key: "Escape" });
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(document.activeElement).toBe(rows[0]);
    fireEvent.keyDown(rows[1], { key: "Enter" });
    dialog = screen.getByRole("dialog", { name: "Instance 18" });
    fireEvent.click(within(dialog).getByRole("button", { name: "Close" }));
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("shows an unknown prediction or ground truth as n/a, never marked wrong", () => {
    renderTable({
      total: 3, offset: 0, limit: 10,
      items: [
        makeItem(21, { h2_prediction: null }),
        makeItem(22, { ground_truth: null }),
        makeItem(23),
      ],
    });
    const rows = screen.getAllByRole("row").slice(1);
    expect(within(rows[0]).getAllByText("n/a")).toHaveLength(1);
    expect(within(rows[0]).queryByText(/\(wrong\)/)).toBeNull(); // h1 is right, h2 unknown
    expect(rows[0].getAttribute("aria-label")).toContain("h2 n/a");
    expect(within(rows[1]).queryByText(/\(wrong\)/)).toBeNull(); // no ground truth: nothing to be wrong about
    expect(within(rows[1]).getByText("n/a")).toBeTruthy();
    expect(within(rows[2]).getByText(/\(wrong\)/)).toBeTruthy(); // h2 differs from a known ground truth
    fireEvent.click(rows[0]);
    const dialog = screen.getByRole("dialog", { name: "Instance 21" });
    expect(within(dialog).getByText("1 (right)")).toBeTruthy();
    expect(within(dialog).getByText("n/a")).toBeTruthy();
  });

  it("empty table message", () => {
    renderTable({ total: 0, offset: 0, limit: 10, items: [] });
    expect(screen.getByText("Neither model makes an error on this dataset.")).toBeTruthy();
    expect(screen.getByText("page 1 of 1")).toBeTruthy();
  });

  it("empty result of a filter", () => {
    renderTable({ total: 0, offset: 0, limit: 10, items: [] }, { filter: { model: "h1", class: 1 } });
    expect(screen.getByText("No instances match this filter.")).toBeTruthy();
  });

  it("downloads the CSV through its callback, saying so while it runs and in words when it fails", async () => {
    let finish!: () => void;
    const onDownloadCsv = vi.fn(() => new Promise<void>((resolve) => (finish = resolve)));
    renderTable(makePage(3), {}, { onDownloadCsv });
    const button = screen.getByRole("button", { name: "Download CSV" }) as HTMLButtonElement;
    fireEvent.click(button);
    expect(onDownloadCsv).toHaveBeenCalledOnce();
    expect((screen.getByRole("button", { name: "Preparing CSV…" }) as HTMLButtonElement).disabled).toBe(true);
    await act(async () => finish());
    expect((screen.getByRole("button", { name: "Download CSV" }) as HTMLButtonElement).disabled).toBe(false);
    expect(screen.queryByRole("alert")).toBeNull();

    onDownloadCsv.mockImplementation(() => Promise.reject(new Error("Not found: no such route.")));
    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Download CSV" })));
    expect(screen.getByRole("alert").textContent).toBe("Could not download the CSV: Not found: no such route.");
  });

  it("without an image callback: no image column and no image requests, a notice instead", () => {
    renderTable({ total: 2, offset: 0, limit: 10, items: [makeItem(17), makeItem(18)] }, {}, { imagesAvailable: false });
    const table = screen.getByRole("table");
    const headers = within(table).getAllByRole("columnheader").map((h) => h.textContent?.replace(/[▲▼↕]/g, ""));
    expect(headers).toEqual(["Instance", "h1 prediction", "h2 prediction", "Ground truth"]);
    expect(document.querySelectorAll("img")).toHaveLength(0);
    expect(screen.getByRole("note").textContent).toBe("No images: this sweep was opened without an image callback.");
    fireEvent.click(screen.getAllByRole("row")[1]);
    const dialog = screen.getByRole("dialog", { name: "Instance 17" });
    expect(within(dialog).getByRole("note").textContent).toContain("without an image callback");
    expect(dialog.querySelector("img")).toBeNull();
    expect(within(dialog).getByText("digit 7, sample 17")).toBeTruthy();
  });
});
