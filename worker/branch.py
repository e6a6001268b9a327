"""The worker's logic: every decision about which task runs where, and what gets uploaded.

Rules (DESIGN.md, following WUKONG and octoflows):

1. A *fixed* worker runs the tasks planned on its id one after another, in the plan's order
   (by default the DAG's topological order); it waits for remote inputs (subscribe, check
   existence, then wait, so no COMPLETED message is missed) and asks for them in one Parallel
   download (the real drivers, and so the simulator, fetch them in turn). Local inputs come
   from memory.
2. A *flexible* worker (WUKONG) is started for one ready task. After each task it goes on with
   the ready flexible consumers it keeps (one continuation, plus clustered ones) and starts new
   workers for the others; it keeps every output it produced in memory.
3. A task's output is uploaded only if the client asked for it (every sink, and any task named in
   the schedule's outputs) or some consumer will not read it from this worker's memory, nor
   receive it in its invocation payload or the COMPLETED message (small-results-inline).
   Upload happens before any dependency counter is touched, unless the
   producer counts first on purpose (fan-in clustering, delayed I/O; their fan-ins then wait).
4. Fan-in: each producer on another worker counts itself into the consumer's counter (a set,
   so counting twice counts once); the one that sees it reach ``len(counted)`` starts the
   consumer: a fixed consumer's worker is invoked unless already started, a flexible consumer
   is kept by this worker or gets a new one. Every start is claimed first (set-if-absent), so
   no worker, nor its retry, starts anything twice.
5. COMPLETED is published for a task whose output a fixed worker elsewhere, a waiting fan-in,
   or the client (the schedule's outputs) may be waiting for; with small-results-inline it
   carries the output, which the waiter takes from it instead of downloading.
6. ``None`` is a valid result: outputs travel as values, never as "missing" markers.
7. A retry (``attempt`` > 0) of a lost worker re-runs the same logic but reads back every output
   its lost attempt stored instead of running the task again, and resumes the fan-ins that
   attempt had claimed to run itself.

Optimizations (`worker.optimizations` holds their decisions) change these rules only where the
plan's flags say so. The logic yields effects (`worker.effects`) and performs no I/O. `Worker`
hands the same generator to the real driver (`execute_branch`) or to the SimPy driver
(`mock_execute_branch`).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dag.resources import ResourceConfig
from worker import optimizations as opt
from worker.effects import (
    Download,
    Execute,
    Exists,
    Get,
    Incr,
    Invoke,
    Now,
    Parallel,
    Publish,
    SetIfAbsent,
    StreamDownload,
    StreamUpload,
    Subscribe,
    TaskOutput,
    Upload,
    WaitAny,
    WaitFor,
    Warmup,
)
from worker.schedule import (
    FLEXIBLE_PREFIX,
    Schedule,
    began_key,
    claim_key,
    counter_key,
    done_channel,
    flexible_worker_id,
    output_key,
    started_key,
)

Logic = Generator[Any, Any, Any]


class PlanViolation(RuntimeError):
    """The driver broke the worker contract (e.g. a result of the wrong type for an effect)."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """What a worker is started with: its id, config, the task(s) it starts from, which
    attempt this is (0 first; a retry re-runs the same logic, reading back stored outputs), and
    the inputs its payload carries (producer id -> TaskOutput; small-results-inline)."""

    worker_id: str
    config: ResourceConfig
    start_tasks: tuple[str, ...]
    attempt: int = 0
    inputs: Mapping[str, TaskOutput] = field(default_factory=dict, compare=False)

    @classmethod
    def from_effect(cls, effect: Invoke) -> Invocation:
        return cls(
            effect.worker_id, effect.config, effect.start_tasks, effect.attempt, effect.inputs
        )

    def to_effect(self) -> Invoke:
        return Invoke(
            worker_id=self.worker_id,
            config=self.config,
            start_tasks=self.start_tasks,
            attempt=self.attempt,
            inputs=self.inputs,
        )


def _all(effects: list[Any]) -> Logic:
    """Ask for `effects` together (a driver may overlap them); returns their results as a list.

    None yields nothing, one is yielded as itself, several as one Parallel.
    """
    if not effects:
        return []
    if len(effects) == 1:
        return [(yield effects[0])]
    return list((yield Parallel(tuple(effects))))


# -- inputs ---------------------------------------------------------------------------------


def fetch_inputs(
    schedule: Schedule, task_id: str, remote: Iterable[str], me: Invocation, *, wait: bool
) -> Logic:
    """Get the outputs of `remote` producers for `task_id`, waiting for them if asked.

    With ``wait``, missing outputs are awaited; pre-load downloads each as soon as it is stored,
    task-dup may run a slow upstream here instead, and a streamed output is read as it is
    written. Returns {producer id: value}.
    """
    remote = list(remote)
    if not remote:
        return {}
    if not wait:
        values = yield from _all([Download(key=output_key(d), task_id=task_id) for d in remote])
        return dict(zip(remote, values, strict=True))
    yield from _all([Subscribe(channel=done_channel(d), task_id=task_id) for d in remote])
    # Small-results-inline: these producers' messages may carry their outputs; wait for them.
    carried = [d for d in remote if opt.inline_capable(schedule, d)]
    stored = [d for d in remote if d not in carried]
    present = yield from _all([Exists(key=output_key(d), task_id=task_id) for d in stored])
    missing = [d for d, found in zip(stored, present, strict=True) if not found]
    fetched: dict[str, Any] = {}
    if missing and schedule.plan.enabled("task-dup", task_id):
        for upstream in [d for d in missing if d in schedule.dup_targets]:
            if (yield from opt.should_duplicate(schedule, task_id, upstream, me)):
                fetched[upstream] = yield from run_duplicate(schedule, upstream, me)
        missing = [d for d in missing if d not in fetched]
    streamed = [d for d in missing if schedule.plan.enabled("output-streaming", d)]
    missing = [d for d in missing if d not in streamed]
    if schedule.plan.enabled("pre-load", task_id):
        ready = [d for d in stored if d not in fetched and d not in missing and d not in streamed]
        values = yield from _all([Download(key=output_key(d), task_id=task_id) for d in ready])
        fetched.update(zip(ready, values, strict=True))
        while missing:
            arrived = yield WaitAny(
                channels=tuple(done_channel(d) for d in missing), task_id=task_id
            )
            if not isinstance(arrived, tuple):
                raise PlanViolation(f"driver returned {arrived!r} for WaitAny, not a tuple")
            now_ready = [d for d in missing if done_channel(d) in arrived]
            missing = [d for d in missing if d not in now_ready]
            values = yield from _all(
                [Download(key=output_key(d), task_id=task_id) for d in now_ready]
            )
            fetched.update(zip(now_ready, values, strict=True))
    else:
        for producer in missing:
            yield WaitFor(channel=done_channel(producer), task_id=task_id)
    for producer in streamed:
        fetched[producer] = yield StreamDownload(key=output_key(producer), task_id=task_id)
    for producer in carried:
        message = yield WaitFor(channel=done_channel(producer), task_id=task_id)
        if isinstance(message, TaskOutput):  # else it was uploaded: downloaded below
            fetched[producer] = message.value
    rest = [d for d in remote if d not in fetched]
    values = yield from _all([Download(key=output_key(d), task_id=task_id) for d in rest])
    fetched.update(zip(rest, values, strict=True))
    return fetched


def stored_output(task_id: str, me: Invocation) -> Logic:
    """On a retry, the output a lost attempt already stored (so it is not run twice), or None."""
    if not me.attempt or not (yield Exists(key=output_key(task_id), task_id=task_id)):
        return None
    value = yield Download(key=output_key(task_id), task_id=task_id)
    return TaskOutput(value, 0, stored=True)


def execute(task_id: str, inputs: Mapping[str, Any], *, duplicate: bool = False) -> Logic:
    output = yield Execute(task_id=task_id, inputs=inputs, duplicate=duplicate)
    if not isinstance(output, TaskOutput):
        raise PlanViolation(f"driver returned {type(output).__name__} for Execute of {task_id!r}")
    return output


def run_duplicate(schedule: Schedule, upstream: str, me: Invocation) -> Logic:
    """Task-dup: run `upstream` here; if this result wins, it stands for the planned one."""
    deps = schedule.dag.predecessors(upstream)
    inputs = yield from fetch_inputs(schedule, upstream, deps, me, wait=False)
    output = yield from execute(upstream, inputs, duplicate=True)
    planned = Invocation(schedule.worker_of[upstream], schedule.config_of[upstream], ())
    yield from complete(schedule, upstream, output, planned)
    return output.value


# -- after a task ---------------------------------------------------------------------------


def _publish_needed(schedule: Schedule, task_id: str, elsewhere: list[str]) -> bool:
    return (
        task_id in schedule.outputs
        or any(schedule.worker_of[c] is not None for c in elsewhere)
        or any(c in schedule.waits_for_inputs for c in elsewhere)
    )


def _store_output(
    schedule: Schedule,
    task_id: str,
    output: TaskOutput,
    elsewhere: list[str],
    *,
    upload: bool = True,
    carried: bool = False,
) -> Logic:
    streaming = schedule.plan.enabled("output-streaming", task_id)
    if output.stored:
        pass  # a lost attempt stored it already
    elif not upload:
        pass  # small-results-inline carries it to every consumer elsewhere
    elif streaming is not None:
        chunk = int(streaming.params.get("chunk_bytes", opt.DEFAULT_CHUNK_BYTES))
        yield StreamUpload(
            key=output_key(task_id),
            value=output.value,
            nbytes=output.nbytes,
            chunk_bytes=chunk,
            task_id=task_id,
        )
    else:
        yield Upload(
            key=output_key(task_id), value=output.value, nbytes=output.nbytes, task_id=task_id
        )
    if not _publish_needed(schedule, task_id, elsewhere):
        return
    if carried:
        yield Publish(
            channel=done_channel(task_id),
            value=output.value,
            nbytes=output.nbytes,
            task_id=task_id,
        )
    else:
        yield Publish(channel=done_channel(task_id), task_id=task_id)


def complete(schedule: Schedule, task_id: str, output: TaskOutput, me: Invocation) -> Logic:
    """After `task_id` ran on worker `me`: claim, upload, announce, count, start consumers.

    Returns the tasks this (flexible) worker runs next, in order.
    """
    if task_id in schedule.dup_targets:
        (won,) = yield from _all([SetIfAbsent(key=claim_key(task_id), task_id=task_id)])
        if not won:
            return []  # a duplicate's result already stands for this task
    worker_of = schedule.worker_of
    consumers = schedule.dag.successors(task_id)
    # Inline sub-DAG: its tasks run here next, from memory; their edges need no I/O.
    inlined = opt.inlined_consumers(schedule, task_id)
    subdag = list(schedule.subdags.get(task_id, ()))
    keep = opt.kept_consumers(schedule, task_id, output, me, inlined)
    elsewhere = [
        c for c in consumers if c not in keep and c not in inlined and worker_of[c] != me.worker_id
    ]
    count_first = opt.count_before_upload(schedule, task_id, output, me, elsewhere)
    if opt.delays_io(schedule, task_id, output, me) and (keep or subdag):
        # Delayed I/O: run the local consumers first, then do the rest of this task's I/O.
        deferred = opt.Deferred(task_id, output, tuple(elsewhere), tuple(count_first))
        return [*subdag, *keep, deferred]
    taken = yield from share_output(
        schedule, task_id, output, me, elsewhere, count_first, keeping=bool(keep or inlined)
    )
    return [*subdag, *keep, *taken]


def share_output(
    schedule: Schedule,
    task_id: str,
    output: TaskOutput,
    me: Invocation,
    elsewhere: Iterable[str],
    count_first: Iterable[str],
    *,
    keeping: bool = False,
) -> Logic:
    """Upload what other workers need, count fan-ins, start ready consumers.

    Returns the flexible consumers this worker takes over: fan-ins it completed after counting
    first, and, when it keeps no consumer already (`keeping`), one ready flexible consumer.
    """
    worker_of = schedule.worker_of
    elsewhere = list(elsewhere)
    count_first = [c for c in count_first if c in elsewhere]
    carried = opt.carried_output(schedule, task_id, output)
    upload = opt.upload_needed(schedule, task_id, output, elsewhere)
    upload_first = task_id in schedule.outputs or any(c not in count_first for c in elsewhere)
    if upload_first:
        yield from _store_output(
            schedule, task_id, output, elsewhere, upload=upload, carried=carried
        )

    fan_ins = [c for c in elsewhere if len(schedule.counted[c]) > 1]
    counts = yield from _all(
        [Incr(counter=counter_key(c), member=task_id, task_id=task_id) for c in fan_ins]
    )
    reached = set()
    for consumer, count in zip(fan_ins, counts, strict=True):
        if count > len(schedule.counted[consumer]):
            raise PlanViolation(
                f"counter of task {consumer!r} went to {count}, above its "
                f"{len(schedule.counted[consumer])} producers (worker {me.worker_id!r})"
            )
        if count == len(schedule.counted[consumer]):
            reached.add(consumer)
    ready = [c for c in elsewhere if c in reached or len(schedule.counted[c]) == 1]

    flexible_here = worker_of[task_id] is None and me.worker_id not in schedule.local_order
    taken = [
        c
        for c in ready
        if c in count_first and flexible_here and schedule.config_of[c] == me.config
    ]
    if not upload_first and any(c not in taken for c in elsewhere):
        # Counted first but someone else still needs this output (a fan-in not completed here).
        yield from _store_output(
            schedule, task_id, output, elsewhere, upload=upload, carried=carried
        )

    takes = set(taken)
    for consumer in ready:
        if (
            worker_of[consumer] is None
            and flexible_here
            and not keeping
            and not takes
            and schedule.config_of[consumer] == me.config
        ):
            takes.add(consumer)
    # Every start is claimed (set-if-absent) so that no worker, nor its retry, starts one twice.
    starts = [
        (c, worker_of[c] or flexible_worker_id(c), "take" if c in takes else "invoke")
        for c in ready
    ]
    # Small-results-inline: a flexible consumer's payload carries this output; where it is not
    # uploaded, the claim keeps a copy too, so that a retry of that consumer can read it back.
    carries = {c: carried and worker_of[c] is None for c, _w, mode in starts if mode == "invoke"}
    won = yield from _all(
        [
            SetIfAbsent(
                key=started_key(w),
                value=(me.worker_id, mode, {task_id: output})
                if carries.get(c) and not upload
                else (me.worker_id, mode),
                task_id=task_id,
            )
            for c, w, mode in starts
        ]
    )
    if me.attempt:  # a retry resumes the takes its lost attempt had claimed
        lost = [
            (i, w)
            for i, ((_c, w, mode), first) in enumerate(zip(starts, won, strict=True))
            if not first and mode == "take"
        ]
        owners = yield from _all([Get(key=started_key(w), task_id=task_id) for _i, w in lost])
        for (i, _w), owner in zip(lost, owners, strict=True):
            won[i] = tuple(owner or ()) == (me.worker_id, "take")
    invokes = [
        Invoke(
            worker_id=w,
            config=schedule.config_of[c],
            start_tasks=(c,),
            inputs={task_id: output} if carries[c] else {},
            task_id=task_id,
        )
        for (c, w, mode), first in zip(starts, won, strict=True)
        if first and mode == "invoke"
    ]
    yield from _all(invokes)
    return [c for (c, _w, mode), first in zip(starts, won, strict=True) if first and mode == "take"]


# -- workers --------------------------------------------------------------------------------


def fixed_worker(schedule: Schedule, me: Invocation) -> Logic:
    """A fixed worker: run its planned tasks in topological order."""
    local: dict[str, Any] = {}
    for task_id in schedule.local_order[me.worker_id]:
        output = yield from stored_output(task_id, me)
        if output is None:
            deps = schedule.dag.predecessors(task_id)
            remote = [d for d in deps if schedule.worker_of[d] != me.worker_id]
            fetched = yield from fetch_inputs(schedule, task_id, remote, me, wait=True)
            inputs = {d: fetched[d] if d in fetched else local[d] for d in deps}
            if task_id in schedule.dup_targets:
                began_ms = yield Now()
                yield SetIfAbsent(key=began_key(task_id), value=began_ms, task_id=task_id)
            output = yield from execute(task_id, inputs)
        local[task_id] = output.value
        yield from complete(schedule, task_id, output, me)


def flexible_worker(schedule: Schedule, me: Invocation) -> Logic:
    """A flexible worker: run its start task, then what it keeps, depth first, until done."""
    # Outputs this worker produced stay in its memory, beside the inputs its payload carried.
    local: dict[str, Any] = {d: output.value for d, output in me.inputs.items()}
    local.update((yield from opt.claimed_inputs(schedule, me)))
    todo: list[Any] = list(reversed(me.start_tasks))
    while todo:
        item = todo.pop()
        if isinstance(item, opt.Deferred):
            taken = yield from share_output(
                schedule, item.task_id, item.output, me, item.elsewhere, item.count_first
            )
        else:
            task_id = item
            output = yield from stored_output(task_id, me)
            if output is None:
                deps = schedule.dag.predecessors(task_id)
                remote = [d for d in deps if d not in local]
                wait = task_id in schedule.waits_for_inputs
                fetched = yield from fetch_inputs(schedule, task_id, remote, me, wait=wait)
                inputs = {d: fetched[d] if d in fetched else local[d] for d in deps}
                output = yield from execute(task_id, inputs)
            local[task_id] = output.value
            taken = yield from complete(schedule, task_id, output, me)
        todo.extend(reversed(taken))


def run_worker(schedule: Schedule, me: Invocation) -> Logic:
    """The whole life of one worker invocation."""
    if me.worker_id in schedule.local_order:
        yield from fixed_worker(schedule, me)
    else:
        yield from flexible_worker(schedule, me)


def run_client(schedule: Schedule, *, fetch_results: bool = True) -> Logic:
    """The client: pre-warm, start the initial workers, wait for every sink.

    Returns {sink: value} (empty when `fetch_results` is false).
    """
    for warmup in opt.prewarm_requests(schedule):
        yield Warmup(config=warmup.config, delay_ms=warmup.delay_ms)
    starts = schedule.initial_workers()
    yield from _all(
        [SetIfAbsent(key=started_key(w), value=("client", "invoke")) for w, _, _ in starts]
    )
    yield from _all([Invoke(worker_id=w, config=c, start_tasks=(t,)) for w, c, t in starts])
    return (yield from await_sinks(schedule, fetch_results=fetch_results))


def await_sinks(schedule: Schedule, *, fetch_results: bool = True) -> Logic:
    """Wait until every output the client asked for (the sinks, and the schedule's other
    outputs) is stored; returns {task id: value} if asked."""
    sinks = list(schedule.dag.sinks)
    others = schedule.outputs - set(sinks)
    if others:
        sinks += [t for t in schedule.dag.topological_order() if t in others]
    yield from _all([Subscribe(channel=done_channel(s)) for s in sinks])
    present = yield from _all([Exists(key=output_key(s)) for s in sinks])
    for sink, stored in zip(sinks, present, strict=True):
        if not stored:
            yield WaitFor(channel=done_channel(sink))
    if not fetch_results:
        return {}
    values = yield from _all([Download(key=output_key(s)) for s in sinks])
    return dict(zip(sinks, values, strict=True))


def restart(schedule: Schedule, worker_id: str, attempt: int) -> Invocation:
    """The invocation that retries worker `worker_id` (lost: started, never ended)."""
    if worker_id in schedule.local_order:
        first = schedule.local_order[worker_id][0]
        return Invocation(worker_id, schedule.config_of[first], (first,), attempt)
    task_id = worker_id.removeprefix(FLEXIBLE_PREFIX)
    if task_id not in schedule.dag or worker_id != flexible_worker_id(task_id):
        raise ValueError(f"no worker {worker_id!r} in this plan")
    return Invocation(worker_id, schedule.config_of[task_id], (task_id,), attempt)


class Driver(Protocol):
    """What a driver offers a `Worker`: run a logic generator for one invocation."""

    def run(self, logic: Logic, invocation: Invocation) -> Any: ...


class Worker:
    """One worker invocation and the logic it runs; drivers decide what the effects do.

    Parameters
    ----------
    schedule : Schedule
        The plan read against its DAG.
    invocation : Invocation
        Worker id, config and start task(s).
    """

    def __init__(self, schedule: Schedule, invocation: Invocation):
        self.schedule = schedule
        self.invocation = invocation

    def branch(self) -> Logic:
        """The worker's logic as a fresh generator of effects."""
        return run_worker(self.schedule, self.invocation)

    def execute_branch(self, driver: Driver) -> Any:
        """Run the branch for real: `driver` performs each effect (Redis, Lambda, threads)."""
        return driver.run(self.branch(), self.invocation)

    def mock_execute_branch(self, sim_driver: Driver) -> Any:
        """Run the branch in simulation: returns the SimPy process body from `sim_driver`."""
        return sim_driver.run(self.branch(), self.invocation)
