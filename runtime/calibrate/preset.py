"""Step 3, the preset: a calibration written as a platform preset TOML (`write_preset`).

The preset holds the calibrated fields (`CALIBRATED_FIELDS`) and AWS Lambda's prices
(`AWS_PRICES`: the emulator has no billing), after comment lines on what was measured: the
start-up samples per memory size (the model has one cold-start distribution for every
config), the transfer fits, where the overheads and host CPUs come from. ``Platform.preset
(path)`` loads it; the raw samples are written next to it as ``.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from runtime.calibrate.fit import Calibration, _median, host_cpus

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
