"""`simulate`: one plan, one seed, one run in SimPy; results in the trace schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from dag.graph import DAG
from dag.plan import Plan
from sim.engine import SimDriver, TaskProfiles, gc_paused, run_simulation
from sim.estimates import PlatformEstimates
from sim.platform import Platform
from traces.schema import empty_frame, frame_from_rows
from worker.estimates import Estimates
from worker.schedule import Schedule


@dataclass
class SimResult:
    """What one simulated run produced.

    Attributes
    ----------
    tasks, workers : pandas.DataFrame or None
        One row per task execution / worker invocation, trace-schema columns (times in ms from
        run start, sizes in bytes). None after a makespan-only run (``simulate(...,
        tables=False)``); `with_tables` builds them from the same run.
    makespan_ms : float
        When the last sink's output was stored.
    cost : dict
        USD per component (``compute_usd``, ``requests_usd``, ``store_usd``, ``total_usd``) and
        the quantities billed.
    n_cold, n_warm : int
        Worker start-ups by kind.
    bytes_up, bytes_down : int
        Bytes moved to and from the store.
    critical_path : tuple of str
        The realised critical path: from the last-finishing sink back through the input that
        arrived last at each step.
    n_store_commands, n_publishes : int
        Store commands and publishes performed, counted as a real run counts them
        (`worker.recording.TraceRecorder`).
    n_workers : int
        Worker invocations (the rows of ``workers``).
    n_events : int
        SimPy events the run processed.
    """

    tasks: pd.DataFrame | None
    workers: pd.DataFrame | None
    makespan_ms: float
    cost: dict[str, float]
    n_cold: int
    n_warm: int
    bytes_up: int
    bytes_down: int
    critical_path: tuple[str, ...]
    invocations: list[Any] = field(repr=False, default_factory=list)
    uploads: list[str] = field(repr=False, default_factory=list)
    n_store_commands: int = 0
    n_publishes: int = 0
    n_workers: int = 0
    n_events: int = 0
    _tables: Callable[[], tuple[pd.DataFrame, pd.DataFrame]] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.workers is not None:
            self.n_workers = len(self.workers)

    @property
    def has_tables(self) -> bool:
        """Whether ``tasks`` and ``workers`` are built (False after a makespan-only run)."""
        return self.tasks is not None

    def with_tables(self) -> SimResult:
        """This result with its ``tasks`` and ``workers`` tables, built from the same run if
        it was makespan-only (no simulation again); self when they are built already."""
        if self.tasks is not None:
            return self
        if self._tables is None:
            raise ValueError("this result has no tables and no run to build them from")
        tasks, workers = self._tables()
        return replace(self, tasks=tasks, workers=workers, _tables=None)

    def run_row(self, **labels: Any) -> dict[str, Any]:
        """The `runs` row of this result, with labels such as run_id, planner, seed."""
        row = {
            "makespan_ms": self.makespan_ms,
            "cost_compute_usd": self.cost["compute_usd"],
            "cost_requests_usd": self.cost["requests_usd"],
            "cost_store_usd": self.cost["store_usd"],
            "cost_usd": self.cost["total_usd"],
            "n_workers": self.n_workers,
            "n_cold": self.n_cold,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }
        row.update(labels)
        if "config" in row and not isinstance(row["config"], str):
            row["config"] = json.dumps(row["config"], sort_keys=True, default=str)
        return row


def realised_critical_path(dag: DAG, tasks: pd.DataFrame) -> tuple[str, ...]:
    """Walk back from the last-finishing task through the input whose arrival came last."""
    if tasks.empty:
        return ()
    first = tasks.groupby("task_id")[["end_ms", "exec_done_ms"]].min()  # duplicates: first wins
    return _walk_back(dag, first["end_ms"].to_dict(), first["exec_done_ms"].to_dict())


def _walk_back(dag: DAG, end: dict[str, float], done: dict[str, float]) -> tuple[str, ...]:
    """`realised_critical_path` from each task's end and exec-done times (ms)."""
    if not end:
        return ()
    current = max(dag.sinks, key=lambda t: (end[t], t))
    path = [current]
    while dag.predecessors(current):
        current = max(dag.predecessors(current), key=lambda d: (end[d], done[d], d))
        path.append(current)
    return tuple(reversed(path))


def simulate(
    dag: DAG,
    plan: Plan,
    profiles: TaskProfiles,
    platform: Platform | str = "aws-lambda",
    seed: int | None = 0,
    *,
    estimates: Estimates | None = None,
    run_id: str | None = None,
    workflow: str | None = None,
    tables: bool = True,
) -> SimResult:
    """Simulate `plan` on `dag` with task `profiles` on `platform`.

    Parameters
    ----------
    dag : DAG
    plan : Plan
        Validated against the DAG first.
    profiles : TaskProfiles
        ``exec_ms(task_id, config)`` and ``output_bytes(task_id)``.
    platform : Platform or str
        A Platform or a preset name / TOML path.
    seed : int or None
        Seeds the run's numpy Generator: same inputs and seed, identical results.
    estimates : Estimates, optional
        What the workers predict at run time (task-dup, clustering); by default those the
        planner predicted with (``plan.predicted.estimates``), else the run's own profiles with
        the platform's transfer model (a perfect predictor).
    run_id, workflow : str, optional
        Labels for the trace rows (default: derived from the DAG, planner and seed).
    tables : bool, default True
        False runs makespan-only: the result's ``tasks`` and ``workers`` are None (every other
        field is filled, the critical path too) until `SimResult.with_tables` builds them from
        this same run. For callers that compare many plans by makespan and cost.

    Raises
    ------
    PlanError
        If the plan does not fit the DAG.
    """
    with gc_paused():  # the run and its tables: no garbage cycles to look for
        return _simulate(dag, plan, profiles, platform, seed, estimates, run_id, workflow, tables)


def _simulate(dag, plan, profiles, platform, seed, estimates, run_id, workflow, tables):
    driver = _run(dag, plan, profiles, platform, seed, estimates)
    recorder = driver.recorder
    planner = plan.planner

    def build_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
        labels = {
            "run_id": run_id or f"sim-{dag.dag_hash[:8]}-{planner or 'plan'}-{seed}",
            "workflow": workflow if workflow is not None else dag.name,
            "dag_hash": dag.dag_hash,
            "planner": planner,
            "backend": "sim",
        }
        tasks = _frame("tasks", recorder.task_columns(), labels, "simulated tasks")
        workers = _frame("workers", recorder.worker_columns(), labels, "simulated workers")
        return tasks, workers

    driver.ledger.store_transfer(driver.network.bytes_up + driver.network.bytes_down)
    driver.ledger.store_op(driver.network.n_store_ops + driver.network.n_publishes)
    if tables:
        tasks, workers = build_tables()
        critical_path = realised_critical_path(dag, tasks)
    else:
        tasks = workers = None
        end, done = recorder.completion_ms()
        critical_path = _walk_back(dag, end, done)
    return SimResult(
        tasks=tasks,
        workers=workers,
        makespan_ms=recorder.makespan_ms(),
        cost=driver.ledger.breakdown(),
        n_cold=driver.pools.n_cold,
        n_warm=driver.pools.n_warm,
        bytes_up=driver.network.bytes_up,
        bytes_down=driver.network.bytes_down,
        critical_path=critical_path,
        invocations=driver.invocations,
        uploads=driver.uploads,
        n_store_commands=recorder.n_store_commands,
        n_publishes=recorder.n_publishes,
        n_workers=recorder.n_workers,
        n_events=driver.n_events,
        _tables=None if tables else build_tables,
    )


def simulate_makespan_ms(
    dag: DAG,
    plan: Plan,
    profiles: TaskProfiles,
    platform: Platform | str = "aws-lambda",
    seed: int | None = 0,
    *,
    estimates: Estimates | None = None,
) -> float:
    """The makespan `simulate` would return (ms), without building its trace tables.

    For callers that simulate many times and keep only the makespan, such as fitting a
    platform parameter by bisection (``simulate(..., tables=False)`` keeps the rest too).

    Raises
    ------
    PlanError
        If the plan does not fit the DAG.
    """
    return _run(dag, plan, profiles, platform, seed, estimates).recorder.makespan_ms()


def _frame(table: str, columns: dict[str, Any], labels: dict[str, Any], source: str):
    """A typed trace table from the recorder's columns (no per-row objects on the way)."""
    if not len(next(iter(columns.values()))):
        return empty_frame(table)
    return frame_from_rows(table, columns, labels, source)  # a dict of columns is rows too


def _run(
    dag: DAG,
    plan: Plan,
    profiles: TaskProfiles,
    platform: Platform | str,
    seed: int | None,
    estimates: Estimates | None,
) -> SimDriver:
    """The finished driver of one simulated run (see `simulate` for the parameters)."""
    if not isinstance(platform, Platform):
        platform = Platform.preset(platform)
    if estimates is None:
        estimates = getattr(plan.predicted, "estimates", None) or PlatformEstimates(
            profiles, platform
        )
    schedule = Schedule.build(dag, plan, estimates)
    return run_simulation(schedule, profiles, platform, seed)
