"""What goes wrong in a real run, and how the client hears of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskFailure:
    """A failure recorded by a worker: who failed, on which task, and the remote traceback."""

    worker_id: str
    task_id: str | None
    error_type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        where = f"task {self.task_id!r} on worker {self.worker_id!r}"
        if self.task_id is None:
            where = f"worker {self.worker_id!r}"
        return f"{where} failed with {self.error_type}: {self.message}"


class RemoteTaskError(RuntimeError):
    """A task or worker failed remotely; the message carries the remote traceback.

    Attributes
    ----------
    failure : TaskFailure
    """

    def __init__(self, failure: TaskFailure):
        super().__init__(f"{failure}\n--- remote traceback ---\n{failure.traceback}")
        self.failure = failure


class WorkerLost(TimeoutError):
    """The run stalled: no sink completed in time, most likely because a worker died."""


class StoreError(RuntimeError):
    """The store cannot serve this run (unreachable, restarted or flushed); names the run."""


class StoreLost(StoreError):
    """The run's keys vanished mid-run: Redis was restarted or flushed."""


class RunCancelled(StoreError):
    """The run ended, failed or was cancelled while this worker was still running."""


class WriteRefused(StoreError):
    """A fenced write was refused; `reason` is ``"gone"`` (the run's keys are gone: it was
    cleaned up, or Redis restarted), ``"cancelled"`` or ``"superseded"`` (a retry of this
    worker has started)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class RunIdInUse(ValueError):
    """A run with this id is live in this Redis already."""


class RunFailed(RuntimeError):
    """A worker of this run failed; `.failure` holds what it recorded (see `runtime.errors`)."""

    def __init__(self, failure: Any):
        super().__init__(str(failure))
        self.failure = failure
