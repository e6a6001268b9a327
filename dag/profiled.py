"""A DAG with task profiles: per-task runtimes and output sizes.

This is the common shape of everything that hands a workflow to the simulator or a planner
without running it: a WfFormat instance, a generated DAG, an example workflow. Runtimes are in
ms, sizes in bytes; a task missing from a profile mapping has no known value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dag.graph import DAG
from dag.limits import MAX_BYTES, MAX_DURATION_MS, bytes_limit_text, duration_limit_text


def check_profile(
    dag: DAG,
    values: Mapping[str, Any],
    what: str,
    *,
    integer: bool,
    limit: tuple[float, str] | None = None,
) -> Mapping[str, Any]:
    """Validate a per-task profile against `dag`; a read-only copy, as int or float values.

    Parameters
    ----------
    limit : (float, str), optional
        The largest value allowed and how a message names it (see `dag.limits`).

    Raises
    ------
    ValueError
        If it names a task not in `dag`, or a value is not a finite number >= 0 (or, with
        `integer`, not a whole number), or is above `limit`; the message names the task and
        `what`.
    """
    checked: dict[str, Any] = {}
    for task_id, value in values.items():
        if task_id not in dag:
            raise ValueError(f"{what} names unknown task {task_id!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"task {task_id!r}: {what} {value!r} is not a number")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"task {task_id!r}: {what} {value!r} must be finite and >= 0")
        if limit is not None and value > limit[0]:
            raise ValueError(f"task {task_id!r}: {what} {value!r} is above {limit[1]}")
        if integer:
            if int(value) != value:
                raise ValueError(f"task {task_id!r}: {what} {value!r} is not a whole number")
            value = int(value)
        else:
            value = float(value)
        checked[task_id] = value
    return MappingProxyType(checked)


@dataclass(frozen=True)
class ProfiledDAG:
    """A workflow DAG plus what is known of each task: runtime (ms) and output size (bytes).

    Parameters
    ----------
    dag : DAG
        The workflow structure, with per-edge bytes.
    runtime_ms : mapping of task id to float
        Execution time of each task in ms; tasks missing here have no known runtime.
    output_bytes : mapping of task id to int
        Total bytes each task writes; tasks missing here have no known output size.
    name : str
        The workflow's name, for reports; defaults to ``dag.name``.

    Raises
    ------
    ValueError
        If a profile names a task not in the DAG, or a value is negative, NaN or infinite
        (or, for sizes, not a whole number), or above the limits of `dag.limits` (one day,
        2**53 bytes); the message names the task.
    """

    dag: DAG
    runtime_ms: Mapping[str, float] = field(default_factory=dict)
    output_bytes: Mapping[str, int] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.dag, DAG):
            raise ValueError(f"{type(self).__name__} expects a DAG, got {self.dag!r}")
        object.__setattr__(
            self,
            "runtime_ms",
            check_profile(
                self.dag,
                self.runtime_ms,
                "runtime_ms",
                integer=False,
                limit=(MAX_DURATION_MS, duration_limit_text()),
            ),
        )
        object.__setattr__(
            self,
            "output_bytes",
            check_profile(
                self.dag,
                self.output_bytes,
                "output_bytes",
                integer=True,
                limit=(MAX_BYTES, bytes_limit_text()),
            ),
        )
        if not self.name:
            object.__setattr__(self, "name", self.dag.name)

    def summary(self) -> dict[str, Any]:
        """Shape figures of the DAG (see `DAG.summary`); `critical_path_ms` only when every
        task's runtime is known (a missing one is not taken as 0), else how many tasks have
        no runtime, and likewise no output size."""
        complete = len(self.runtime_ms) == len(self.dag)
        summary = self.dag.summary(self.runtime_ms if complete else None)
        for what, values in (("runtime", self.runtime_ms), ("output_size", self.output_bytes)):
            missing = [task_id for task_id in self.dag if task_id not in values]
            if missing:
                summary[f"tasks_without_{what}"] = f"{len(missing)} (first {missing[0]!r})"
        return summary
