// Types of the widget REST API (docs/api.md) and of the mounting config.

export type EnvironmentType = "local" | "azureml" | "databricks" | string;

/** The JSON config the notebook HTML passes to mountWidget. */
export interface WidgetConfig {
  environment_type?: EnvironmentType | null;
  base_url?: string | null;
  port?: number | null;
  token?: string | null;
}

export type SweepState = "idle" | "running" | "completed" | "failed" | "cancelled";
/** A loss family's name ("new-error", "strict-imitation", or any other the sweep lists). */
export type LossFamily = string;

/** One loss family of the sweep, as `sweep_summary.families` lists it. */
export interface FamilyInfo {
  name: LossFamily;
  label: string;
}

/** A training job that runs now (`sweep_status.running_jobs`). */
export interface RunningJob {
  lambda_c: number;
  family: LossFamily;
}

export interface SweepStatus {
  running: boolean;
  state: SweepState;
  percent_complete: number;
  lambda_c: number | null;
  loss_family: LossFamily | null;
  loss: number | null;
  completed_points: number;
  total_points: number;
  eta_seconds: number | null;
  error: string | null;
  /** The executor that trains ("vectorized", "sequential", ...); older servers omit it. */
  executor?: string | null;
  /** Why the executor differs from the one asked for (a fallback), or null. */
  executor_note?: string | null;
  /** The jobs that train now. */
  running_jobs?: RunningJob[] | null;
  /** Names one run of the sweep (new at every start); null before any sweep, and older servers omit it. */
  sweep_id?: string | null;
}

export interface DataPoint {
  datapoint_index: number;
  lambda_c: number;
  /** The loss family's name; older folders only have the seed's booleans. */
  family?: LossFamily;
  /** "training" or "testing"; older folders only have the booleans. */
  dataset?: Dataset;
  training: boolean;
  testing: boolean;
  /** The seed's family booleans (`"new-error"`, `"strict-imitation"`), kept by every record. */
  "new-error"?: boolean;
  "strict-imitation"?: boolean;
  /** Scores are null when they could not be computed (a metric that gave no finite number). */
  performance: number | null;
  h1_performance: number | null;
  btc: number | null;
  bec: number | null;
  nfr: number | null;
  pfr: number | null;
  dataset_size: number;
}

export interface SweepSummary {
  h1_performance: number | null;
  performance_metric: string;
  data: DataPoint[];
  /** The sweep's loss families in order; missing in older folders. */
  families?: FamilyInfo[] | null;
  /** False when the server has no image callback (`serve FOLDER`); missing means true. */
  instance_images?: boolean | null;
}

export interface ClassAccuracy {
  class: number;
  /** Null when it could not be computed. */
  accuracy: number | null;
  count: number;
  error_count: number;
}

export interface ClassCount {
  class: number;
  count: number;
}

export interface EvaluationData extends DataPoint {
  h2_performance: number | null;
  performance_metric: string;
  error_counts: { h1: number; h2: number };
  regions: { progress: number; common: number; regress: number };
  sorted_classes: number[];
  h1_accuracy_by_class: ClassAccuracy[];
  h2_accuracy_by_class: ClassAccuracy[];
  h2_incompatible_count_by_class: ClassCount[];
  incompatible_total: number;
}

export type Region = "progress" | "common" | "regress";
export type ModelName = "h1" | "h2";
export type SortKey = "instance_id" | "h1_prediction" | "h2_prediction" | "ground_truth";

export interface SortSpec {
  key: SortKey;
  descending: boolean;
}

/** Which instances the table shows; every field optional (none: all errors). */
export interface InstanceFilter {
  region?: Region;
  model?: ModelName;
  class?: number;
}

export interface InstanceQuery extends InstanceFilter {
  sort?: SortSpec;
  offset?: number;
  limit?: number;
}

export interface InstanceItem {
  instance_id: number;
  metadata: string;
  /** null where the server has no prediction for the instance. */
  h1_prediction: number | null;
  h2_prediction: number | null;
  ground_truth: number | null;
  region: Region;
}

export interface InstancePage {
  total: number;
  offset: number;
  limit: number;
  items: InstanceItem[];
}

export interface StartSweepResponse {
  started: boolean;
  status: SweepStatus;
}

export interface CancelSweepResponse {
  cancelled: boolean;
  status: SweepStatus;
}

export type Dataset = "training" | "testing";
export type Metric = "btc" | "bec";
