// The mounted widget against a server that fails, refuses it, or runs a sweep someone else started.
import { afterEach, describe, expect, it } from "vitest";
import { act, fireEvent, waitFor, within } from "@testing-library/react";
import { mountWidget, type MountedWidget } from "../src/index";
import { summaryKeyOf } from "../src/sync";
import { fakeServer, makeStatus, makeSummary, type Call } from "./fixtures";

const page = { protocol: "http:", hostname: "127.0.0.1" };
const mounted: MountedWidget[] = [];

afterEach(() => {
  act(() => {
    for (const w of mounted.splice(0)) w.unmount();
  });
});

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

async function mount(fetch: Fetch, idlePollIntervalMs = 20): Promise<HTMLElement> {
  const el = document.createElement("div");
  document.body.appendChild(el);
  await act(async () => {
    mounted.push(mountWidget(el, { port: 5012, token: "tok" }, { fetch, location: page, pollIntervalMs: 15, idlePollIntervalMs }));
  });
  return el;
}

const count = (calls: Call[], suffix: string) => calls.filter((c) => c.path.endsWith(suffix)).length;
const points = (el: HTMLElement) => el.querySelectorAll('[data-plot="btc"] [data-datapoint-index]').length;
const sleep = (ms: number) => act(() => new Promise<void>((r) => setTimeout(r, ms)));
const json = (body: unknown, status: number) => new Response(JSON.stringify(body), { status });

describe("polling the widget server", () => {
  it("retries the summary when it fails after the sweep has ended (not a 'retrying' that never retries)", async () => {
    const server = fakeServer();
    let failures = 1;
    const flaky: Fetch = async (input, init) => {
      if (input.includes("sweep_summary") && failures > 0) {
        failures -= 1;
        return json({ error: "Datapoint 3 is stored but its files cannot be read." }, 500);
      }
      return server.fetch(input, init);
    };
    // The idle interval is long: the retry must come from the failure, not from idle polling.
    const el = await mount(flaky, 60_000);
    await waitFor(() => expect(points(el)).toBe(8), { timeout: 3000 });
    expect(within(el).getByText(/Sweep completed: 8 of 8 points/)).toBeTruthy();
    expect(within(el).queryByText(/Connection problem/)).toBeNull();
  });

  it("never lets an older summary replace a newer one", async () => {
    // The first summary (1 point) answers late, after the poll that saw 3 points.
    const server = fakeServer({
      status: makeStatus({ running: true, state: "running", completed_points: 1, total_points: 4 }),
      summary: makeSummary(1),
    });
    let first = true;
    const slow: Fetch = async (input, init) => {
      if (input.includes("sweep_summary") && first) {
        first = false;
        const answer = await server.fetch(input, init);
        server.state.summary = makeSummary(4);
        server.state.status = makeStatus({ state: "completed", completed_points: 4, total_points: 4, percent_complete: 1 });
        await new Promise((r) => setTimeout(r, 120));
        return answer;
      }
      return server.fetch(input, init);
    };
    const el = await mount(slow, 60_000);
    await waitFor(() => expect(within(el).getByText(/Sweep completed: 4 of 4 points/)).toBeTruthy(), { timeout: 3000 });
    await waitFor(() => expect(points(el)).toBe(4));
    await sleep(200);
    expect(points(el)).toBe(4);
  });

  it("shows a sweep started elsewhere (Python, another page) and forgets the earlier selection", async () => {
    const server = fakeServer();
    const el = await mount(server.fetch);
    await waitFor(() => expect(points(el)).toBe(8));
    await act(async () => fireEvent.click(el.querySelector('[data-datapoint-index="1"]')!));
    await waitFor(() => expect(el.querySelector('[data-field="btc"]')).toBeTruthy());
    // `analysis.sweep_manager.start_sweep()` in the notebook: the server runs a new sweep.
    server.state.summary = makeSummary(2);
    server.state.status = makeStatus({ running: true, state: "running", completed_points: 2, total_points: 8, percent_complete: 0.25 });
    await waitFor(() => expect(within(el).getByText(/Running: 2 of 8 points/)).toBeTruthy(), { timeout: 3000 });
    await waitFor(() => expect(points(el)).toBe(2));
    expect(el.querySelector('[data-field="btc"]')).toBeNull();
    expect(within(el).getByText(/Select a point in a scatter plot/)).toBeTruthy();
    server.state.summary = makeSummary(8);
    server.state.status = makeStatus({ state: "completed", completed_points: 8, total_points: 8, percent_complete: 1, loss: 0.2 });
    await waitFor(() => expect(points(el)).toBe(8), { timeout: 3000 });
    expect(within(el).getByText(/Sweep completed: 8 of 8 points/)).toBeTruthy();
  });

  it("sees a sweep that started and ended between two polls (its last loss differs)", async () => {
    const server = fakeServer({
      status: makeStatus({ state: "completed", completed_points: 8, total_points: 8, percent_complete: 1, loss: 0.31 }),
    });
    const el = await mount(server.fetch);
    await waitFor(() => expect(points(el)).toBe(8));
    const before = count(server.calls, "sweep_summary");
    server.state.summary = makeSummary(8, { data: makeSummary(8).data.map((p) => ({ ...p, btc: 0.5 })) });
    server.state.status = makeStatus({ state: "completed", completed_points: 8, total_points: 8, percent_complete: 1, loss: 0.27 });
    await waitFor(() => expect(count(server.calls, "sweep_summary")).toBe(before + 1), { timeout: 3000 });
    await waitFor(() => expect(el.querySelector('[data-datapoint-index="0"]')!.getAttribute("aria-label")).toContain("BTC 0.500"));
  });

  it("sees a sweep that started and ended between two polls with the very same status but its sweep_id", async () => {
    const done = { state: "completed" as const, completed_points: 8, total_points: 8, percent_complete: 1, loss: 0.31 };
    const server = fakeServer({ status: makeStatus({ ...done, sweep_id: "first" }) });
    const el = await mount(server.fetch);
    await waitFor(() => expect(points(el)).toBe(8));
    const before = count(server.calls, "sweep_summary");
    server.state.summary = makeSummary(8, { data: makeSummary(8).data.map((p) => ({ ...p, btc: 0.5 })) });
    server.state.status = makeStatus({ ...done, sweep_id: "second" });
    await waitFor(() => expect(count(server.calls, "sweep_summary")).toBe(before + 1), { timeout: 3000 });
    await waitFor(() => expect(el.querySelector('[data-datapoint-index="0"]')!.getAttribute("aria-label")).toContain("BTC 0.500"));
    await sleep(100);
    expect(count(server.calls, "sweep_summary")).toBe(before + 1);
  });

  it("asks for the summary again only when the status says something changed", async () => {
    const server = fakeServer();
    const el = await mount(server.fetch);
    await waitFor(() => expect(points(el)).toBe(8));
    await sleep(200);
    expect(count(server.calls, "sweep_status")).toBeGreaterThan(3);
    expect(count(server.calls, "sweep_summary")).toBe(1);
  });

  it("stops polling when the server refuses the token, and says why", async () => {
    let polls = 0;
    const refusing: Fetch = async (input) => {
      if (input.includes("sweep_status")) polls += 1;
      return json({ error: "Missing or wrong token." }, 403);
    };
    const el = await mount(refusing);
    await waitFor(() => expect(within(el).getByRole("alert").textContent).toContain("Missing or wrong token."));
    const alert = within(el).getByRole("alert").textContent ?? "";
    expect(alert).toMatch(/Updates stopped/);
    expect(within(el).getByRole("status").textContent).toBe("Not connected to the widget server.");
    expect(within(el).queryByText(/retrying/)).toBeNull();
    await sleep(300);
    expect(polls).toBe(1);
  });

  it("keeps retrying (with backoff) while the server cannot be reached, and recovers", async () => {
    const server = fakeServer({
      status: makeStatus({ running: true, state: "running", completed_points: 1, total_points: 8 }),
      summary: makeSummary(1),
    });
    let down = false;
    const unreliable: Fetch = async (input, init) => {
      if (down) throw new TypeError("Failed to fetch");
      return server.fetch(input, init);
    };
    const el = await mount(unreliable);
    await waitFor(() => expect(points(el)).toBe(1));
    down = true;
    await waitFor(() => expect(within(el).getByText(/Connection problem, retrying: Cannot reach/)).toBeTruthy());
    server.state.status = makeStatus({ state: "completed", completed_points: 8, total_points: 8, percent_complete: 1 });
    server.state.summary = makeSummary(8);
    down = false;
    await waitFor(() => expect(points(el)).toBe(8), { timeout: 3000 });
    expect(within(el).queryByText(/Connection problem/)).toBeNull();
  });
});

describe("loading a datapoint", () => {
  it("offers to try again after its evaluation or its instances failed to load", async () => {
    const server = fakeServer();
    const fail = { evaluation: 1, instances: 1 };
    const flaky: Fetch = async (input, init) => {
      if (/evaluation_data\/1$/.test(input.split("?")[0]) && fail.evaluation > 0) {
        fail.evaluation -= 1;
        throw new TypeError("Failed to fetch");
      }
      if (input.includes("evaluation_data/1/instances") && fail.instances > 0) {
        fail.instances -= 1;
        return json({ error: "get_instance_metadata failed (ValueError)." }, 500);
      }
      return server.fetch(input, init);
    };
    const el = await mount(flaky, 60_000);
    await waitFor(() => expect(points(el)).toBe(8));
    await act(async () => fireEvent.click(el.querySelector('[data-datapoint-index="1"]')!));
    await waitFor(() => expect(within(el).getByText(/Could not load this datapoint's evaluation: Cannot reach/)).toBeTruthy());
    // Clicking the same point again does nothing (it is selected): the message offers the retry.
    await act(async () => fireEvent.click(within(el).getByRole("button", { name: "Try again" })));
    await waitFor(() => expect(within(el).getByText(/Could not load instances: get_instance_metadata failed/)).toBeTruthy());
    expect(within(el).getByRole("button", { name: /^Regress: 20 instances/ })).toBeTruthy();
    await act(async () => fireEvent.click(within(el).getByRole("button", { name: "Try again" })));
    await waitFor(() => expect(within(el).getByText("page 1 of 3")).toBeTruthy());
    expect(within(el).queryByText(/Could not load/)).toBeNull();
  });
});

describe("summaryKeyOf", () => {
  it("changes with points and state, and with the last loss only while nothing runs", () => {
    const running = makeStatus({ running: true, state: "running", completed_points: 2, total_points: 8 });
    expect(summaryKeyOf({ ...running, loss: 0.5 })).toBe(summaryKeyOf({ ...running, loss: 0.4 }));
    const done = makeStatus({ state: "completed", completed_points: 8, total_points: 8 });
    expect(summaryKeyOf({ ...done, loss: 0.5 })).not.toBe(summaryKeyOf({ ...done, loss: 0.4 }));
  });

  it("follows the sweep_id where the server sends one, and not the loss", () => {
    const done = makeStatus({ state: "completed", completed_points: 8, total_points: 8, sweep_id: "a" });
    expect(summaryKeyOf({ ...done, loss: 0.5 })).toBe(summaryKeyOf({ ...done, loss: 0.4 }));
    expect(summaryKeyOf(done)).not.toBe(summaryKeyOf({ ...done, sweep_id: "b" }));
    const running = makeStatus({ running: true, state: "running", completed_points: 2, total_points: 8 });
    expect(summaryKeyOf({ ...running, sweep_id: "a" })).not.toBe(summaryKeyOf({ ...running, sweep_id: "b" }));
  });
});
