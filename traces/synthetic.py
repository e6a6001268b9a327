"""Synthetic traces from a known ground truth, for testing and benchmarking predictors.

Each function's exec time is a power law of input bytes and cpus with lognormal noise, and may
drift (a multiplicative trend per run); output size is a power law of input bytes with noise.
Every draw comes from one seeded `numpy.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dag.resources import lambda_cpus
from traces.io import TraceSet
from traces.schema import make_frame

MB = 1 << 20


@dataclass(frozen=True, slots=True)
class FunctionTruth:
    """Ground truth of one function.

    ``exec_ms = exec_ms_at_1mb * (input_bytes / 1 MiB) ** io_exponent * cpus ** cpu_exponent
    * exp(drift_per_run * run) * LogNormal(0, exec_sigma)`` and ``output_bytes =
    output_ratio_at_1mb * MiB * (input_bytes / 1 MiB) ** output_exponent * LogNormal(0,
    output_sigma)``.
    """

    exec_ms_at_1mb: float
    io_exponent: float
    cpu_exponent: float
    output_ratio_at_1mb: float = 1.0
    output_exponent: float = 1.0
    exec_sigma: float = 0.25
    output_sigma: float = 0.1


#: A mixed default: sub-linear, linear and super-linear functions with different cpu scaling.
DEFAULT_TRUTH: Mapping[str, FunctionTruth] = {
    "parse": FunctionTruth(40.0, 0.8, -0.7, 0.5, 1.0),
    "sort": FunctionTruth(25.0, 1.15, -0.45, 1.0, 1.0),
    "aggregate": FunctionTruth(60.0, 0.6, -0.9, 0.05, 0.5),
    "render": FunctionTruth(120.0, 0.4, -0.2, 2.0, 0.8),
}


def synthetic_traces(
    truth: Mapping[str, FunctionTruth] = DEFAULT_TRUTH,
    *,
    n_runs: int = 20,
    tasks_per_run: int = 200,
    drift_per_run: float = 0.0,
    memory_mb: Sequence[int] = (512, 1024, 1769, 3008, 5307),
    input_bytes_range: tuple[float, float] = (1e4, 1e8),
    cold_fraction: float = 0.2,
    bandwidth_bytes_per_ms: float = 8e4,
    latency_ms: float = 3.0,
    seed: int | None = 0,
    run_prefix: str = "run",
) -> TraceSet:
    """Runs of independent tasks drawn from `truth`, as a TraceSet (tasks and runs tables).

    Each task draws a function, a log-uniform input size and a memory size (cpus by the Lambda
    rule); cold starts take ~250 ms, warm ~4 ms; transfers take ``latency_ms + bytes /
    bandwidth`` with 10% noise.
    """
    rng = np.random.default_rng(seed)
    names = list(truth)
    n = n_runs * tasks_per_run
    run = np.repeat(np.arange(n_runs), tasks_per_run)
    fidx = rng.integers(0, len(names), n)
    lo, hi = np.log(input_bytes_range[0]), np.log(input_bytes_range[1])
    input_bytes = np.exp(rng.uniform(lo, hi, n)).round().astype(np.int64)
    midx = rng.integers(0, len(memory_mb), n)
    mem = np.asarray(memory_mb, dtype=np.int64)[midx]
    cpus = np.array([lambda_cpus(int(m)) for m in memory_mb])[midx]
    t = [truth[name] for name in names]
    a = np.array([x.exec_ms_at_1mb for x in t])[fidx]
    b = np.array([x.io_exponent for x in t])[fidx]
    c = np.array([x.cpu_exponent for x in t])[fidx]
    se = np.array([x.exec_sigma for x in t])[fidx]
    d = np.array([x.output_ratio_at_1mb for x in t])[fidx]
    e = np.array([x.output_exponent for x in t])[fidx]
    so = np.array([x.output_sigma for x in t])[fidx]
    rel = input_bytes / MB
    exec_ms = a * rel**b * cpus**c * np.exp(drift_per_run * run + se * rng.standard_normal(n))
    output_bytes = (d * MB * rel**e * np.exp(so * rng.standard_normal(n))).round().astype(np.int64)
    cold = rng.random(n) < cold_fraction
    startup_ms = np.where(
        cold,
        250.0 * np.exp(0.2 * rng.standard_normal(n)),
        4.0 * np.exp(0.2 * rng.standard_normal(n)),
    )
    noise = np.exp(0.1 * rng.standard_normal((2, n)))
    download_ms = (latency_ms + input_bytes / bandwidth_bytes_per_ms) * noise[0]
    upload_ms = (latency_ms + output_bytes / bandwidth_bytes_per_ms) * noise[1]
    start = np.zeros(n)
    inputs_done = start + startup_ms + download_ms
    exec_done = inputs_done + exec_ms
    end = exec_done + upload_ms
    run_ids = np.array([f"{run_prefix}{i:04d}" for i in range(n_runs)], dtype=object)
    tasks = make_frame(
        "tasks",
        {
            "run_id": run_ids[run],
            "workflow": np.full(n, "synthetic", dtype=object),
            "dag_hash": np.full(n, "synthetic", dtype=object),
            "task_id": np.array([f"t{i}" for i in range(tasks_per_run)] * n_runs, dtype=object),
            "function": np.array(names, dtype=object)[fidx],
            "worker_id": np.array([f"w{i}" for i in range(tasks_per_run)] * n_runs, dtype=object),
            "memory_mb": mem,
            "cpus": cpus,
            "ready_ms": start,
            "start_ms": start,
            "inputs_done_ms": inputs_done,
            "exec_done_ms": exec_done,
            "end_ms": end,
            "startup": np.where(cold, "cold", "warm").astype(object),
            "startup_ms": startup_ms,
            "input_bytes": input_bytes,
            "download_bytes": input_bytes,
            "download_ms": download_ms,
            "exec_ms": exec_ms,
            "output_bytes": output_bytes,
            "upload_ms": upload_ms,
        },
    )
    makespan = pd.Series(end).groupby(run).max().reindex(range(n_runs), fill_value=0.0)
    runs = make_frame(
        "runs",
        {
            "run_id": run_ids,
            "workflow": np.full(n_runs, "synthetic", dtype=object),
            "dag_hash": np.full(n_runs, "synthetic", dtype=object),
            "seed": np.full(n_runs, -1 if seed is None else seed, dtype=np.int64),
            "makespan_ms": makespan.to_numpy(),
            "n_workers": np.full(n_runs, tasks_per_run, dtype=np.int64),
            "n_cold": np.bincount(run, weights=cold, minlength=n_runs).astype(np.int64),
        },
    )
    return TraceSet(tasks, None, runs)
