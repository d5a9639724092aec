"""The sweep engine: jobs as data, executors, events and the runner.

::

    SweepConfig (checked, fingerprinted) -> prepare(): h1 once, immutable context
      -> jobs (plain data) -> an Executor (sequential | vectorized | yours)
      -> events on one queue -> SweepRunner persists each result as it arrives
      -> SweepRecords (points, summary, records and views read back)

:class:`~backwardcompatibilityml.sweep_management.SweepManager` is the
seed's façade over these parts.
"""

from .config import SweepConfig, lambda_c_grid
from .events import BatchDone, EventQueue, ExecutorNote, JobFailed, JobFinished, JobStarted, StepDone
from .executors import Executor, SequentialExecutor, resolve_executor
from .families import NEW_ERROR, STRICT_IMITATION, LossFamily
from .jobs import H2Outputs, JobResult, TrainingJob, plan_jobs

__all__ = [
    "SweepConfig", "lambda_c_grid", "Executor", "SequentialExecutor", "resolve_executor", "LossFamily",
    "NEW_ERROR", "STRICT_IMITATION", "TrainingJob", "JobResult", "H2Outputs", "plan_jobs", "EventQueue",
    "JobStarted", "StepDone", "BatchDone", "JobFinished", "JobFailed", "ExecutorNote",
]
