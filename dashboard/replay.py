"""A recorded or simulated run, from its trace tables, as the events a live run would have sent.

The trace tables (`traces.schema`) hold every phase of every task and worker; replaying them
as `runtime.live` events lets one dashboard show a finished run exactly as it shows a live one,
and a time slider show it at any moment (the events up to that time). Nothing is computed that
the tables do not hold: a phase's start and end are the table's (a download from ``start_ms``
to ``inputs_done_ms``, the function from ``exec_done_ms - exec_ms`` to ``exec_done_ms``, the
upload from ``exec_done_ms`` for ``upload_ms``).

The tables have no dependencies: a DAG for the DAG view comes from `dag_of` (the CLI resolves
a run's workflow name with the workflows it knows); without one, tasks are laid out by their
start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from traces.io import TraceSet


class NotATraceFolder(ValueError):
    """A folder without readable trace tables (names the folder and what is wrong)."""


def load_traces(folder: str | Path) -> TraceSet:
    """The trace tables of a results folder or trace folder.

    Raises
    ------
    NotATraceFolder
        If it is not a folder, lacks ``runs/tasks/workers.parquet``, or they are unreadable,
        or it holds no run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotATraceFolder(f"{str(folder)!r} is not a folder")
    try:
        traces = TraceSet.read(folder)
    except FileNotFoundError as err:
        raise NotATraceFolder(
            f"{str(folder)!r} has no trace tables ({err}); a results folder gets them when "
            "its experiment finishes (faasdag report DIR writes them from finished cells)"
        ) from None
    except ValueError as err:
        raise NotATraceFolder(f"{str(folder)!r}: unreadable trace tables: {err}") from None
    if traces.runs.empty:
        raise NotATraceFolder(f"{str(folder)!r} holds no run")
    return traces


def run_label(run: pd.Series) -> str:
    """A run in a list: workflow | planner | backend [| seed]."""
    parts = [str(run["workflow"]), str(run["planner"]), str(run["backend"])]
    if not pd.isna(run.get("seed")):
        parts.append(f"seed {int(run['seed'])}")
    return " | ".join(p for p in parts if p)


def _ms(value: Any) -> float | None:
    return None if value is None or pd.isna(value) or not math.isfinite(value) else float(value)


def describe(run: pd.Series, tasks: pd.DataFrame, dag: Any = None) -> dict[str, Any]:
    """The description (`runtime.live_source.describe_run`'s form) of one recorded run.

    Parameters
    ----------
    run : Series
        Its row of the runs table.
    tasks : DataFrame
        Its task rows.
    dag : DAG, optional
        Its DAG (gives each task's dependencies); None: none known.
    """
    rows = []
    seen = set()
    first = tasks.sort_values("start_ms", kind="stable").drop_duplicates("task_id")
    ids = list(dag.topological_order()) if dag is not None else list(first["task_id"])
    functions = dict(zip(first["task_id"], first["function"], strict=True))
    for task_id in ids:
        if task_id in seen:
            continue
        seen.add(task_id)
        rows.append(
            {
                "id": task_id,
                "function": dag[task_id].function if dag is not None else functions[task_id],
                "deps": list(dag.predecessors(task_id)) if dag is not None else [],
            }
        )
    return {
        "run_id": str(run["run_id"]),
        "workflow": str(run["workflow"]),
        "planner": str(run["planner"]),
        "backend": str(run["backend"]),
        "platform": "",
        "prices": {},
        "predicted_makespan_ms": _ms(run.get("predicted_makespan_ms")),
        "recorded_cost_usd": _ms(run.get("cost_usd")),
        "tasks": rows,
    }


def events_of(tasks: pd.DataFrame, workers: pd.DataFrame, makespan_ms: float) -> list[dict]:
    """The events of one run's task and worker rows, sorted by time."""
    events: list[dict[str, Any]] = [{"kind": "run_started", "t_ms": 0.0, "n_tasks": len(tasks)}]
    attempts = tasks.groupby("worker_id")["attempt"].max().to_dict() if len(tasks) else {}
    for w in workers.itertuples(index=False):
        base = {"worker": w.worker_id, "attempt": int(attempts.get(w.worker_id, 0))}
        config = {"memory_mb": int(w.memory_mb), "cpus": float(w.cpus)}
        events.append({"kind": "worker_invoked", "t_ms": w.invoked_ms, **base, **config, "by": ""})
        startup_ms = w.ready_ms - w.invoked_ms if w.startup == "cold" else 0.0
        events.append(
            {"kind": "worker_started", "t_ms": w.ready_ms, **base, **config,
             "startup": w.startup, "startup_ms": startup_ms}
        )  # fmt: skip
        events.append({"kind": "worker_ended", "t_ms": w.end_ms, **base, "ok": True})
    for t in tasks.itertuples(index=False):
        base = {"worker": t.worker_id, "attempt": int(t.attempt), "task": t.task_id}
        if t.download_bytes > 0 or t.download_ms > 0:
            events.append({"kind": "download_start", "t_ms": t.start_ms, **base})
            events.append(
                {"kind": "download_end", "t_ms": t.inputs_done_ms, **base,
                 "start_ms": t.start_ms, "bytes": int(t.download_bytes)}
            )  # fmt: skip
        exec_start = t.exec_done_ms - t.exec_ms
        events.append({"kind": "exec_start", "t_ms": exec_start, **base})
        events.append(
            {"kind": "exec_end", "t_ms": t.exec_done_ms, **base,
             "start_ms": exec_start, "bytes": int(t.output_bytes)}
        )  # fmt: skip
        if t.upload_ms > 0:
            events.append(
                {"kind": "upload_end", "t_ms": t.exec_done_ms + t.upload_ms, **base,
                 "start_ms": t.exec_done_ms, "bytes": int(t.output_bytes)}
            )  # fmt: skip
    events.append({"kind": "run_ended", "t_ms": float(makespan_ms), "status": "ok"})
    for event in events:
        event["t_ms"] = float(event["t_ms"])
    events.sort(key=lambda e: e["t_ms"])
    return events


class Replay:
    """The runs of a trace folder, each as a description and its events.

    Parameters
    ----------
    traces : TraceSet
    dag_of : callable, optional
        ``dag_of(workflow_name) -> DAG or None`` for the DAG view's edges.
    """

    def __init__(self, traces: TraceSet, dag_of: Callable[[str], Any] | None = None):
        self.traces = traces
        self.dag_of = dag_of
        self.runs = traces.runs.reset_index(drop=True)
        self._dags: dict[str, Any] = {}
        self._loaded: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}

    def labels(self) -> dict[str, str]:
        """Run id -> its label, in table order."""
        return {str(r["run_id"]): run_label(r) for _, r in self.runs.iterrows()}

    def _dag(self, workflow: str, tasks: pd.DataFrame) -> Any:
        if self.dag_of is None:
            return None
        if workflow not in self._dags:
            try:
                self._dags[workflow] = self.dag_of(workflow)
            except Exception:  # an unknown or unloadable workflow: no edges
                self._dags[workflow] = None
        dag = self._dags[workflow]
        if dag is not None and not set(tasks["task_id"]) <= set(dag):
            return None  # not this run's DAG (parameters differ)
        return dag

    def dag(self, run_id: str) -> Any:
        """The DAG of run `run_id`, None when unknown."""
        run = self.runs[self.runs["run_id"] == run_id].iloc[0]
        tasks = self.traces.tasks[self.traces.tasks["run_id"] == run_id]
        return self._dag(str(run["workflow"]), tasks)

    def load(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(description, events) of run `run_id` (the last few are kept: every page of a
        server shows the same runs; pages only read them).

        Raises
        ------
        KeyError
            If the folder has no run `run_id`.
        """
        if run_id in self._loaded:
            return self._loaded[run_id]
        matches = self.runs.index[self.runs["run_id"] == run_id]
        if len(matches) == 0:
            raise KeyError(f"no run {run_id!r} in this folder")
        run = self.runs.loc[matches[0]]
        tasks = self.traces.tasks[self.traces.tasks["run_id"] == run_id]
        workers = self.traces.workers[self.traces.workers["run_id"] == run_id]
        description = describe(run, tasks, self._dag(str(run["workflow"]), tasks))
        loaded = description, events_of(tasks, workers, float(run["makespan_ms"]))
        while len(self._loaded) >= 4:
            self._loaded.pop(next(iter(self._loaded)))
        self._loaded[run_id] = loaded
        return loaded
