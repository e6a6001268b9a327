"""What a worker may predict at run time: the estimates behind task-dup and clustering.

The same estimates are handed to the simulated and the real run, so a decision taken on
predictions is taken the same way in both; the real run ships them to its workers as
`TabulatedEstimates`, which answer every query a worker makes with the source's value.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
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


class TabulatedEstimates:
    """Estimates as plain tables: what a real run ships to its workers.

    A planner's estimates may hold a platform model, fitted predictors or trace frames; a worker
    process that unpickled them would import the whole simulator and its libraries (about a
    second of CPU per new container). `tabulate` asks the source once for every value a
    worker's decisions need, so decisions on the tables equal decisions on the source.

    Transfers are tabulated at every task's output size; other sizes are interpolated linearly
    between the nearest tabulated ones (extrapolated from the end segments).
    """

    def __init__(
        self,
        exec_ms: dict[tuple[str, ResourceConfig], float],
        output_bytes: dict[str, int],
        transfer_ms: dict[ResourceConfig, tuple[tuple[int, float], ...]],
        startup_ms: dict[ResourceConfig, float],
    ):
        self._exec_ms = exec_ms
        self._output_bytes = output_bytes
        self._transfer_ms = transfer_ms
        self._startup_ms = startup_ms

    @classmethod
    def tabulate(
        cls, source: Estimates, task_ids: Iterable[str], configs: Iterable[ResourceConfig]
    ) -> TabulatedEstimates:
        """Every value of `source` for `task_ids` on `configs` (the plan's configs)."""
        tasks = list(task_ids)
        configs = sorted(set(configs))
        output_bytes = {t: int(source.output_bytes(t)) for t in tasks}
        sizes = sorted({0, *output_bytes.values()})
        return cls(
            exec_ms={(t, c): float(source.exec_ms(t, c)) for t in tasks for c in configs},
            output_bytes=output_bytes,
            transfer_ms={
                c: tuple((n, float(source.transfer_ms(n, c))) for n in sizes) for c in configs
            },
            startup_ms={c: float(source.startup_ms(c)) for c in configs},
        )

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float:
        return self._exec_ms[task_id, config]

    def output_bytes(self, task_id: str) -> int:
        return self._output_bytes[task_id]

    def transfer_ms(self, nbytes: int, config: ResourceConfig) -> float:
        points = self._transfer_ms[config]
        i = bisect.bisect_left(points, (nbytes, -float("inf")))
        if i < len(points) and points[i][0] == nbytes:
            return points[i][1]
        if len(points) == 1:
            return points[0][1]
        i = min(max(i, 1), len(points) - 1)
        (n0, t0), (n1, t1) = points[i - 1], points[i]
        return t0 + (t1 - t0) * (nbytes - n0) / (n1 - n0)

    def startup_ms(self, config: ResourceConfig) -> float:
        return self._startup_ms[config]
