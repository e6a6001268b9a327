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
- inline-subdag (on a flexible fan-out producer): its worker runs the whole small sub-DAG below
  it itself, right after it, instead of starting a worker per task (`inline_subdags`): every
  flexible task of its config predicted to run at most ``max_exec_ms`` whose inputs all come
  from the producer or the sub-DAG, down to a fan-in with a producer outside it or a task above
  the threshold. Edges inside the sub-DAG cost nothing (no upload, count, publish or invoke);
  consumers outside it are counted and started as usual (`inlined_consumers`). Unlike
  fan-out-clustering, which keeps some ready children and still uploads and counts for each of
  their consumers, it takes whole levels and fan-ins below the fan-out.
- small-results-inline (on a producer): an output of at most ``max_bytes`` travels with the
  work instead of through the store (`carried_output`): in the payload of every invocation
  this worker sends to start a flexible consumer, and in the COMPLETED message that a fixed
  consumer (or a waiting fan-in) waits for, which hands it over instead of a download. It is
  uploaded only if someone must read it from the store (`upload_needed`): the client (the
  schedule's outputs), or a flexible fan-in started by another producer. A retry of a worker
  started with such inputs reads them back from its start claim (`claimed_inputs`).
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dag.graph import DAG
from dag.plan import Optimization, Plan
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
from worker.estimates import Estimates
from worker.schedule import Schedule, began_key, output_key, started_key

if TYPE_CHECKING:
    from worker.branch import Invocation

DEFAULT_CHUNK_BYTES = 1 << 20
DEFAULT_MAX_EXEC_MS = 50.0
DEFAULT_MIN_OUTPUT_BYTES = 10 << 20
DEFAULT_MAX_INLINE_BYTES = 16 << 10

#: The effects each flag adds to a run when it acts (the rest of the logic is unchanged).
OPTIMIZATION_EFFECTS: dict[str, tuple[type, ...]] = {
    "pre-warm": (Warmup,),
    "pre-load": (WaitAny,),
    "task-dup": (Get, Now, SetIfAbsent, Execute),
    "output-streaming": (StreamUpload, StreamDownload),
    "fan-out-clustering": (),
    "fan-in-clustering": (Incr,),
    "delayed-io": (Incr,),
    "inline-subdag": (),
    "small-results-inline": (Get,),
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
    schedule: Schedule,
    task_id: str,
    output: TaskOutput,
    me: Invocation,
    inlined: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """Consumers a flexible worker runs next itself: the first ready flexible consumer of its
    config (WUKONG's continuation) plus, with fan-out clustering, every other ready one whose
    predicted exec time is at most ``max_exec_ms`` or whose input is at least
    ``min_input_bytes``. Consumers `inlined` in a sub-DAG are not candidates, and with any
    there is no continuation: the sub-DAG is the worker's next work."""
    if not _is_flexible_here(schedule, task_id, me):
        return []
    candidates = [
        c
        for c in schedule.dag.successors(task_id)
        if schedule.worker_of[c] is None
        and len(schedule.counted[c]) == 1
        and schedule.config_of[c] == me.config
        and c not in inlined
    ]
    if not candidates:
        return []
    kept = [] if inlined else candidates[:1]
    clustering = schedule.plan.enabled("fan-out-clustering", task_id)
    if clustering is None:
        return kept
    max_exec_ms = clustering.params.get("max_exec_ms", DEFAULT_MAX_EXEC_MS)
    min_input_bytes = clustering.params.get("min_input_bytes")
    for consumer in candidates[len(kept) :]:
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


def inline_subdags(
    dag: DAG,
    plan: Plan,
    worker_of: Mapping[str, str | None],
    config_of: Mapping[str, ResourceConfig],
    estimates: Estimates | None,
) -> dict[str, tuple[str, ...]]:
    """The sub-DAGs inline-subdag runs in one invocation: producer -> the tasks below it that
    its worker runs itself right after it, in topological order.

    From a flexible producer with the flag down, a task joins when it is flexible, of the
    producer's config, predicted (on that config) to run at most ``max_exec_ms``, and all its
    inputs come from the producer or the sub-DAG; so a fan-in with a producer outside, or a task
    above the threshold, ends it (and what lies below). A producer inside another's sub-DAG
    starts none of its own. Producers with an empty sub-DAG are left out.

    Raises
    ------
    ValueError
        If the flag is on a flexible producer and there are no estimates to decide with.
    """
    subdags: dict[str, tuple[str, ...]] = {}
    if not any(o.name == "inline-subdag" for o in plan.optimizations):
        return subdags
    order = dag.topological_order()
    position = {t: i for i, t in enumerate(order)}
    member_of: dict[str, str] = {}
    for root in order:
        flag = plan.enabled("inline-subdag", root)
        if flag is None or worker_of[root] is not None or root in member_of:
            continue
        if estimates is None:
            raise ValueError(
                f"plan enables inline-subdag on task {root!r}, which needs estimates to decide "
                f"which tasks are small"
            )
        max_exec_ms = float(flag.params.get("max_exec_ms", DEFAULT_MAX_EXEC_MS))
        config = config_of[root]
        inside = {root}
        members: list[str] = []
        frontier = [(position[c], c) for c in dag.successors(root)]
        heapq.heapify(frontier)
        seen = {c for _p, c in frontier}
        while frontier:  # in topological order: a task's inputs are decided before it
            _position, task_id = heapq.heappop(frontier)
            if not (
                worker_of[task_id] is None
                and config_of[task_id] == config
                and all(d in inside for d in dag.predecessors(task_id))
                and estimates.exec_ms(task_id, config) <= max_exec_ms
            ):
                continue
            inside.add(task_id)
            members.append(task_id)
            for consumer in dag.successors(task_id):
                if consumer not in seen:
                    seen.add(consumer)
                    heapq.heappush(frontier, (position[consumer], consumer))
        if members:
            subdags[root] = tuple(members)
            member_of.update(dict.fromkeys(members, root))
    return subdags


def inlined_consumers(schedule: Schedule, task_id: str) -> list[str]:
    """Consumers of `task_id` in the same inline sub-DAG: its worker runs them from memory."""
    root = schedule.subdag_of.get(task_id, task_id)
    if root not in schedule.subdags:
        return []
    return [c for c in schedule.dag.successors(task_id) if schedule.subdag_of.get(c) == root]


def inline_capable(schedule: Schedule, task_id: str) -> Optimization | None:
    """The small-results-inline flag of `task_id` when its output may travel inline: the flag
    is on, the client does not fetch it, and no task-dup or output streaming of it is planned.
    Both sides decide with it: the producer, and a consumer that waits for its message."""
    flag = schedule.plan.enabled("small-results-inline", task_id)
    if (
        flag is None
        or task_id in schedule.outputs
        or task_id in schedule.dup_targets
        or schedule.plan.enabled("output-streaming", task_id)
    ):
        return None
    return flag


def carried_output(schedule: Schedule, task_id: str, output: TaskOutput) -> bool:
    """Small-results-inline acts on this output: it may travel inline (`inline_capable`), it
    was just computed (not read back by a retry), and it is at most ``max_bytes``."""
    flag = inline_capable(schedule, task_id)
    if flag is None or output.stored:
        return False
    return output.nbytes <= int(flag.params.get("max_bytes", DEFAULT_MAX_INLINE_BYTES))


def upload_needed(
    schedule: Schedule, task_id: str, output: TaskOutput, elsewhere: list[str]
) -> bool:
    """Whether `task_id`'s output must be stored for the consumers `elsewhere`: yes, unless
    small-results-inline carries it to each of them (a fixed one reads the COMPLETED message; a
    flexible one whose only counted producer it is, not waiting for inputs, is started by this
    worker with it in the payload)."""
    if not carried_output(schedule, task_id, output):
        return True
    return any(
        schedule.worker_of[c] is None
        and (len(schedule.counted[c]) > 1 or c in schedule.waits_for_inputs)
        for c in elsewhere
    )


def claimed_inputs(schedule: Schedule, me: Invocation) -> Generator[Any, Any, dict[str, Any]]:
    """A retry of a worker started with inline inputs (which a retry's payload lacks) reads
    them back from its start claim, where the invoker left those it did not upload.

    Returns {producer id: value}; empty on a first attempt or without small-results-inline.
    """
    if not me.attempt or me.inputs:
        return {}
    deps = {d for t in me.start_tasks for d in schedule.dag.predecessors(t)}
    if not any(inline_capable(schedule, d) for d in deps):
        return {}
    claim = yield Get(key=started_key(me.worker_id), task_id=me.start_tasks[0])
    carried = claim[2] if isinstance(claim, tuple | list) and len(claim) > 2 else {}
    return {d: output.value for d, output in carried.items()}


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
