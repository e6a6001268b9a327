"""Step 2, the fit: a calibration's samples turned into `sim.Platform` fields (`fit_platform`).

- start-ups (`fit_startups`): cold starts of every memory size pooled into one lognormal
  (`fit_lognormal`; the platform model has one distribution for every config), warm start and
  invocation latency as medians, each less the ``DryRun`` round trip;
- transfers (`fit_transfer`): ``ms = latency + nbytes / bandwidth`` per direction, on relative
  residuals; the store's own bandwidth from the bytes its thread moved per CPU-ms;
- worker overheads (`fit_worker_overheads`): CPU per task, per invocation and per store
  command from the no-op workflows' runs; on a shared host ``store_op_ms`` is the larger of a
  command's round trip alone and its CPU inside runs;
- the host: the median measured parallelism within [1, `host_cpus`], and Linux's default time
  slice for that many CPUs (`scheduler_slice_ms`, not measured).

`Calibration` holds the samples, the fitted fields and what was measured where.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Calibration:
    """Samples of one calibration run and the platform fields fitted on them.

    Attributes
    ----------
    samples : dict of str to list of float
        Raw samples, ms: ``cold_start_ms@<MB>``, ``warm_start_ms@<MB>``, ``invoke_ms``,
        ``store_op_ms``, ``pubsub_ms``, ``dryrun_ms``; and ``upload``, ``download``: lists of
        ``[nbytes, ms]`` pairs.
    fields : dict
        `sim.Platform` fields fitted from the samples.
    meta : dict
        Machine and settings (backend, memory sizes, emulator limits, wall time).
    """

    samples: dict[str, list[Any]] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"samples": self.samples, "fields": self.fields, "meta": self.meta}, indent=1
        )


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no samples")
    mid = n // 2
    return float(ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2)


def fit_lognormal(samples_ms: Sequence[float]) -> tuple[float, float]:
    """(median ms, log-space sigma) of positive samples.

    Raises
    ------
    ValueError
        If there are no samples or one is not > 0.
    """
    if not samples_ms or min(samples_ms) <= 0:
        raise ValueError(f"a lognormal fit needs positive samples, got {list(samples_ms)!r}")
    logs = [math.log(v) for v in samples_ms]
    mean = sum(logs) / len(logs)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in logs) / max(len(logs) - 1, 1))
    return math.exp(_median(logs)), sigma


def fit_transfer(pairs: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(latency ms, bandwidth bytes/ms) of ``ms = latency + nbytes / bandwidth``, fitted on the
    median time per size by least squares of the *relative* residuals.

    Every size counts alike: an absolute fit over sizes of 1 kB to 16 MB is the largest size's
    alone, and where per-byte cost is not linear in the size it misses the others by a factor.
    On one machine (2026-11-29) a 16 MB object moved at 270 kB/ms and 0.25-4 MB ones at
    620-700 kB/ms up; the absolute fit put a 1.6 MB upload at 2.6x its measured time. The
    latency is at least 0 (refitted through the origin when the fit gives less).

    Raises
    ------
    ValueError
        With fewer than two distinct sizes, or a median time that is not > 0.
    """
    by_size: dict[int, list[float]] = {}
    for nbytes, ms in pairs:
        by_size.setdefault(int(nbytes), []).append(float(ms))
    if len(by_size) < 2:
        raise ValueError("a transfer fit needs at least two object sizes")
    xs = sorted(by_size)
    ys = [_median(by_size[x]) for x in xs]
    if min(ys) <= 0:
        size = xs[ys.index(min(ys))]
        raise ValueError(f"a transfer fit needs times > 0; {size} bytes took {min(ys)} ms")
    import numpy as np

    # Minimise sum(((latency + slope * x) / y - 1) ** 2): least squares of the columns 1 / y
    # and x / y against ones.
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ones = np.ones_like(y)
    (latency, slope), *_ = np.linalg.lstsq(np.column_stack([1 / y, x / y]), ones, rcond=None)
    if latency < 0:
        latency, ((slope,), *_) = 0.0, np.linalg.lstsq((x / y)[:, None], ones, rcond=None)
    return float(latency), 1.0 / max(float(slope), 1e-9)


def host_cpus() -> int:
    """CPUs this process may run on (the emulator's workers inherit them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fit_worker_overheads(
    samples: dict[str, list[Any]], invoke_ms: float, pubsub_ms: float = 0.0
) -> dict[str, float]:
    """``worker_setup_ms``, ``task_overhead_ms``, ``invocation_cpu_ms`` and
    ``store_command_cpu_ms`` from the samples of `bench_worker_overheads` (all zero when absent).

    A run's busy CPU is ``c + n_tasks * t + n_workers * w + n_commands * s + n_publishes * p``
    (``c``: the client's fixed work). The four no-op workflows (a chain on one worker, one of
    twice the length, a fan-out of one-task workers, a chain relayed between two workers) give
    four equations in ``c, t, w, s`` (medians per workflow); ``p`` is the measured publish
    latency, as the simulator charges it. Of ``w``, the worker's setup (measured on its path)
    and the invoke call are modelled where they happen; the rest is the platform's own work per
    invocation (`invocation_cpu_ms`). ``s`` is what one store command costs inside a run
    (client library, Redis, the wake-ups around it): more than a command's round trip in a
    tight loop.
    """
    zero = {
        "worker_setup_ms": 0.0,
        "task_overhead_ms": 0.0,
        "invocation_cpu_ms": 0.0,
        "store_command_cpu_ms": 0.0,
    }
    shapes = [k for k in sorted(samples) if k.startswith("overhead_")]
    if len(shapes) < 4:
        return zero
    import numpy as np

    # Per workflow: median busy CPU and counts (tasks, workers, commands, publishes).
    medians = np.array([np.median(np.asarray(samples[k], dtype=float), axis=0) for k in shapes])
    cpu, tasks, workers, commands, publishes = medians.T
    setup = _median(samples["worker_setup_ms"])
    unexplained = cpu - publishes * pubsub_ms
    design = np.column_stack([np.ones_like(cpu), tasks, workers, commands])
    (_, per_task, per_worker, per_command), *_ = np.linalg.lstsq(design, unexplained, rcond=None)
    return {
        "worker_setup_ms": round(setup, 3),
        "task_overhead_ms": round(max(float(per_task), 0.0), 4),
        "invocation_cpu_ms": round(max(float(per_worker) - setup - invoke_ms, 0.0), 3),
        "store_command_cpu_ms": round(max(float(per_command), 0.0), 4),
    }


def fit_startups(samples: dict[str, list[Any]]) -> dict[str, float]:
    """The start-up fields from ``cold_start_ms@<MB>``, ``warm_start_ms@<MB>``, ``invoke_ms``
    and ``dryrun_ms`` samples: cold starts of every memory size pooled into one lognormal (the
    platform model has one distribution), warm start and invoke latency medians over sizes,
    each start-up less the DryRun round trip (the API alone)."""
    dryrun = _median(samples["dryrun_ms"])
    cold = [max(v - dryrun, 1e-3) for k, vs in samples.items() if k.startswith("cold_") for v in vs]
    warm = [max(v - dryrun, 0.0) for k, vs in samples.items() if k.startswith("warm_") for v in vs]
    median, sigma = fit_lognormal(cold)
    warm_ms = _median(warm)
    return {
        "cold_start_median_ms": round(median, 3),
        "cold_start_sigma": round(sigma, 4),
        "cold_start_min_ms": round(0.5 * min(cold), 3),
        "warm_start_ms": round(warm_ms, 3),
        "invoke_latency_ms": round(max(_median(samples["invoke_ms"]) - warm_ms, 0.0), 3),
    }


def fit_platform(samples: dict[str, list[Any]], *, keep_alive_s: float, concurrency: int) -> dict:
    """`sim.Platform` fields from calibration samples (see `Calibration.samples`); start-ups
    by `fit_startups`."""
    startups = fit_startups(samples)
    warm_ms, invoke_ms = startups["warm_start_ms"], startups["invoke_latency_ms"]
    up_latency, up_bw = fit_transfer(samples["upload"])
    down_latency, down_bw = fit_transfer(samples["download"])
    pubsub = _median(samples["pubsub_ms"])
    overheads = fit_worker_overheads(samples, invoke_ms + warm_ms, pubsub)
    # In a tight loop a command is a short round trip; inside runs it costs more CPU (see
    # fit_worker_overheads), and on a shared host the simulator charges store_op_ms as CPU.
    latency = _median(samples["store_op_ms"])
    store_op = max(latency, overheads.pop("store_command_cpu_ms"))
    bandwidth = _fit_store_bandwidth(samples, up_bw, down_bw)
    return {
        **startups,
        "keep_alive_ms": float(keep_alive_s) * 1000.0,
        "concurrency_limit": int(concurrency),
        "store_op_ms": round(store_op, 4),
        "pubsub_ms": round(pubsub, 4),
        "store_bandwidth_bytes_per_ms": round(bandwidth, 1),
        # A lone transfer's time is its two ends' work (the fits' bandwidths, CPU-bound here).
        "upload_bytes_per_ms": round(up_bw, 1),
        "download_bytes_per_ms": round(down_bw, 1),
        # Loopback: a worker's link does not depend on its memory and is never the bottleneck.
        "link_bytes_per_ms_per_gb": math.inf,
        "link_min_bytes_per_ms": 0.0,
        "link_max_bytes_per_ms": math.inf,
        # Workers, emulator, Redis and client share this machine's cores.
        "host_cpus": _fit_host_cpus(samples),
        "host_quantum_ms": scheduler_slice_ms(),
        **overheads,
        # Kept for the report (not Platform fields):
        "_upload_latency_ms": round(up_latency, 4),
        "_download_latency_ms": round(down_latency, 4),
        "_store_op_latency_ms": round(latency, 4),
    }


def _fit_store_bandwidth(samples: dict[str, list[Any]], up_bw: float, down_bw: float) -> float:
    """What the store itself moves per ms, shared by every transfer: the bytes its (single)
    thread moved per CPU-ms during the transfer benchmark, and never below the rate at which it
    served one transfer alone. Concurrent transfers are bound by their ends' CPU, not by the
    store: here 4 clients together moved 1.3-1.8x what one did (``benchmarks/store_transfers.py``).

    Without a server CPU measurement, the harmonic mean of the two directions' bandwidths
    (moves a byte up and down in the measured total time), as presets before 2026-11-28.
    """
    lone = max(up_bw, down_bw)
    measured = samples.get("store_server_cpu")
    if measured:
        moved = sum(float(b) for b, _ in measured)
        cpu_ms = sum(float(c) for _, c in measured)
        if cpu_ms > 0:
            return max(moved / cpu_ms, lone)
        return math.inf
    return 2.0 / (1.0 / up_bw + 1.0 / down_bw)


def _fit_host_cpus(samples: dict[str, list[Any]]) -> float:
    """Median measured parallelism (``host_parallelism`` samples), within [1, `host_cpus`];
    the CPU count when nothing was measured."""
    measured = samples.get("host_parallelism")
    if not measured:
        return float(host_cpus())
    return round(min(max(_median(measured), 1.0), float(host_cpus())), 3)


def scheduler_slice_ms(cpus: int | None = None) -> float:
    """Linux's default time slice on a machine of `cpus` CPUs (default: this one's), ms.

    The kernel's base slice (EEVDF; CFS's minimum granularity before it) is 0.75 ms scaled by
    ``1 + floor(log2(min(cpus, 8)))``: 1.5 ms on two CPUs. Not measured: recorded validations
    simulated again with slices of 1.5, 3 and 6 ms scored alike (errors and rank agreement).
    """
    cpus = cpus or host_cpus()
    return 0.75 * (1 + int(math.log2(min(max(cpus, 1), 8))))
