"""What a trace row is made of: which effects count as a task's exec, download, upload or
coordination, which are store commands, the fields of the task and worker rows, and the small
helpers the recorder (`worker.recording`) builds rows with."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from worker.effects import (
    Download,
    Execute,
    Exists,
    Get,
    Incr,
    Invoke,
    Publish,
    SetIfAbsent,
    StreamDownload,
    StreamUpload,
    Upload,
)

# What each effect's time counts as in a task's row (other effects are not attributed).
_KIND = {
    Execute: "exec",
    Download: "down",
    StreamDownload: "down",
    Upload: "up",
    StreamUpload: "up",
    **dict.fromkeys((Incr, Publish, SetIfAbsent, Invoke, Get), "dc"),
}
#: The worker id every driver gives the client (its effects run outside any worker).
CLIENT = "client"
#: Effects that are one command to the store each (a publish is counted apart).
STORE_COMMANDS = frozenset(
    (Download, StreamDownload, Upload, StreamUpload, Get, Incr, SetIfAbsent, Exists)
)
#: Column order of `TraceRecorder.task_columns` (and of each `task_rows` dict).
TASK_FIELDS = (
    "task_id",
    "function",
    "worker_id",
    "memory_mb",
    "cpus",
    "attempt",
    "ready_ms",
    "start_ms",
    "inputs_done_ms",
    "exec_done_ms",
    "end_ms",
    "startup",
    "startup_ms",
    "input_bytes",
    "download_bytes",
    "download_ms",
    "exec_ms",
    "output_bytes",
    "upload_ms",
    "dc_ms",
    "duplicated",
    "streamed",
)
#: Column order of `TraceRecorder.worker_columns` (and of each `worker_rows` dict).
WORKER_FIELDS = (
    "worker_id",
    "memory_mb",
    "cpus",
    "startup",
    "invoked_ms",
    "ready_ms",
    "end_ms",
    "billed_ms",
)

# Per effect type: (counted as a store command, counted as a publish, kind code).
_EXEC, _DOWN, _UP, _DC = 1, 2, 3, 4
_CODES = {"exec": _EXEC, "down": _DOWN, "up": _UP, "dc": _DC}
_INFO: dict[type, tuple[bool, bool, int]] = {}


def _info(kind: type) -> tuple[bool, bool, int]:
    found = _INFO.get(kind)
    if found is None:
        found = _INFO[kind] = (
            kind in STORE_COMMANDS,
            kind is Publish,
            _CODES.get(_KIND.get(kind, ""), 0),
        )
    return found


def _ignore(worker_id: str, effect: Any, start_ms: float, end_ms: float, nbytes: int = 0) -> None:
    """Records nothing: an effect that no task row counts."""


def _union_ms(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals, ms (parallel downloads count once)."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def _rows(columns: dict[str, Any], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row dicts (plain Python values) from columns."""
    values = [
        columns[name].tolist() if isinstance(columns[name], np.ndarray) else columns[name]
        for name in fields
    ]
    return [dict(zip(fields, row, strict=True)) for row in zip(*values, strict=True)]
