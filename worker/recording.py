"""Trace recording shared by every driver: effect timings in, trace-schema rows out.

A driver reports each effect it performed with its start and end (ms from run start) and the
bytes it moved; the recorder attributes them to (task, worker) executions and to workers. It
reads no clock itself, so a simulated run and a real run produce the same columns and compare by
a join.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dag.resources import ResourceConfig
from worker.effects import (
    Download,
    Execute,
    Exists,
    Get,
    Incr,
    Invoke,
    Publish,
    SetIfAbsent,
    StreamDownload,
    StreamUpload,
    Upload,
)
from worker.schedule import Schedule

# What each effect's time counts as in a task's row (other effects are not attributed).
_KIND = {
    Execute: "exec",
    Download: "down",
    StreamDownload: "down",
    Upload: "up",
    StreamUpload: "up",
    **dict.fromkeys((Incr, Publish, SetIfAbsent, Invoke, Get), "dc"),
}
#: The worker id every driver gives the client (its effects run outside any worker).
CLIENT = "client"
#: Effects that are one command to the store each (a publish is counted apart).
STORE_COMMANDS = frozenset(
    (Download, StreamDownload, Upload, StreamUpload, Get, Incr, SetIfAbsent, Exists)
)


def _union_ms(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals, ms (parallel downloads count once)."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


@dataclass
class _TaskTimes:
    worker_id: str
    download_start_ms: float = math.inf
    inputs_done_ms: float = -math.inf
    download_bytes: int = 0
    downloads: list[tuple[float, float]] = field(default_factory=list)
    exec_start_ms: float = math.nan
    exec_done_ms: float = math.nan
    output_bytes: int = 0
    upload_ms: float = 0.0
    upload_end_ms: float = -math.inf
    dc_ms: float = 0.0
    dc_end_ms: float = -math.inf
    startup: str = "none"
    startup_ms: float = 0.0
    duplicated: bool = False
    streamed: bool = False

    @property
    def available_ms(self) -> float:
        """When this execution's output could be read elsewhere (or locally, if kept)."""
        return self.upload_end_ms if self.upload_end_ms >= 0 else self.exec_done_ms


@dataclass
class _WorkerTimes:
    config: ResourceConfig
    startup: str
    startup_ms: float
    invoked_ms: float
    ready_ms: float
    attempt: int = 0
    end_ms: float = math.nan
    ran_task: bool = False


class TraceRecorder:
    """Collects one run's effect timings and turns them into task and worker rows.

    Parameters
    ----------
    schedule : Schedule
        The plan read against its DAG (for dependencies and function names).
    billing_ms : float
        Billing granularity for ``billed_ms`` (1 ms on AWS Lambda).

    Attributes
    ----------
    n_store_commands, n_publishes : int
        Effects the workers performed that were store commands (`STORE_COMMANDS`) and
        publishes (the client's own are left out).
    """

    def __init__(self, schedule: Schedule, *, billing_ms: float = 1.0):
        self.schedule = schedule
        self.billing_ms = billing_ms
        self.n_store_commands = 0
        self.n_publishes = 0
        self._tasks: dict[tuple[str, str], _TaskTimes] = {}  # (task id, worker id)
        self._workers: dict[str, _WorkerTimes] = {}

    # -- driver callbacks -----------------------------------------------------------------

    def worker_started(
        self,
        worker_id: str,
        config: ResourceConfig,
        *,
        startup: str,
        startup_ms: float,
        invoked_ms: float,
        ready_ms: float,
        attempt: int = 0,
    ) -> None:
        """A container for `worker_id` is running its logic from `ready_ms` (`attempt` 0 for
        the first try, +1 per retry)."""
        self._workers[worker_id] = _WorkerTimes(
            config, startup, startup_ms, invoked_ms, ready_ms, attempt
        )

    def worker_prewarmed(self, worker_id: str) -> None:
        """The worker's warm start is owed to a pre-warm: recorded as startup 'prewarmed'."""
        self._workers[worker_id].startup = "prewarmed"

    def worker_ended(self, worker_id: str, end_ms: float) -> None:
        self._workers[worker_id].end_ms = end_ms

    def effect(
        self, worker_id: str, effect: Any, start_ms: float, end_ms: float, nbytes: int = 0
    ) -> None:
        """Attribute one performed effect (never a Parallel: report its members)."""
        if worker_id != CLIENT:  # the real client also fetches the results; not the sim's
            if type(effect) in STORE_COMMANDS:
                self.n_store_commands += 1
            elif type(effect) is Publish:
                self.n_publishes += 1
        task_id = getattr(effect, "task_id", None)
        if task_id is None:
            return
        kind = _KIND.get(type(effect))
        if kind is None:
            return
        times = self._tasks.get((task_id, worker_id))
        if times is None:
            times = self._tasks[(task_id, worker_id)] = _TaskTimes(worker_id)
        if kind == "exec":
            times.exec_start_ms, times.exec_done_ms = start_ms, end_ms
            times.output_bytes = nbytes
            times.duplicated = effect.duplicate
            worker = self._workers.get(worker_id)
            if worker is not None and not worker.ran_task:
                worker.ran_task = True
                times.startup, times.startup_ms = worker.startup, worker.startup_ms
        elif kind == "down":
            times.download_start_ms = min(times.download_start_ms, start_ms)
            times.inputs_done_ms = max(times.inputs_done_ms, end_ms)
            times.download_bytes += nbytes
            times.downloads.append((start_ms, end_ms))
        elif kind == "up":
            times.upload_ms += end_ms - start_ms
            times.upload_end_ms = max(times.upload_end_ms, end_ms)
            times.streamed = times.streamed or isinstance(effect, StreamUpload)
        else:  # coordination: counters, claims, events, invocations
            times.dc_ms += end_ms - start_ms
            times.dc_end_ms = max(times.dc_end_ms, end_ms)

    # -- results --------------------------------------------------------------------------

    def _executions(self) -> dict[str, list[_TaskTimes]]:
        runs: dict[str, list[_TaskTimes]] = {}
        for (task_id, _worker), times in self._tasks.items():
            if not math.isnan(times.exec_done_ms):
                runs.setdefault(task_id, []).append(times)
        return runs

    def executed(self) -> set[str]:
        """Ids of tasks whose Execute was recorded."""
        return {
            t for (t, _w), times in self._tasks.items() if times.exec_done_ms == times.exec_done_ms
        }

    def task_rows(self) -> list[dict[str, Any]]:
        """One dict per task execution (duplicates included), in topological order."""
        dag = self.schedule.dag
        executions = self._executions()
        output_bytes = {t: runs[0].output_bytes for t, runs in executions.items()}
        rows: list[dict[str, Any]] = []
        for task_id in dag.topological_order():
            deps = dag.predecessors(task_id)
            for times in executions.get(task_id, ()):
                # Ready: the earliest moment each input existed where this run could read it.
                ready_ms = 0.0
                for dep in deps:
                    if dep in executions:
                        ready_ms = max(
                            ready_ms,
                            min(
                                d.exec_done_ms if d.worker_id == times.worker_id else d.available_ms
                                for d in executions[dep]
                            ),
                        )
                rows.append(self._row(task_id, times, ready_ms, deps, output_bytes))
                # An input read is never earlier than its availability; in a real run the
                # producer may record its upload's end after a fast reader already started.
                rows[-1]["ready_ms"] = min(ready_ms, rows[-1]["start_ms"])
        return rows

    def _row(self, task_id, times, ready_ms, deps, output_bytes) -> dict[str, Any]:
        downloaded = times.download_start_ms != math.inf
        start_ms = times.download_start_ms if downloaded else times.exec_start_ms
        worker = self._workers.get(times.worker_id)
        config = worker.config if worker is not None else self.schedule.config_of[task_id]
        return {
            "task_id": task_id,
            "function": self.schedule.dag[task_id].function,
            "worker_id": times.worker_id,
            "memory_mb": config.memory_mb,
            "cpus": config.cpus,
            "attempt": worker.attempt if worker is not None else 0,
            "ready_ms": ready_ms,
            "start_ms": start_ms,
            "inputs_done_ms": times.inputs_done_ms if downloaded else times.exec_start_ms,
            "exec_done_ms": times.exec_done_ms,
            "end_ms": max(times.exec_done_ms, times.upload_end_ms, times.dc_end_ms),
            "startup": times.startup,
            "startup_ms": times.startup_ms,
            "input_bytes": sum(output_bytes.get(d, 0) for d in deps),
            "download_bytes": times.download_bytes,
            "download_ms": _union_ms(times.downloads),
            "exec_ms": times.exec_done_ms - times.exec_start_ms,
            "output_bytes": times.output_bytes,
            "upload_ms": times.upload_ms,
            "dc_ms": times.dc_ms,
            "duplicated": times.duplicated,
            "streamed": times.streamed,
        }

    def makespan_ms(self) -> float:
        """When the last sink's result was stored (ms); a duplicated sink counts its first run,
        a sink never run counts as nothing."""
        executions = self._executions()
        ends = [
            min(max(t.exec_done_ms, t.upload_end_ms, t.dc_end_ms) for t in executions[sink])
            for sink in self.schedule.dag.sinks
            if sink in executions
        ]
        return max(ends, default=0.0)

    def worker_rows(self) -> list[dict[str, Any]]:
        """One dict per worker invocation, with trace-schema columns."""
        rows = []
        for worker_id, times in self._workers.items():
            started_ms = times.ready_ms - times.startup_ms
            billed = max(times.end_ms - started_ms, 0.0)
            billed = math.ceil(billed / self.billing_ms - 1e-9) * self.billing_ms
            rows.append(
                {
                    "worker_id": worker_id,
                    "memory_mb": times.config.memory_mb,
                    "cpus": times.config.cpus,
                    "startup": times.startup,
                    "invoked_ms": times.invoked_ms,
                    "ready_ms": times.ready_ms,
                    "end_ms": times.end_ms,
                    "billed_ms": billed,
                }
            )
        return rows
