"""Importers: outside data turned into TraceSets.

- `from_wfformat`: a WfFormat instance (read by `dag.wfformat`) becomes one run. Tasks start as
  soon as their dependencies end (one worker per task, no startup, no transfers modelled), so
  the run's makespan is the critical path of the recorded runtimes.
- `from_invocations`: a table of per-function invocations (function, start, end, is_cold,
  container id, request id, memory), the shape public serverless benchmark data uses, becomes
  task rows (one per request) and worker rows (one per container) of one run. Cold-start time is
  taken from an ``init`` column when the data has one, else estimated per (function, memory) as
  the median cold duration minus the median warm duration.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dag.resources import MIN_MEMORY_MB, lambda_cpus
from traces.io import TraceSet, read_csv_text
from traces.profiles import propagate_input_bytes
from traces.schema import make_frame

#: AWS Lambda x86 prices used for imported runs' cost columns.
USD_PER_GB_S = 1.66667e-5
USD_PER_REQUEST = 2e-7
#: Memory given to WfFormat tasks that state none, in MB (one Lambda vCPU).
DEFAULT_MEMORY_MB = 1769
TIME_UNITS_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
#: Canonical invocation columns -> accepted spellings (case-insensitive).
INVOCATION_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "function": ("function", "func", "function_name", "app"),
    "start": ("start", "start_time", "begin", "timestamp"),
    "end": ("end", "end_time", "finish"),
    "is_cold": ("is_cold", "cold", "cold_start", "coldstart"),
    "container_id": ("container_id", "container", "instance_id", "worker_id"),
    "request_id": ("request_id", "request", "invocation_id", "id"),
    "memory": ("memory", "memory_mb", "mem_mb"),
}
OPTIONAL_INVOCATION_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "init": ("init", "init_ms", "init_duration", "startup_ms"),
    "input_bytes": ("input_bytes",),
    "output_bytes": ("output_bytes",),
}


def _lookup(mapping: Any, task_id: str) -> Any:
    if mapping is None:
        return None
    if isinstance(mapping, Mapping):
        return mapping.get(task_id)
    return mapping


def from_wfformat(
    source: Any,
    *,
    run_id: str | None = None,
    planner: str = "wfformat",
    backend: str = "wfformat",
    memory_mb: int | None = None,
) -> TraceSet:
    """One run of a WfFormat instance (path, parsed document or `WfInstance`) as a TraceSet.

    Per task: exec_ms = its runtime, output_bytes = its output files, input_bytes = the bytes
    on its in-edges (upstream outputs where an edge has none); memory from ``memoryInBytes``
    (else `memory_mb`, else 1769 MB), cpus from the core count. Timestamps follow an as-soon-as-
    possible schedule with one worker per task.

    Raises
    ------
    dag.wfformat.WfFormatError
        On an unreadable file (from the reader).
    ValueError
        If a task has no runtime.
    """
    instance = source
    if not hasattr(source, "dag"):
        from dag.wfformat import read_wfformat

        instance = read_wfformat(source)
    dag = instance.dag
    name = getattr(instance, "name", "") or dag.name or "wfformat"
    if run_id is None:
        run_id = Path(os.fspath(source)).stem if isinstance(source, str | os.PathLike) else name
    end: dict[str, float] = {}
    outputs: dict[str, int] = {}
    tasks, workers = [], []
    for t in dag.topological_order():
        runtime = instance.runtime_ms.get(t)
        if runtime is None:
            raise ValueError(f"WfFormat task {t!r} has no runtime")
        outputs[t] = int(instance.output_bytes.get(t, 0))
        mem_bytes = _lookup(getattr(instance, "memory_bytes", None), t)
        mem = memory_mb or DEFAULT_MEMORY_MB
        if mem_bytes:
            mem = max(MIN_MEMORY_MB, math.ceil(mem_bytes / 2**20))
        cores = _lookup(getattr(instance, "cores", None), t)
        cpus = float(cores) if cores else lambda_cpus(mem)
        ready = max((end[d] for d in dag[t].deps), default=0.0)
        end[t] = ready + float(runtime)
        worker = f"w-{t}"
        tasks.append(
            {
                "run_id": run_id,
                "workflow": name,
                "dag_hash": dag.dag_hash,
                "task_id": t,
                "function": dag[t].function,
                "worker_id": worker,
                "memory_mb": mem,
                "cpus": cpus,
                "planner": planner,
                "backend": backend,
                "ready_ms": ready,
                "start_ms": ready,
                "inputs_done_ms": ready,
                "exec_done_ms": end[t],
                "end_ms": end[t],
                "input_bytes": propagate_input_bytes(dag, outputs, t, 0),
                "exec_ms": float(runtime),
                "output_bytes": outputs[t],
            }
        )
        workers.append(
            {
                "run_id": run_id,
                "worker_id": worker,
                "memory_mb": mem,
                "cpus": cpus,
                "startup": "none",
                "invoked_ms": ready,
                "ready_ms": ready,
                "end_ms": end[t],
                "billed_ms": float(math.ceil(end[t] - ready)),
            }
        )
    makespan = max(end.values(), default=0.0)
    runs = [
        {
            "run_id": run_id,
            "workflow": name,
            "dag_hash": dag.dag_hash,
            "planner": planner,
            "backend": backend,
            "makespan_ms": makespan,
            "n_workers": len(workers),
        }
    ]
    return TraceSet(
        make_frame("tasks", tasks), make_frame("workers", workers), make_frame("runs", runs)
    )


def _resolve_columns(
    frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str
) -> dict[str, str]:
    lower = {str(c).lower(): str(c) for c in frame.columns}
    found: dict[str, str] = {}
    for canonical, spellings in {**INVOCATION_COLUMNS, **OPTIONAL_INVOCATION_COLUMNS}.items():
        if columns and canonical in columns:
            if columns[canonical] not in frame.columns:
                raise ValueError(
                    f"{source}: column {columns[canonical]!r} (for {canonical}) not found"
                )
            found[canonical] = columns[canonical]
            continue
        hit = next((lower[s] for s in spellings if s in lower), None)
        if hit is not None:
            found[canonical] = hit
        elif canonical in INVOCATION_COLUMNS:
            raise ValueError(f"{source}: no {canonical!r} column (looked for {spellings})")
    return found


def _numbers(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"{source}: column {column!r}, row {int(bad[0])}: {frame[column].iloc[bad[0]]!r} is not a number"
        )
    return values


def _flags(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    words = {
        "true": True,
        "false": False,
        "1": True,
        "0": False,
        "yes": True,
        "no": False,
        "1.0": True,
        "0.0": False,
    }
    out = np.empty(len(frame), dtype=bool)
    for i, v in enumerate(frame[column]):
        key = str(v).strip().lower()
        if key not in words:
            raise ValueError(
                f"{source}: column {column!r}, row {i}: {v!r} is not a cold-start flag"
            )
        out[i] = words[key]
    return out


def from_invocations(
    data: str | os.PathLike | pd.DataFrame,
    *,
    run_id: str | None = None,
    workflow: str = "invocations",
    backend: str = "imported",
    time_unit: str = "ms",
    columns: Mapping[str, str] | None = None,
) -> TraceSet:
    """Per-function invocation records (CSV file or DataFrame) as one run's TraceSet.

    Parameters
    ----------
    data : path or DataFrame
        Needs columns function, start, end, is_cold, container_id, request_id, memory (MB);
        common spellings are recognised (see `INVOCATION_COLUMNS`), others mapped by `columns`.
        Optional: init (cold-start ms, same unit as start), input_bytes, output_bytes.
    time_unit : {'s', 'ms', 'us', 'ns'}
        Unit of start / end / init. Times become ms from the earliest start.

    Returns
    -------
    TraceSet
        Task rows (task_id = request id, worker = container; startup cold/warm with its ms;
        exec_ms = duration minus startup), worker rows (one per container: cold if its first
        invocation was, billed = sum of its invocations' durations rounded up to 1 ms) and one
        run row with Lambda costs.

    Raises
    ------
    ValueError
        Naming the column and row of a missing column, a non-number, an unknown flag, or an
        end before its start.
    """
    if time_unit not in TIME_UNITS_MS:
        raise ValueError(f"time_unit {time_unit!r}; expected one of {tuple(TIME_UNITS_MS)}")
    if isinstance(data, pd.DataFrame):
        frame, source = data.reset_index(drop=True), "<invocations>"
    else:
        source = os.fspath(data)
        frame = read_csv_text(source)
        run_id = run_id or Path(source).stem
    run_id = run_id or workflow
    col = _resolve_columns(frame, columns, source)
    scale = TIME_UNITS_MS[time_unit]
    start = _numbers(frame, col["start"], source) * scale
    end = _numbers(frame, col["end"], source) * scale
    bad = np.flatnonzero(end < start)
    if bad.size:
        raise ValueError(f"{source}: column {col['end']!r}, row {int(bad[0])}: end before start")
    cold = _flags(frame, col["is_cold"], source)
    memory = _numbers(frame, col["memory"], source).round().astype(np.int64)
    functions = frame[col["function"]].astype(str).to_numpy(dtype=object)
    duration = end - start
    if "init" in col:
        startup = np.where(cold, _numbers(frame, col["init"], source) * scale, 0.0)
    else:
        startup = _estimate_cold_ms(functions, memory, cold, duration)
    startup = np.minimum(startup, duration)
    origin = start.min() if len(start) else 0.0
    start, end = start - origin, end - origin
    cpus = np.array([lambda_cpus(int(m)) for m in memory])
    sizes = {
        k: (
            _numbers(frame, col[k], source).astype(np.int64)
            if k in col
            else np.zeros(len(frame), np.int64)
        )
        for k in ("input_bytes", "output_bytes")
    }
    containers = frame[col["container_id"]].astype(str).to_numpy(dtype=object)
    n = len(frame)
    tasks = make_frame(
        "tasks",
        {
            "run_id": np.full(n, run_id, dtype=object),
            "workflow": np.full(n, workflow, dtype=object),
            "dag_hash": np.full(n, "", dtype=object),
            "task_id": frame[col["request_id"]].astype(str).to_numpy(dtype=object),
            "function": functions,
            "worker_id": containers,
            "memory_mb": memory,
            "cpus": cpus,
            "backend": np.full(n, backend, dtype=object),
            "ready_ms": start,
            "start_ms": start,
            "inputs_done_ms": start + startup,
            "exec_done_ms": end,
            "end_ms": end,
            "startup": np.where(cold, "cold", "warm").astype(object),
            "startup_ms": startup,
            "input_bytes": sizes["input_bytes"],
            "exec_ms": duration - startup,
            "output_bytes": sizes["output_bytes"],
        },
    )
    workers = _worker_rows(tasks, duration)
    gb_s = float((workers["memory_mb"] / 1024 * workers["billed_ms"] / 1000).sum())
    runs = make_frame(
        "runs",
        [
            {
                "run_id": run_id,
                "workflow": workflow,
                "dag_hash": "",
                "backend": backend,
                "makespan_ms": float(end.max() if n else 0.0),
                "cost_compute_usd": gb_s * USD_PER_GB_S,
                "cost_requests_usd": n * USD_PER_REQUEST,
                "cost_usd": gb_s * USD_PER_GB_S + n * USD_PER_REQUEST,
                "n_workers": len(workers),
                "n_cold": int(cold.sum()),
            }
        ],
    )
    return TraceSet(tasks, workers, runs)


def _estimate_cold_ms(functions, memory, cold, duration) -> np.ndarray:
    """Per (function, memory): median cold duration - median warm duration, floored at 0."""
    out = np.zeros(len(duration))
    keys = pd.Series(list(zip(functions, memory, strict=True)), dtype=object)
    for key, idx in keys.groupby(keys).groups.items():
        idx = np.asarray(idx)
        c, w = idx[cold[idx]], idx[~cold[idx]]
        if not c.size:
            continue
        if not w.size:
            warnings.warn(
                f"function {key[0]!r} at {key[1]} MB has cold starts but no warm runs; "
                "cold-start time set to 0",
                stacklevel=3,
            )
            continue
        out[c] = max(0.0, float(np.median(duration[c]) - np.median(duration[w])))
    return out


def _worker_rows(tasks: pd.DataFrame, duration: np.ndarray) -> pd.DataFrame:
    frame = tasks.assign(_billed=np.ceil(duration)).sort_values(
        ["worker_id", "start_ms"], kind="stable"
    )
    groups = frame.groupby("worker_id", sort=True)
    first = groups.first()
    return make_frame(
        "workers",
        {
            "run_id": first["run_id"].to_numpy(dtype=object),
            "worker_id": first.index.to_numpy(dtype=object),
            "memory_mb": first["memory_mb"].to_numpy(),
            "cpus": first["cpus"].to_numpy(),
            "startup": first["startup"].to_numpy(dtype=object),
            "invoked_ms": first["start_ms"].to_numpy(),
            "ready_ms": (first["start_ms"] + first["startup_ms"]).to_numpy(),
            "end_ms": np.maximum(
                groups["end_ms"].max().to_numpy(),
                (first["start_ms"] + first["startup_ms"]).to_numpy(),
            ),
            "billed_ms": groups["_billed"].sum().to_numpy(),
        },
    )
