"""Calibration of a platform preset for AWS Lambda (``faasdag calibrate --backend lambda``).

What is measured, through the Lambda API (AWS's, or any endpoint that speaks it: the tests use
the local emulator), for each memory size:

- start-ups: probe functions (`runtime.lambda_probe`) created for the calibration, as
  `runtime.calibrate.bench_startups` times them on the emulator: a synchronous invoke from the
  call to the handler's first line, minus a ``DryRun``'s round trip; cold on a new function's
  first invoke, warm after;
- invocation latency: an asynchronous (``Event``) invoke, from the call to the handler's first
  line (which the probe writes to the Redis), minus the warm start-up;
- the store, from inside a warm probe container (`runtime.calibrate.bench_store`), because a
  worker's view of Redis is the one that counts: command and pub/sub round trips, upload and
  download time against object size, and the Redis server's CPU (``INFO cpu``, where the
  service tells).

The start-up and invoke timings compare this machine's clock with Lambda's: keep it synchronised
(NTP), as an offset goes into them. Not measured, and kept from the ``aws-lambda`` preset: the
keep-alive, the concurrency limit, the link model (bandwidth per GB of memory) and the worker's
own CPU costs (remote containers have no CPU counters to read). Containers have CPUs of their
own (``host_cpus = inf``). The probe functions are deleted at the end, also on failure.
"""

from __future__ import annotations

import json
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
    _event_ms,
    _fit_store_bandwidth,
    _median,
    _sync_ms,
    fit_lognormal,
    fit_transfer,
)
from runtime.lambda_backend import (
    LambdaBackend,
    _is_loopback,
    backend_environment,
    release_connection,
)

log = logging.getLogger(__name__)

#: Name prefix of the probe functions (inside the ``faasdag-*`` names of `iam_policy`).
PROBE_PREFIX = "faasdag-calibrate"
#: Longest wait for a new function to become active, s.
ACTIVE_TIMEOUT_S = 120.0
#: Platform fields a Lambda calibration keeps from the ``aws-lambda`` preset (not measured).
KEPT_FROM_AWS = (
    "keep_alive_ms",
    "concurrency_limit",
    "link_bytes_per_ms_per_gb",
    "link_min_bytes_per_ms",
    "link_max_bytes_per_ms",
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
        A Redis that the functions and this machine both reach.
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
    client = LambdaBackend(endpoint_url, region_name).client
    code = _probe_code(zip_path, install=not (endpoint_url and _is_loopback(endpoint_url)))
    environment = backend_environment(endpoint_url, region_name)
    redis_client = connect(redis_url)
    run = uuid.uuid4().hex[:6]
    samples: dict[str, list[Any]] = {
        key: [] for key in ("dryrun_ms", "invoke_ms", "store_op_ms", "pubsub_ms")
    }
    created: list[str] = []
    try:
        for memory_mb in memory_sizes:
            names = [f"{PROBE_PREFIX}-{memory_mb}-{run}-{i}" for i in range(n_cold)]
            cold = samples[f"cold_start_ms@{memory_mb}"] = []
            for name in names:
                _create_probe(client, name, memory_mb, code, role_arn, environment)
                created.append(name)
                cold.append(_sync_ms(client, name, {}))
            warm = samples[f"warm_start_ms@{memory_mb}"] = []
            for _ in range(n_warm):
                warm.append(_sync_ms(client, names[0], {}))
                samples["invoke_ms"].append(_event_ms(client, redis_client, redis_url, names[0]))
                start = time.perf_counter()
                release_connection(client.invoke(FunctionName=names[0], InvocationType="DryRun"))
                samples["dryrun_ms"].append((time.perf_counter() - start) * 1000.0)
            bench = {"redis_url": redis_url, "sizes": list(sizes), "n_ops": n_ops}
            store = _invoke_json(
                client, names[0], {"bench_store": {**bench, "n_transfers": n_transfers}}
            )["samples"]
            for key in ("store_op_ms", "pubsub_ms"):
                samples[key] += store[key]
            samples[f"upload@{memory_mb}"] = store["upload"]
            samples[f"download@{memory_mb}"] = store["download"]
            samples.setdefault("store_server_cpu", []).extend(store.get("store_server_cpu", []))
    finally:
        for name in created:
            try:
                client.delete_function(FunctionName=name)
            except Exception as err:  # noqa: BLE001 (the others still go)
                log.warning("could not delete the probe function %s: %s", name, err)
    fields = fit_lambda_platform(samples, memory_sizes)
    meta = {
        "backend": "lambda",
        "endpoint_url": endpoint_url,
        "region": region_name,
        "host": host_platform.node(),
        "date": time.strftime("%Y-%m-%d"),
        "memory_sizes": list(memory_sizes),
        "wall_s": time.perf_counter() - started,
    }
    meta["notes"] = _notes(samples, fields, meta)
    return Calibration(samples=samples, fields=fields, meta=meta)


def fit_lambda_platform(samples: dict[str, list[Any]], memory_sizes: Sequence[int]) -> dict:
    """`sim.Platform` fields from `calibrate_lambda`'s samples.

    Start-ups as on the emulator (`runtime.calibrate.fit_platform`: cold starts of every size
    pooled into one lognormal). A lone transfer's own rates are the medians over the memory
    sizes of each size's fit (``latency + nbytes / bandwidth``); the store's shared bandwidth
    is what its thread moved per CPU-ms, or without that the two rates' harmonic mean.
    """
    from sim.platform import Platform

    dryrun = _median(samples["dryrun_ms"])
    cold = [max(v - dryrun, 1e-3) for k, vs in samples.items() if k.startswith("cold_") for v in vs]
    warm = [max(v - dryrun, 0.0) for k, vs in samples.items() if k.startswith("warm_") for v in vs]
    median, sigma = fit_lognormal(cold)
    warm_ms = _median(warm)
    fits = {
        direction: [fit_transfer(samples[f"{direction}@{m}"]) for m in memory_sizes]
        for direction in ("upload", "download")
    }
    up_bw = _median([bandwidth for _, bandwidth in fits["upload"]])
    down_bw = _median([bandwidth for _, bandwidth in fits["download"]])
    aws = Platform.preset("aws-lambda")
    return {
        "cold_start_median_ms": round(median, 3),
        "cold_start_sigma": round(sigma, 4),
        "cold_start_min_ms": round(0.5 * min(cold), 3),
        "warm_start_ms": round(warm_ms, 3),
        "invoke_latency_ms": round(max(_median(samples["invoke_ms"]) - warm_ms, 0.0), 3),
        "store_op_ms": round(_median(samples["store_op_ms"]), 4),
        "pubsub_ms": round(_median(samples["pubsub_ms"]), 4),
        "store_bandwidth_bytes_per_ms": round(_fit_store_bandwidth(samples, up_bw, down_bw), 1),
        "upload_bytes_per_ms": round(up_bw, 1),
        "download_bytes_per_ms": round(down_bw, 1),
        **{key: getattr(aws, key) for key in KEPT_FROM_AWS},
        "host_cpus": float("inf"),
        "host_quantum_ms": 0.0,
        # Kept for the report (not Platform fields):
        "_upload_latency_ms": round(_median([lat for lat, _ in fits["upload"]]), 4),
        "_download_latency_ms": round(_median([lat for lat, _ in fits["download"]]), 4),
        "_store_op_latency_ms": round(_median(samples["store_op_ms"]), 4),
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
    """Create probe function `name` and wait until Lambda can invoke it."""
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role_arn,
        Handler=PROBE_HANDLER,
        Code={"ZipFile": code},
        MemorySize=int(memory_mb),
        Timeout=300,
        Environment={"Variables": environment},
    )
    deadline = time.monotonic() + ACTIVE_TIMEOUT_S
    while True:
        state = client.get_function(FunctionName=name)["Configuration"].get("State", "Active")
        if state == "Active":
            return
        if state == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(f"probe function {name!r} did not become active (state {state})")
        time.sleep(1.0)


def _invoke_json(client: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    body = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"probe function {name!r} failed: {body}")
    return body


def _notes(samples: dict[str, list[Any]], fields: dict[str, Any], meta: dict[str, Any]) -> list:
    """The preset's comment lines: what was measured and what was kept."""
    where = meta["endpoint_url"] or f"AWS Lambda ({meta['region']})"
    lines = [
        f"# Platform preset calibrated by `faasdag calibrate --backend lambda` against {where}",
        f"# from {meta['host']}, {meta['date']}; wall time {meta['wall_s']:.1f} s.",
        "# Times in ms, bandwidths in bytes per ms. Regenerate it rather than editing it.",
        "#",
        "# Start-ups: a synchronous invoke minus the DryRun round trip "
        f"({_median(samples['dryrun_ms']):.2f} ms). Per memory size (median ms, n):",
    ]
    for key in sorted(samples):
        if key.startswith(("cold_", "warm_")):
            lines.append(f"#   {key}: {_median(samples[key]):.1f} (n={len(samples[key])})")
    lines += [
        "# Cold starts of all sizes are pooled: the model has one distribution for every config.",
        "# The store was measured from inside a probe container of each size. Transfers fit",
        f"# ms = latency + bytes / bandwidth: upload {fields['_upload_latency_ms']} ms + bytes /"
        f" {fields['upload_bytes_per_ms']}, download {fields['_download_latency_ms']} ms + bytes /"
        f" {fields['download_bytes_per_ms']} (medians over the sizes).",
        "# Kept from the aws-lambda preset (not measured):",
        f"#   {', '.join(KEPT_FROM_AWS[:5])},",
        f"#   {', '.join(KEPT_FROM_AWS[5:])}.",
        "# Containers have CPUs of their own (host_cpus = inf). Prices are AWS Lambda's.",
        "",
    ]
    return lines
