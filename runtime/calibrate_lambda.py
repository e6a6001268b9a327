"""Calibration of a platform preset for AWS Lambda (``faasdag calibrate --backend lambda``).

What is measured, through the Lambda API (AWS's, or any endpoint that speaks it: the tests use
the local emulator), from inside Lambda, as a worker sees it:

- invokes, timed by a probe function (`runtime.lambda_probe.bench_invokes`) that invokes the
  other probes as one worker invokes another, as `runtime.calibrate.bench_startups` times
  them on the emulator: cold starts on the first invoke of new functions of each memory size;
  warm starts, asynchronous (``Event``) invokes and ``DryRun`` round trips of one of them;
- the store, from inside a warm probe container of each memory size
  (`runtime.calibrate.bench_store`): command and pub/sub round trips, upload and download time
  against object size, and the Redis server's CPU (``INFO cpu``, where the service tells).

Not measured, and kept from the ``aws-lambda`` preset: the keep-alive, the concurrency limit
and the worker's own CPU costs. Containers have CPUs of their own (``host_cpus = inf``). The
probe functions get the Redis URL in their environment (``FAASDAG_REDIS_URL``), as workers do:
it never travels in an Invoke payload. They are deleted at the end, also on failure; their log
groups stay.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.calibrate import (
    DEFAULT_MEMORY_MB,
    DEFAULT_SIZES,
    PROBE_HANDLER,
    Calibration,
    fit_startups,
    fit_transfer,
    invoke_probe,
    startup_notes,
)
from runtime.calibrate.fit import _fit_store_bandwidth, _median
from runtime.lambda_backend import _is_loopback, backend_environment, lambda_client

log = logging.getLogger(__name__)

#: Name prefix of the probe functions (inside the ``faasdag-*`` names of `iam_policy`).
PROBE_PREFIX = "faasdag-calibrate"
#: Longest wait for a new function to become active, s.
ACTIVE_TIMEOUT_S = 120.0
#: How long a new execution role may take to become usable by Lambda, s (IAM propagates it).
ROLE_WAIT_S = 60.0
#: The probe functions' timeout, s; the calibration's client waits a little longer.
PROBE_TIMEOUT_S = 300
#: Platform fields a Lambda calibration keeps from the ``aws-lambda`` preset (not measured).
KEPT_FROM_AWS = (
    "keep_alive_ms",
    "concurrency_limit",
    "worker_setup_ms",
    "task_overhead_ms",
    "invocation_cpu_ms",
)


def calibrate_lambda(
    redis_url: str,
    *,
    role_arn: str,
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
    memory_sizes: Sequence[int] = DEFAULT_MEMORY_MB,
    n_cold: int = 3,
    n_warm: int = 20,
    n_ops: int = 200,
    n_transfers: int = 5,
    sizes: Sequence[int] = DEFAULT_SIZES,
    zip_path: str | Path | None = None,
) -> Calibration:
    """Microbenchmarks of AWS Lambda (or the Lambda API at `endpoint_url`) and a Redis.

    Parameters
    ----------
    redis_url : str
        A Redis that the functions and this machine both reach; the functions get it in their
        environment (``FAASDAG_REDIS_URL``), never in a payload.
    role_arn : str
        Execution role of the probe functions.
    endpoint_url : str, optional
        Another Lambda API than AWS's (the local emulator).
    memory_sizes : sequence of int
        Function memory sizes to measure, MB.
    n_cold, n_warm : int
        Cold starts (new functions) per size; warm and asynchronous invokes per size.
    n_ops, n_transfers, sizes
        The store benchmark's commands per kind, transfers per size and direction, sizes.
    zip_path : path, optional
        The probe functions' code; default: `runtime.lambda_deploy.package` of this project,
        with its requirements installed for Lambda unless `endpoint_url` is on loopback (the
        emulator runs this environment's Python).
    """
    import platform as host_platform

    from runtime.store import connect

    started = time.perf_counter()
    memory_sizes = list(dict.fromkeys(int(m) for m in memory_sizes))
    connect(redis_url).ping()  # this machine reaches the Redis, before anything is created
    # One try per call, and longer than a probe may run: a retried invoke would start another
    # benchmark beside the first.
    client = lambda_client(
        endpoint_url, region_name, max_attempts=1, read_timeout_s=PROBE_TIMEOUT_S + 30
    )
    code = _probe_code(zip_path, install=not (endpoint_url and _is_loopback(endpoint_url)))
    environment = backend_environment(endpoint_url, region_name or "us-east-1", redis_url=redis_url)
    run = uuid.uuid4().hex[:6]
    samples: dict[str, list[Any]] = {
        key: [] for key in ("dryrun_ms", "invoke_ms", "store_op_ms", "pubsub_ms")
    }
    created: list[str] = []

    def create(name: str, memory_mb: int) -> None:
        created.append(name)  # before the call: a function that fails to start goes too
        _create_probe(client, name, memory_mb, code, role_arn, environment)

    try:
        timer = f"{PROBE_PREFIX}-timer-{run}"
        create(timer, memory_sizes[0])
        # Its first invoke writes to the Redis of its environment: a function error here says
        # the functions cannot reach it.
        invoke_probe(client, timer, {"key": f"faasdag:calibrate:{run}"})
        for memory_mb in memory_sizes:
            names = [f"{PROBE_PREFIX}-{memory_mb}-{run}-{i}" for i in range(n_cold)]
            for name in names:
                create(name, memory_mb)
            request = {"cold": names, "warm": names[0], "n_warm": n_warm}
            timed = invoke_probe(client, timer, {"bench_invokes": request})["samples"]
            samples[f"cold_start_ms@{memory_mb}"] = timed["cold"]
            samples[f"warm_start_ms@{memory_mb}"] = timed["warm"]
            samples["invoke_ms"] += timed["invoke"]
            samples["dryrun_ms"] += timed["dryrun"]
            bench = {"sizes": list(sizes), "n_ops": n_ops}
            store = invoke_probe(
                client, names[0], {"bench_store": {**bench, "n_transfers": n_transfers}}
            )
            if store["memory_mb"] != memory_mb:
                raise RuntimeError(
                    f"probe function {names[0]!r} ran with {store['memory_mb']} MB, not {memory_mb}"
                )
            for key in ("store_op_ms", "pubsub_ms"):
                samples[key] += store["samples"][key]
            samples[f"upload@{memory_mb}"] = store["samples"]["upload"]
            samples[f"download@{memory_mb}"] = store["samples"]["download"]
            cpu = store["samples"].get("store_server_cpu", [])
            samples.setdefault("store_server_cpu", []).extend(cpu)
    finally:
        for name in created:
            _delete_probe(client, name)
    fields = fit_lambda_platform(samples, memory_sizes)
    meta = {
        "backend": "lambda",
        "endpoint_url": endpoint_url,
        "region": region_name,
        "host": host_platform.node(),
        "date": time.strftime("%Y-%m-%d"),
        "memory_sizes": memory_sizes,
        "wall_s": time.perf_counter() - started,
    }
    meta["notes"] = _notes(samples, fields, meta)
    return Calibration(samples=samples, fields=fields, meta=meta)


def fit_lambda_platform(samples: dict[str, list[Any]], memory_sizes: Sequence[int]) -> dict:
    """`sim.Platform` fields from `calibrate_lambda`'s samples.

    Start-ups as on the emulator (`runtime.calibrate.fit_startups`). Transfers: each size's fit of ``latency + nbytes / bandwidth``
    per direction. A lone transfer's own rates (the ends' work) are the fastest size's; a
    worker's link, which scales with memory on AWS, carries the faster direction's rate of each
    size: its bandwidth per GB is their median per GB of memory, bounded by the slowest and the
    fastest size's (so that rates that do not grow with memory stay flat). The store's shared
    bandwidth is what its thread moved per CPU-ms, or without that the two rates' harmonic
    mean.
    """
    from sim.platform import Platform

    fits = {
        direction: {m: fit_transfer(samples[f"{direction}@{m}"]) for m in memory_sizes}
        for direction in ("upload", "download")
    }
    up_bw = max(bandwidth for _, bandwidth in fits["upload"].values())
    down_bw = max(bandwidth for _, bandwidth in fits["download"].values())
    link = {m: max(fits["upload"][m][1], fits["download"][m][1]) for m in memory_sizes}
    aws = Platform.preset("aws-lambda")
    return {
        **fit_startups(samples),
        "store_op_ms": round(_median(samples["store_op_ms"]), 4),
        "pubsub_ms": round(_median(samples["pubsub_ms"]), 4),
        "store_bandwidth_bytes_per_ms": round(_fit_store_bandwidth(samples, up_bw, down_bw), 1),
        "upload_bytes_per_ms": round(up_bw, 1),
        "download_bytes_per_ms": round(down_bw, 1),
        "link_bytes_per_ms_per_gb": round(_median([r * 1024 / m for m, r in link.items()]), 1),
        "link_min_bytes_per_ms": round(min(link.values()), 1),
        "link_max_bytes_per_ms": round(max(link.values()), 1),
        **{key: getattr(aws, key) for key in KEPT_FROM_AWS},
        "host_cpus": float("inf"),
        "host_quantum_ms": 0.0,
        # Kept for the report (not Platform fields):
        "_upload_latency_ms": round(_median([lat for lat, _ in fits["upload"].values()]), 4),
        "_download_latency_ms": round(_median([lat for lat, _ in fits["download"].values()]), 4),
        "_store_op_latency_ms": round(_median(samples["store_op_ms"]), 4),
        "_rates_by_memory": {
            m: [round(fits["upload"][m][1], 1), round(fits["download"][m][1], 1)]
            for m in memory_sizes
        },
    }


def _probe_code(zip_path: str | Path | None, *, install: bool) -> bytes:
    if zip_path is not None:
        return Path(zip_path).read_bytes()
    from runtime.lambda_deploy import package

    with tempfile.TemporaryDirectory(prefix="faasdag-calibrate-") as folder:
        return package(Path(folder) / "probe.zip", install=install).read_bytes()


def _create_probe(
    client: Any,
    name: str,
    memory_mb: int,
    code: bytes,
    role_arn: str,
    environment: dict[str, str],
) -> None:
    """Create probe function `name` and wait until Lambda can invoke it. A role that Lambda
    cannot assume yet (IAM propagates a new role within seconds) is tried again for up to
    `ROLE_WAIT_S`."""
    from botocore.exceptions import ClientError

    role_deadline = time.monotonic() + ROLE_WAIT_S
    while True:
        try:
            client.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role_arn,
                Handler=PROBE_HANDLER,
                Code={"ZipFile": code},
                MemorySize=int(memory_mb),
                Timeout=PROBE_TIMEOUT_S,
                Environment={"Variables": environment},
            )
            break
        except ClientError as err:
            if "cannot be assumed" not in str(err):
                raise
            if time.monotonic() > role_deadline:
                raise RuntimeError(
                    f"--role {role_arn!r}: Lambda cannot assume it ({err}); a new role may take "
                    "a minute to propagate, and it must trust lambda.amazonaws.com"
                ) from None
            time.sleep(5.0)
    deadline = time.monotonic() + ACTIVE_TIMEOUT_S
    while True:
        config = client.get_function(FunctionName=name)["Configuration"]
        state = config.get("State", "Active")  # the emulator's functions are active at once
        if state == "Active":
            return
        if state == "Failed" or time.monotonic() > deadline:
            reason = config.get("StateReason", "no reason given")
            raise RuntimeError(f"probe function {name!r} did not become active ({state}: {reason})")
        time.sleep(1.0)


def _delete_probe(client: Any, name: str) -> None:
    try:
        client.delete_function(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        pass  # never created (its creation failed), or gone already
    except Exception as err:  # noqa: BLE001 (the other probes still go)
        log.warning("could not delete the probe function %s: %s", name, err)


def _notes(samples: dict[str, list[Any]], fields: dict[str, Any], meta: dict[str, Any]) -> list:
    """The preset's comment lines: what was measured and what was kept."""
    where = meta["endpoint_url"] or f"AWS Lambda ({meta['region']})"
    lines = [
        f"# Platform preset calibrated by `faasdag calibrate --backend lambda` against {where}",
        f"# from {meta['host']}, {meta['date']}; wall time {meta['wall_s']:.1f} s.",
        *startup_notes(samples),
    ]
    lines += [
        "# Invokes were timed by a probe function invoking the others, as workers do.",
        "# Cold starts of all sizes are pooled: the model has one distribution for every config.",
        "# The store was measured from inside a probe container of each size. Transfers fit",
        "# ms = latency + bytes / bandwidth; [upload, download] bandwidth per memory size:",
    ]
    for memory_mb, rates in fields["_rates_by_memory"].items():
        lines.append(f"#   {memory_mb} MB: {rates}")
    lines += [
        "# Own rates: the fastest size's; links: each size's faster direction, per GB of memory.",
        "# store_bandwidth_bytes_per_ms: "
        + (
            "what the Redis thread moved per CPU-ms (INFO cpu)."
            if samples.get("store_server_cpu")
            else "the two rates' harmonic mean (the server did not tell its CPU)."
        ),
        f"# Kept from the aws-lambda preset (not measured): {', '.join(KEPT_FROM_AWS[:2])},",
        f"#   {', '.join(KEPT_FROM_AWS[2:])}.",
        "# Containers have CPUs of their own (host_cpus = inf). Prices are AWS Lambda's.",
        "",
    ]
    return lines
