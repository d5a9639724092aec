import { describe, expect, it } from "vitest";
import { ApiClient, ApiError, computeBaseUrl, TOKEN_HEADER } from "../src/api";
import { fakeFetch, makeStatus } from "./fixtures";

const page = { protocol: "http:", hostname: "localhost" };

describe("computeBaseUrl", () => {
  it("local: same protocol and hostname as the page, the server's port", () => {
    expect(computeBaseUrl({ environment_type: "local", port: 5012 }, page)).toBe("http://localhost:5012");
    expect(computeBaseUrl({ environment_type: "local", port: 5012 }, { protocol: "https:", hostname: "example.org" })).toBe(
      "https://example.org:5012",
    );
  });

  it("local ignores base_url", () => {
    expect(computeBaseUrl({ environment_type: "local", base_url: "http://elsewhere/", port: 5001 }, page)).toBe(
      "http://localhost:5001",
    );
  });

  it("unknown or missing environment types behave like local", () => {
    expect(computeBaseUrl({ environment_type: "mystery", port: 5003 }, page)).toBe("http://localhost:5003");
    expect(computeBaseUrl({ port: 5004 }, page)).toBe("http://localhost:5004");
  });

  it("azureml and databricks use base_url without a trailing slash", () => {
    expect(
      computeBaseUrl({ environment_type: "azureml", base_url: "https://ml.azure.example/proxy/5012/", port: 5012 }, page),
    ).toBe("https://ml.azure.example/proxy/5012");
    expect(
      computeBaseUrl({ environment_type: "databricks", base_url: "https://db.example/driver-proxy/o/1/5012", port: 5012 }, page),
    ).toBe("https://db.example/driver-proxy/o/1/5012");
  });

  it("any other environment with a base_url uses it", () => {
    expect(computeBaseUrl({ environment_type: "vscode", base_url: "http://host:9/x//", port: 1 }, page)).toBe("http://host:9/x");
  });

  it("pages without a host (about:blank, file:, data:) use 127.0.0.1", () => {
    for (const protocol of ["about:", "file:", "data:"]) {
      expect(computeBaseUrl({ environment_type: "local", port: 5012 }, { protocol, hostname: "" })).toBe(
        "http://127.0.0.1:5012",
      );
    }
  });
});

describe("ApiClient", () => {
  it("sends the token header on every call", async () => {
    const { fetch, calls } = fakeFetch((call) => {
      if (call.path.endsWith("sweep_status")) return { body: makeStatus() };
      if (call.path.endsWith("sweep_summary")) return { body: { h1_performance: null, performance_metric: "model_accuracy", data: [] } };
      if (call.path.endsWith("start_sweep")) return { status: 202, body: { started: true, status: makeStatus() } };
      if (call.path.endsWith("cancel_sweep")) return { body: { cancelled: false, status: makeStatus() } };
      return { body: { total: 0, offset: 0, limit: 10, items: [] } };
    });
    const api = new ApiClient({ environment_type: "local", port: 5012, token: "s3cret" }, page, { fetch });
    await api.getStatus();
    await api.getSummary();
    await api.startSweep();
    await api.cancelSweep();
    await api.getInstances(3);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      "GET /api/v1/sweep_status",
      "GET /api/v1/sweep_summary",
      "POST /api/v1/start_sweep",
      "POST /api/v1/cancel_sweep",
      "GET /api/v1/evaluation_data/3/instances",
    ]);
    for (const c of calls) expect(c.headers[TOKEN_HEADER.toLowerCase()]).toBe("s3cret");
    expect(calls[0].url.startsWith("http://localhost:5012/api/v1/")).toBe(true);
  });

  it("builds the instances query (filter, sort, paging)", async () => {
    const { fetch, calls } = fakeFetch(() => ({ body: { total: 0, offset: 20, limit: 10, items: [] } }));
    const api = new ApiClient({ port: 1, token: "t" }, page, { fetch });
    await api.getInstances(7, {
      region: "regress",
      class: 3,
      sort: { key: "h2_prediction", descending: true },
      offset: 20,
      limit: 10,
    });
    const q = calls[0].query;
    expect(q.get("region")).toBe("regress");
    expect(q.get("class")).toBe("3");
    expect(q.get("sort")).toBe("-h2_prediction");
    expect(q.get("offset")).toBe("20");
    expect(q.get("limit")).toBe("10");
    expect(q.has("model")).toBe(false);
  });

  it("surfaces the JSON error message", async () => {
    const { fetch } = fakeFetch(() => ({ status: 409, body: { error: "A sweep is already running." } }));
    const api = new ApiClient({ port: 1, token: "t" }, page, { fetch });
    const err = await api.startSweep().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toBe("A sweep is already running.");
    expect(err.status).toBe(409);
  });

  it("describes a non-JSON error and a network failure in words", async () => {
    const api1 = new ApiClient({ port: 1, token: "t" }, page, {
      fetch: async () => new Response("<html>oops</html>", { status: 502, statusText: "Bad Gateway" }),
    });
    await expect(api1.getStatus()).rejects.toThrow("The widget server answered 502 Bad Gateway.");
    const api2 = new ApiClient({ port: 5012, token: "t" }, page, {
      fetch: async () => {
        throw new TypeError("Failed to fetch");
      },
    });
    await expect(api2.getStatus()).rejects.toThrow(/Cannot reach the widget server at http:\/\/localhost:5012 \(Failed to fetch\)/);
  });

  it("puts the token in image URLs as a query parameter", () => {
    const api = new ApiClient({ environment_type: "azureml", base_url: "https://x.example/p/", token: "a b&c" }, page, {
      fetch: async () => new Response("{}"),
    });
    expect(api.instanceImageUrl(17)).toBe("https://x.example/p/api/v1/instance_data/17?token=a%20b%26c");
  });

  it("fetches the CSV with the token in the header, the filter and sort in the query, no paging", async () => {
    const { fetch, calls } = fakeFetch(() => ({ body: "instance_id,h1_prediction\n3,1\n", contentType: "text/csv; charset=utf-8" }));
    const api = new ApiClient({ environment_type: "local", port: 5012, token: "s3cret" }, page, { fetch });
    const blob = await api.getInstancesCsv(7, { region: "regress", class: 3, model: "h2", sort: { key: "ground_truth", descending: true } });
    expect(await blob.text()).toBe("instance_id,h1_prediction\n3,1\n");
    expect(blob.type).toContain("text/csv");
    const call = calls[0];
    expect(call.path).toBe("/api/v1/evaluation_data/7/instances.csv");
    expect(call.headers[TOKEN_HEADER.toLowerCase()]).toBe("s3cret");
    expect(call.headers.accept).toBe("text/csv");
    expect(call.url).not.toContain("s3cret");
    expect(call.query.has("token")).toBe(false);
    expect(Object.fromEntries(call.query)).toEqual({ region: "regress", model: "h2", class: "3", sort: "-ground_truth" });
  });

  it("reports a failed CSV download with the server's message", async () => {
    const { fetch } = fakeFetch(() => ({ status: 404, body: { error: "No evaluation data for datapoint 9." } }));
    const api = new ApiClient({ port: 1, token: "t" }, page, { fetch });
    await expect(api.getInstancesCsv(9)).rejects.toThrow("No evaluation data for datapoint 9.");
  });
});
