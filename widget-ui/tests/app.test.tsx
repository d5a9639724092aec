import { afterEach, describe, expect, it, vi } from "vitest";
import { act, fireEvent, waitFor, within } from "@testing-library/react";
import { mountWidget, type MountedWidget } from "../src/index";
import { fakeServer, makeLegacySummary, makeStatus, makeSummary, type Call } from "./fixtures";

const page = { protocol: "http:", hostname: "127.0.0.1" };

function host(): HTMLElement {
  const el = document.createElement("div");
  document.body.appendChild(el);
  return el;
}

// Widgets a test mounted: unmounted after it, so that no poller outlives its test.
const mounted: MountedWidget[] = [];

afterEach(() => {
  act(() => {
    for (const w of mounted.splice(0)) w.unmount();
  });
});

async function mount(el: HTMLElement, server: ReturnType<typeof fakeServer>, port = 5012, token = "tok"): Promise<MountedWidget> {
  let w!: MountedWidget;
  await act(async () => {
    w = mountWidget(el, { environment_type: "local", base_url: null, port, token }, {
      fetch: server.fetch,
      location: page,
      pollIntervalMs: 15,
    });
  });
  mounted.push(w);
  return w;
}

const count = (calls: Call[], suffix: string) => calls.filter((c) => c.path.endsWith(suffix)).length;

describe("the mounted widget", () => {
  it("sets window.BackwardCompatibilityML once", () => {
    expect(typeof window.BackwardCompatibilityML?.mountWidget).toBe("function");
  });

  it("asks for the status once (then only every few seconds) when nothing runs, and shows a finished sweep as such", async () => {
    const server = fakeServer();
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(16));
    expect(el.classList.contains("bcml-widget")).toBe(true);
    expect(within(el).getByText(/Sweep completed: 8 of 8 points/)).toBeTruthy();
    await new Promise((r) => setTimeout(r, 80));
    expect(count(server.calls, "sweep_status")).toBe(1);
    expect(count(server.calls, "sweep_summary")).toBe(1);
    for (const c of server.calls) expect(c.headers["x-bcml-token"]).toBe("tok");
  });

  it("polls while running and refreshes the summary as points stream in", async () => {
    const server = fakeServer({
      status: makeStatus({ running: true, state: "running", completed_points: 1, total_points: 4, percent_complete: 0.25 }),
      summary: makeSummary(1),
    });
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(2));
    expect(within(el).getByRole("progressbar").getAttribute("aria-valuenow")).toBe("25");
    server.state.summary = makeSummary(3);
    server.state.status = makeStatus({ running: true, state: "running", completed_points: 3, total_points: 4, percent_complete: 0.75 });
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(6));
    expect(within(el).getByRole("progressbar").getAttribute("aria-valuenow")).toBe("75");
    server.state.summary = makeSummary(4);
    server.state.status = makeStatus({ state: "completed", completed_points: 4, total_points: 4, percent_complete: 1 });
    await waitFor(() => expect(within(el).getByText(/Sweep completed/)).toBeTruthy());
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(8));
    const polls = count(server.calls, "sweep_status");
    await new Promise((r) => setTimeout(r, 80));
    expect(count(server.calls, "sweep_status")).toBe(polls);
  });

  it("survives a failed poll", async () => {
    const server = fakeServer({
      status: makeStatus({ running: true, state: "running", completed_points: 0, total_points: 4 }),
      summary: makeSummary(0),
    });
    let fail = 0;
    const flaky = async (input: string, init?: RequestInit) => {
      if (input.includes("sweep_status") && fail > 0) {
        fail -= 1;
        throw new TypeError("Failed to fetch");
      }
      return server.fetch(input, init);
    };
    const el = host();
    await act(async () => {
      mounted.push(mountWidget(el, { port: 5012, token: "tok" }, { fetch: flaky, location: page, pollIntervalMs: 15 }));
    });
    await waitFor(() => expect(within(el).getByText(/Running/)).toBeTruthy());
    fail = 1;
    await waitFor(() => expect(within(el).getByText(/Connection problem, retrying/)).toBeTruthy());
    server.state.status = makeStatus({ state: "completed", completed_points: 4, total_points: 4, percent_complete: 1 });
    server.state.summary = makeSummary(4);
    await waitFor(() => expect(within(el).getByText(/Sweep completed/)).toBeTruthy(), { timeout: 2000 });
    expect(within(el).queryByText(/Connection problem/)).toBeNull();
  });

  it("start, 409 error in words, and cancel", async () => {
    const server = fakeServer({ status: makeStatus(), summary: makeSummary(0) });
    const el = host();
    await mount(el, server);
    const start = await within(el).findByRole("button", { name: "Start sweep" });
    await waitFor(() => expect((start as HTMLButtonElement).disabled).toBe(false));
    expect(within(el).getAllByText("No datapoints to show")).toHaveLength(2);
    server.state.status = makeStatus({ running: true, state: "running", total_points: 4 });
    await act(async () => fireEvent.click(start));
    await waitFor(() => expect(count(server.calls, "start_sweep")).toBe(1));
    await waitFor(() => expect((within(el).getByRole("button", { name: "Cancel sweep" }) as HTMLButtonElement).disabled).toBe(false));
    server.state.status = makeStatus({ state: "cancelled", completed_points: 1, total_points: 4, percent_complete: 0.25 });
    await act(async () => fireEvent.click(within(el).getByRole("button", { name: "Cancel sweep" })));
    await waitFor(() => expect(within(el).getByText(/Sweep cancelled/)).toBeTruthy());

    // A conflicting start shows the server's message.
    const original = server.fetch;
    const conflict = async (input: string, init?: RequestInit) =>
      input.includes("start_sweep")
        ? new Response(JSON.stringify({ error: "A sweep is already running." }), { status: 409 })
        : original(input, init);
    const el2 = host();
    await act(async () => {
      mounted.push(mountWidget(el2, { port: 5012, token: "tok" }, { fetch: conflict, location: page, pollIntervalMs: 15 }));
    });
    const start2 = await within(el2).findByRole("button", { name: "Start sweep" });
    await waitFor(() => expect((start2 as HTMLButtonElement).disabled).toBe(false));
    await act(async () => fireEvent.click(start2));
    await waitFor(() => expect(within(el2).getByRole("alert").textContent).toContain("A sweep is already running."));
  });

  it("selecting a point loads details, Venn, charts and the table; filters reset on a new selection", async () => {
    const server = fakeServer();
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(16));
    await act(async () => fireEvent.click(el.querySelector('[data-datapoint-index="1"]')!));
    await waitFor(() => expect(el.querySelector('[data-field="btc"]')).toBeTruthy());
    expect(el.querySelector('[data-field="btc"]')!.textContent).toBe(server.state.summary.data[1].btc!.toFixed(3));
    const regress = await within(el).findByRole("button", { name: /^Regress: 20 instances/ });
    await waitFor(() => expect(within(el).getByText("page 1 of 3")).toBeTruthy());
    await act(async () => fireEvent.click(regress));
    await waitFor(() => {
      const last = server.calls.filter((c) => c.path.endsWith("/instances")).pop()!;
      expect(last.query.get("region")).toBe("regress");
    });
    expect(within(el).getByRole("button", { name: "Clear filter" })).toBeTruthy();
    await act(async () => fireEvent.click(within(el).getByRole("button", { name: "Class 2: 60.0% of incompatible instances (12 of 20)" })));
    await waitFor(() => {
      const last = server.calls.filter((c) => c.path.endsWith("/instances")).pop()!;
      expect(last.query.get("class")).toBe("2");
      expect(last.query.get("region")).toBe("regress");
    });
    await act(async () => fireEvent.click(within(el).getByRole("button", { name: "Next page" })));
    await waitFor(() => {
      const last = server.calls.filter((c) => c.path.endsWith("/instances")).pop()!;
      expect(last.query.get("offset")).toBe("10");
    });
    // New selection: filter cleared.
    await act(async () => fireEvent.keyDown(el.querySelector('[data-datapoint-index="3"]')!, { key: "Enter" }));
    await waitFor(() => {
      const last = server.calls.filter((c) => c.path.endsWith("/instances")).pop()!;
      expect(last.path).toBe("/api/v1/evaluation_data/3/instances");
      expect(last.query.has("region")).toBe(false);
      expect(last.query.get("offset")).toBe("0");
    });
    expect(within(el).queryByRole("button", { name: "Clear filter" })).toBeNull();
  });

  it("lambda_c filter hides points (with tolerance)", async () => {
    const server = fakeServer();
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(16));
    const min = within(el).getByLabelText("Minimum lambda_c");
    await act(async () => fireEvent.change(min, { target: { value: "0.25" } }));
    // 8 points, lambda_c 0, 0, 0, 0, 0.25 ... 0.25: 4 left, in two plots.
    expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(8);
    await act(async () => fireEvent.click(within(el).getByRole("checkbox", { name: "Testing" })));
    expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(4);
  });

  it("two widgets on one page stay independent", async () => {
    const a = fakeServer();
    const b = fakeServer({ status: makeStatus(), summary: makeSummary(2) });
    const elA = host();
    const elB = host();
    await mount(elA, a, 5001, "tokA");
    await mount(elB, b, 5002, "tokB");
    await waitFor(() => expect(elA.querySelectorAll("[data-datapoint-index]").length).toBe(16));
    await waitFor(() => expect(elB.querySelectorAll("[data-datapoint-index]").length).toBe(4));
    expect(a.calls.every((c) => c.url.startsWith("http://127.0.0.1:5001/") && c.headers["x-bcml-token"] === "tokA")).toBe(true);
    expect(b.calls.every((c) => c.url.startsWith("http://127.0.0.1:5002/") && c.headers["x-bcml-token"] === "tokB")).toBe(true);
    await act(async () => fireEvent.click(elA.querySelector('[data-datapoint-index="1"]')!));
    await waitFor(() => expect(elA.querySelector('[data-field="btc"]')).toBeTruthy());
    expect(elB.querySelector('[data-field="btc"]')).toBeNull();
    await act(async () => fireEvent.click(within(elB).getByRole("checkbox", { name: "Training" })));
    expect((within(elA).getByRole("checkbox", { name: "Training" }) as HTMLInputElement).checked).toBe(true);
    // No duplicate ids across the two widgets.
    const ids = [...document.querySelectorAll("[id]")].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    // Labels point at their own widget's inputs.
    const minA = within(elA).getByLabelText("Minimum lambda_c");
    expect(elA.contains(minA)).toBe(true);
  });

  it("handles a sweep with a single point and an error-free datapoint", async () => {
    const server = fakeServer({ summary: makeSummary(1) });
    server.state.evaluations.set(0, {
      ...(await import("./fixtures")).makeEvaluation(0),
      error_counts: { h1: 0, h2: 0 },
      regions: { progress: 0, common: 0, regress: 0 },
      h2_incompatible_count_by_class: [],
      incompatible_total: 0,
    });
    server.state.instances = () => ({ total: 0, offset: 0, limit: 10, items: [] });
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(2));
    await act(async () => fireEvent.click(el.querySelector('[data-datapoint-index="0"]')!));
    await waitFor(() => expect(within(el).getByText(/Neither h1 nor h2 makes an error/)).toBeTruthy());
    await waitFor(() => expect(within(el).getByText("Neither model makes an error on this dataset.")).toBeTruthy());
  });

  it("shows a clear message when mounted on a missing element", () => {
    expect(() => mountWidget(null as unknown as HTMLElement, {})).toThrow(/element/);
  });

  it("downloads the table's CSV under its filter and sort, the token in a header", async () => {
    const server = fakeServer();
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(16));
    await act(async () => fireEvent.click(el.querySelector('[data-datapoint-index="5"]')!));
    const regress = await within(el).findByRole("button", { name: /^Regress: 20 instances/ });
    await act(async () => fireEvent.click(regress));
    await act(async () => fireEvent.click(within(el).getByRole("button", { name: /^Ground truth/ })));
    const saved: { href: string; download: string }[] = [];
    Object.assign(URL, { createObjectURL: () => "blob:http://127.0.0.1/csv-1", revokeObjectURL: () => {} });
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      saved.push({ href: this.href, download: this.download });
    });
    await act(async () => fireEvent.click(within(el).getByRole("button", { name: "Download CSV" })));
    await waitFor(() => expect(saved).toHaveLength(1));
    const call = server.calls.find((c) => c.path.endsWith("/instances.csv"))!;
    expect(call.path).toBe("/api/v1/evaluation_data/5/instances.csv");
    expect(Object.fromEntries(call.query)).toEqual({ region: "regress", sort: "ground_truth" });
    expect(call.headers["x-bcml-token"]).toBe("tok");
    expect(call.url).not.toContain("tok");
    expect(saved[0]).toEqual({ href: "blob:http://127.0.0.1/csv-1", download: "bcml-datapoint-5-instances-regress.csv" });
  });

  it("asks for no image when the server has no image callback, and says so", async () => {
    const server = fakeServer({ summary: makeSummary(8, { instance_images: false }) });
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(16));
    await act(async () => fireEvent.click(el.querySelector('[data-datapoint-index="1"]')!));
    await waitFor(() => expect(within(el).getByText("page 1 of 3")).toBeTruthy());
    expect(within(el).getByRole("note").textContent).toContain("without an image callback");
    expect(el.querySelectorAll("img")).toHaveLength(0);
    expect(el.innerHTML).not.toContain("instance_data");
    expect(server.calls.some((c) => c.path.includes("instance_data"))).toBe(false);
  });

  it("reads an older folder's summary (no families, no flags) from the seed's booleans", async () => {
    const server = fakeServer({ summary: makeLegacySummary(8) });
    const el = host();
    await mount(el, server);
    await waitFor(() => expect(el.querySelectorAll("[data-datapoint-index]").length).toBe(16));
    for (const name of ["New Error", "Strict Imitation"]) {
      expect((within(el).getByRole("checkbox", { name }) as HTMLInputElement).checked).toBe(true);
    }
    await act(async () => fireEvent.click(within(el).getByRole("checkbox", { name: "New Error" })));
    // Strict Imitation only: indices 2, 3, 6, 7, in two plots.
    const shown = new Set([...el.querySelectorAll("[data-datapoint-index]")].map((e) => e.getAttribute("data-datapoint-index")));
    expect([...shown].sort()).toEqual(["2", "3", "6", "7"]);
    await act(async () => fireEvent.click(el.querySelector('[data-datapoint-index="3"]')!));
    await waitFor(() => expect(el.querySelector('[data-field="family"]')?.textContent).toBe("Strict Imitation"));
    expect(el.querySelector('[data-field="dataset"]')?.textContent).toBe("testing");
    // Images are assumed when the summary does not say.
    await waitFor(() => expect(el.querySelectorAll("img").length).toBeGreaterThan(0));
  });

  it("shows the executor and the running jobs in the header", async () => {
    const server = fakeServer({
      status: makeStatus({
        running: true,
        state: "running",
        completed_points: 0,
        total_points: 8,
        executor: "vectorized",
        executor_note: null,
        running_jobs: [
          { lambda_c: 0, family: "new-error" },
          { lambda_c: 0, family: "strict-imitation" },
        ],
      }),
      summary: makeSummary(0),
    });
    const el = host();
    await mount(el, server);
    await waitFor(() =>
      expect(el.querySelector('[data-field="executor"]')?.textContent).toBe(
        "Executor: vectorized · training 2 jobs: New Error at lambda_c 0; Strict Imitation at lambda_c 0",
      ),
    );
  });
});
