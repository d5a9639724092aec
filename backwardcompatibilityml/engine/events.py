"""What executors report while they run, on one thread-safe queue the runner consumes.

An executor in the runner's thread, in a stacked model or in another process
reports the same way: it puts these events on an :class:`EventQueue`. The
runner is the only consumer; it persists each :class:`JobFinished` as it
arrives and updates the status from the others.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Optional, Protocol, Tuple, Union

from .jobs import JobResult, TrainingJob

__all__ = [
    "JobStarted", "StepDone", "BatchDone", "JobFinished", "JobFailed", "ExecutorNote", "ExecutorDone",
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


@dataclass(frozen=True)
class ExecutorDone:
    """The executor has returned (put by the runner's worker, not by executors)."""

    error: Optional[BaseException] = None


Event = Union[JobStarted, StepDone, BatchDone, JobFinished, JobFailed, ExecutorNote, ExecutorDone]


class EventSink(Protocol):
    """Where executors put their events."""

    def put(self, event: Event) -> None: ...


class EventQueue:
    """An unbounded thread-safe FIFO of events (one consumer: the runner)."""

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
