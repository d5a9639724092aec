"""What executors report while they run, on the thread-safe sink the runner consumes.

An executor in the runner's thread, in a stacked model, in threads of its
own or in other processes reports the same way: it puts these events on the
sink its ``run`` is given (``sink.put(event)``, from any thread). The runner
is the only consumer: it handles each event as it is put, one at a time,
persisting each :class:`JobFinished` as it arrives and updating the status
from the others. :class:`EventQueue` is a plain FIFO for executors that
collect events from their workers (processes, a cluster) before putting
them on the sink.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Optional, Protocol, Tuple, Union

from .jobs import JobResult, TrainingJob

__all__ = [
    "JobStarted", "StepDone", "BatchDone", "JobFinished", "JobFailed", "ExecutorNote",
    "Event", "EventSink", "EventQueue",
]


@dataclass(frozen=True)
class JobStarted:
    """These jobs started training (several at once in a stacked model)."""

    jobs: Tuple[TrainingJob, ...]


@dataclass(frozen=True)
class StepDone:
    """One optimizer step of these jobs, with each job's loss."""

    jobs: Tuple[TrainingJob, ...]
    losses: Tuple[float, ...]


@dataclass(frozen=True)
class BatchDone:
    """One evaluation batch of these jobs."""

    jobs: Tuple[TrainingJob, ...]


@dataclass(frozen=True)
class JobFinished:
    """A job is done; its result is ready to be stored."""

    result: JobResult


@dataclass(frozen=True)
class JobFailed:
    """A job failed; ``error`` is ``"Type: message"``, ``traceback`` the formatted traceback."""

    job: TrainingJob
    error: str
    traceback: str


@dataclass(frozen=True)
class ExecutorNote:
    """Something the user should know about how the jobs run (a fallback and its reason)."""

    message: str
    executor: Optional[str] = None


Event = Union[JobStarted, StepDone, BatchDone, JobFinished, JobFailed, ExecutorNote]


class EventSink(Protocol):
    """Where executors put their events."""

    def put(self, event: Event) -> None: ...


class EventQueue:
    """An unbounded thread-safe FIFO of events, for an executor that gathers its workers' events."""

    def __init__(self) -> None:
        self._queue: "queue.SimpleQueue[Event]" = queue.SimpleQueue()

    def put(self, event: Event) -> None:
        """Add an event (any thread)."""
        self._queue.put(event)

    def get(self, timeout: Optional[float] = None) -> Event:
        """The next event; raises :class:`queue.Empty` after ``timeout`` seconds."""
        return self._queue.get(timeout=timeout)

    def drain(self) -> list:
        """Every event queued now, without waiting."""
        events = []
        while not self._queue.empty():  # one consumer: what it saw stays there
            events.append(self._queue.get_nowait())
        return events
