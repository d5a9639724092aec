// The one typed client of the widget REST API (docs/api.md).
import type {
  CancelSweepResponse,
  EvaluationData,
  InstancePage,
  InstanceQuery,
  StartSweepResponse,
  SweepStatus,
  SweepSummary,
  WidgetConfig,
} from "./types";

export const TOKEN_HEADER = "X-BCML-Token";

/** The parts of `window.location` the base URL depends on. */
export interface PageLocation {
  protocol: string;
  hostname: string;
}

/**
 * Base URL of the API server (without `/api/v1`).
 * - azureml / databricks, or any non-local environment with a base_url: base_url.
 * - local or unknown: same protocol and hostname as the page, the server's port;
 *   pages without a host (about:blank, file:, data:) use http://127.0.0.1:port.
 */
export function computeBaseUrl(config: WidgetConfig, page: PageLocation): string {
  const env = (config.environment_type ?? "local").toString().toLowerCase();
  const baseUrl = (config.base_url ?? "").trim();
  // azureml / databricks always give a base_url; any other non-local
  // environment that gives one is treated the same way.
  if (env !== "local" && baseUrl !== "") {
    return baseUrl.replace(/\/+$/, "");
  }
  const port = config.port;
  const portPart = port === null || port === undefined || port === 0 ? "" : `:${port}`;
  const isHttp = page.protocol === "http:" || page.protocol === "https:";
  if (!isHttp || !page.hostname) {
    return `http://127.0.0.1${portPart}`;
  }
  return `${page.protocol}//${page.hostname}${portPart}`;
}

/** An API failure with a message meant for people. */
export class ApiError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  fetch?: FetchLike;
}

function describeNetworkError(err: unknown): string {
  if (err instanceof Error && err.message) return err.message;
  return String(err);
}

export class ApiClient {
  readonly baseUrl: string;
  readonly token: string;
  private readonly fetchImpl: FetchLike;

  constructor(config: WidgetConfig, page: PageLocation, options: ApiClientOptions = {}) {
    this.baseUrl = computeBaseUrl(config, page);
    this.token = config.token ?? "";
    // Call through globalThis so a browser's fetch keeps its `this`.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  url(path: string, params?: Record<string, string | number | undefined>): string {
    const query = params
      ? Object.entries(params)
          .filter(([, v]) => v !== undefined && v !== "")
          .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
          .join("&")
      : "";
    return `${this.baseUrl}/api/v1/${path}${query ? `?${query}` : ""}`;
  }

  /** Image URLs carry the token as a query parameter (an <img> cannot send headers). */
  instanceImageUrl(instanceId: number): string {
    return this.url(`instance_data/${instanceId}`, { token: this.token });
  }

  /** Sends a request with the token header; a non-2xx answer becomes an ApiError with the server's message. */
  private async send(
    method: "GET" | "POST",
    path: string,
    params: Record<string, string | number | undefined> | undefined,
    accept: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    const url = this.url(path, params);
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        method,
        headers: { [TOKEN_HEADER]: this.token, Accept: accept },
        cache: "no-store",
        signal,
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new ApiError(
        `Cannot reach the widget server at ${this.baseUrl} (${describeNetworkError(err)}).`,
        0,
      );
    }
    if (!response.ok) {
      const body = parseJson(await response.text());
      const message =
        body && typeof body === "object" && typeof (body as { error?: unknown }).error === "string"
          ? (body as { error: string }).error
          : `The widget server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`;
      throw new ApiError(message, response.status);
    }
    return response;
  }

  private async request<T>(
    method: "GET" | "POST",
    path: string,
    params?: Record<string, string | number | undefined>,
    signal?: AbortSignal,
  ): Promise<T> {
    const response = await this.send(method, path, params, "application/json", signal);
    const body = parseJson(await response.text());
    if (body === undefined) {
      throw new ApiError(`The widget server sent an answer that is not JSON (${path}).`, response.status);
    }
    return body as T;
  }

  getStatus(signal?: AbortSignal): Promise<SweepStatus> {
    return this.request("GET", "sweep_status", undefined, signal);
  }

  getSummary(signal?: AbortSignal): Promise<SweepSummary> {
    return this.request("GET", "sweep_summary", undefined, signal);
  }

  startSweep(): Promise<StartSweepResponse> {
    return this.request("POST", "start_sweep");
  }

  cancelSweep(): Promise<CancelSweepResponse> {
    return this.request("POST", "cancel_sweep");
  }

  getEvaluation(datapointIndex: number, signal?: AbortSignal): Promise<EvaluationData> {
    return this.request("GET", `evaluation_data/${datapointIndex}`, undefined, signal);
  }

  getInstances(datapointIndex: number, query: InstanceQuery = {}, signal?: AbortSignal): Promise<InstancePage> {
    return this.request(
      "GET",
      `evaluation_data/${datapointIndex}/instances`,
      { ...filterParams(query), offset: query.offset, limit: query.limit },
      signal,
    );
  }

  /**
   * The instance list of a datapoint under a filter and sort, every row, as
   * CSV (`instances.csv`). The token goes in the header, never in the URL.
   */
  async getInstancesCsv(datapointIndex: number, query: InstanceQuery = {}, signal?: AbortSignal): Promise<Blob> {
    const response = await this.send(
      "GET",
      `evaluation_data/${datapointIndex}/instances.csv`,
      filterParams(query),
      "text/csv",
      signal,
    );
    const blob = await response.blob();
    return blob.type ? blob : new Blob([blob], { type: "text/csv" });
  }
}

/** Query parameters of an instance filter and sort (no paging). */
function filterParams(query: InstanceQuery): Record<string, string | number | undefined> {
  return {
    region: query.region,
    model: query.model,
    class: query.class,
    sort: query.sort ? `${query.sort.descending ? "-" : ""}${query.sort.key}` : undefined,
  };
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function isAbortError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { name?: string }).name === "AbortError";
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
