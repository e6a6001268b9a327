"""What a worker may predict at run time: the estimates behind task-dup and clustering.

The same estimates object is handed to the simulated and the real run, so a decision taken on
predictions is taken the same way in both.
"""

from __future__ import annotations

from typing import Protocol

from dag.resources import ResourceConfig


class Estimates(Protocol):
    """Predicted task times and sizes (ms, bytes) for run-time decisions."""

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float: ...

    def output_bytes(self, task_id: str) -> int: ...

    def transfer_ms(self, nbytes: int, config: ResourceConfig) -> float: ...

    def startup_ms(self, config: ResourceConfig) -> float: ...


class TaskProfileLike(Protocol):
    def exec_ms(self, task_id: str, config: ResourceConfig) -> float: ...

    def output_bytes(self, task_id: str) -> int: ...


class ProfileEstimates:
    """Estimates from task profiles plus a simple transfer and start-up model.

    Parameters
    ----------
    profiles : object with ``exec_ms(task_id, config)`` and ``output_bytes(task_id)``
        E.g. `traces.profiles.TaskProfiles` in predict mode.
    bytes_per_ms : float
        Expected transfer throughput to or from the store, bytes per ms.
    latency_ms : float
        Per-transfer latency, ms.
    cold_start_ms : float
        Expected start-up of a worker that has not begun yet, ms.
    """

    def __init__(
        self,
        profiles: TaskProfileLike,
        *,
        bytes_per_ms: float = 50_000.0,
        latency_ms: float = 1.0,
        cold_start_ms: float = 250.0,
    ):
        if not bytes_per_ms > 0:
            raise ValueError(f"bytes_per_ms={bytes_per_ms!r} must be > 0")
        self.profiles = profiles
        self.bytes_per_ms = bytes_per_ms
        self.latency_ms = latency_ms
        self.cold_start_ms = cold_start_ms

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float:
        return float(self.profiles.exec_ms(task_id, config))

    def output_bytes(self, task_id: str) -> int:
        return int(self.profiles.output_bytes(task_id))

    def transfer_ms(self, nbytes: int, config: ResourceConfig) -> float:
        return self.latency_ms + nbytes / self.bytes_per_ms

    def startup_ms(self, config: ResourceConfig) -> float:
        return self.cold_start_ms
