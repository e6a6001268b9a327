"""The decisions behind each optimization flag; `worker.branch` asks these where a flag may
change the default rules.

Every flag is declared on the plan (`dag.plan.OPTIMIZATIONS`) and has its behaviour here, once,
so the simulator costs it exactly as the real executor performs it:

- pre-warm (global): the client sends a warm-up invocation of ``config`` at ``at_ms``.
- pre-load (on a consumer): while waiting, download each input as soon as it is stored.
- task-dup (on a consumer): run a missing upstream here when predicted to beat waiting for it
  (`should_duplicate`); the first result claims the task, the other is ignored.
- output-streaming (on a producer): upload in chunks; a consumer already waiting reads each
  chunk as it arrives.
- fan-out-clustering (on a producer): keep ready children with small predicted exec time or a
  large input on this worker instead of invoking new workers (`kept_consumers`).
- fan-in-clustering (on a producer): with a large output, count a flexible fan-in before
  uploading; if this completes it, run it here and skip the upload (`count_before_upload`).
- delayed-io (on a producer): with a large output, first run the consumers kept here, then do
  the rest of the I/O, counting fan-ins first (`delays_io`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dag.resources import ResourceConfig
from worker.effects import (
    Execute,
    Exists,
    Get,
    Incr,
    Now,
    SetIfAbsent,
    StreamDownload,
    StreamUpload,
    TaskOutput,
    WaitAny,
    Warmup,
)
from worker.schedule import Schedule, began_key, output_key

if TYPE_CHECKING:
    from worker.branch import Invocation

DEFAULT_CHUNK_BYTES = 1 << 20
DEFAULT_MAX_EXEC_MS = 50.0
DEFAULT_MIN_OUTPUT_BYTES = 10 << 20

#: The effects each flag adds to a run when it acts (the rest of the logic is unchanged).
OPTIMIZATION_EFFECTS: dict[str, tuple[type, ...]] = {
    "pre-warm": (Warmup,),
    "pre-load": (WaitAny,),
    "task-dup": (Get, Now, SetIfAbsent, Execute),
    "output-streaming": (StreamUpload, StreamDownload),
    "fan-out-clustering": (),
    "fan-in-clustering": (Incr,),
    "delayed-io": (Incr,),
}


@dataclass(frozen=True, slots=True)
class Deferred:
    """The I/O of a task postponed by delayed I/O until the consumers kept here have run."""

    task_id: str
    output: TaskOutput
    elsewhere: tuple[str, ...]
    count_first: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WarmupRequest:
    config: ResourceConfig
    delay_ms: float


def _is_flexible_here(schedule: Schedule, task_id: str, me: Invocation) -> bool:
    return schedule.worker_of[task_id] is None and me.worker_id not in schedule.local_order


def _large_output(schedule: Schedule, flag: str, task_id: str, output: TaskOutput) -> bool:
    found = schedule.plan.enabled(flag, task_id)
    if found is None:
        return False
    return output.nbytes >= int(found.params.get("min_output_bytes", DEFAULT_MIN_OUTPUT_BYTES))


def kept_consumers(
    schedule: Schedule, task_id: str, output: TaskOutput, me: Invocation
) -> list[str]:
    """Consumers a flexible worker runs next itself: the first ready flexible consumer of its
    config (WUKONG's continuation) plus, with fan-out clustering, every other ready one whose
    predicted exec time is at most ``max_exec_ms`` or whose input is at least
    ``min_input_bytes``."""
    if not _is_flexible_here(schedule, task_id, me):
        return []
    candidates = [
        c
        for c in schedule.dag.successors(task_id)
        if schedule.worker_of[c] is None
        and len(schedule.counted[c]) == 1
        and schedule.config_of[c] == me.config
    ]
    if not candidates:
        return []
    kept = candidates[:1]
    clustering = schedule.plan.enabled("fan-out-clustering", task_id)
    if clustering is None:
        return kept
    max_exec_ms = clustering.params.get("max_exec_ms", DEFAULT_MAX_EXEC_MS)
    min_input_bytes = clustering.params.get("min_input_bytes")
    for consumer in candidates[1:]:
        large_input = min_input_bytes is not None and output.nbytes >= min_input_bytes
        small = (
            schedule.estimates is not None
            and max_exec_ms is not None
            and schedule.estimates.exec_ms(consumer, me.config) <= max_exec_ms
        )
        if large_input or small:
            kept.append(consumer)
    return kept


def count_before_upload(
    schedule: Schedule, task_id: str, output: TaskOutput, me: Invocation, elsewhere: list[str]
) -> list[str]:
    """Flexible fan-ins this worker counts before uploading (so it may run them without ever
    uploading): with fan-in clustering or delayed I/O and a large output."""
    if not _is_flexible_here(schedule, task_id, me):
        return []
    if not (
        _large_output(schedule, "fan-in-clustering", task_id, output)
        or _large_output(schedule, "delayed-io", task_id, output)
    ):
        return []
    return [
        c
        for c in elsewhere
        if schedule.worker_of[c] is None
        and len(schedule.counted[c]) > 1
        and schedule.config_of[c] == me.config
    ]


def delays_io(schedule: Schedule, task_id: str, output: TaskOutput, me: Invocation) -> bool:
    """Delayed I/O acts on a flexible worker after a task with a large output."""
    return _is_flexible_here(schedule, task_id, me) and _large_output(
        schedule, "delayed-io", task_id, output
    )


def should_duplicate(
    schedule: Schedule, consumer: str, upstream: str, me: Invocation
) -> Generator[Any, Any, bool]:
    """Task-dup decision for `consumer` (on `me`) waiting for `upstream` on another worker.

    Duplicate when every input of `upstream` is stored and the predicted local time (download
    its inputs + exec here) plus ``min_gain_ms`` beats the predicted remaining remote time
    (rest of its exec, or start-up + exec if it has not begun; + upload + download).
    """
    estimates = schedule.estimates
    deps = schedule.dag.predecessors(upstream)
    for dep in deps:
        if not (yield Exists(key=output_key(dep), task_id=consumer)):
            return False
    began_ms = yield Get(key=began_key(upstream), task_id=consumer)
    now_ms = yield Now()
    remote_config = schedule.config_of[upstream]
    exec_remote = estimates.exec_ms(upstream, remote_config)
    if began_ms is None:
        remaining = estimates.startup_ms(remote_config) + exec_remote
    else:
        remaining = max(0.0, exec_remote - (now_ms - float(began_ms)))
    nbytes = estimates.output_bytes(upstream)
    remote_ms = (
        remaining
        + estimates.transfer_ms(nbytes, remote_config)
        + estimates.transfer_ms(nbytes, me.config)
    )
    local_ms = estimates.exec_ms(upstream, me.config) + sum(
        estimates.transfer_ms(estimates.output_bytes(d), me.config) for d in deps
    )
    flag = schedule.plan.enabled("task-dup", consumer)
    min_gain_ms = float(flag.params.get("min_gain_ms", 0.0)) if flag is not None else 0.0
    return local_ms + min_gain_ms < remote_ms


def prewarm_requests(schedule: Schedule) -> list[WarmupRequest]:
    """The client's warm-up invocations: one per pre-warm flag (config, at_ms)."""
    requests = []
    for flag in schedule.plan.optimizations:
        if flag.name != "pre-warm":
            continue
        config = flag.params.get("config")
        if isinstance(config, int | str):
            config = ResourceConfig.parse(str(config))
        if not isinstance(config, ResourceConfig):
            raise ValueError(f"pre-warm flag needs a config, got {config!r}")
        requests.append(WarmupRequest(config, float(flag.params.get("at_ms", 0.0))))
    return requests
