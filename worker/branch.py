"""The worker's logic: every decision about which task runs where, and what gets uploaded.

Rules (DESIGN.md, following WUKONG and octoflows):

1. A *fixed* worker runs the tasks planned on its id one after another, in the DAG's
   topological order; it waits for remote inputs (subscribe, check existence, then wait, so no
   COMPLETED message is missed) and downloads them in parallel. Local inputs come from memory.
2. A *flexible* worker (WUKONG) is started for one ready task. After each task it continues with
   one ready flexible consumer of the same config and starts new workers for the others.
3. A task's output is uploaded only if it is a sink or some consumer will not read it from this
   worker's memory (a consumer on another worker, or a flexible consumer other than the
   continuation). Upload happens before any dependency counter is touched.
4. Fan-in: each producer on another worker increments the consumer's counter exactly once; the
   one that sees the count reach ``len(counted)`` starts the consumer: a fixed consumer's worker
   is invoked unless already started (set-if-absent), a flexible consumer becomes this worker's
   continuation or gets a new worker.
5. COMPLETED is published for a task whose output a fixed worker elsewhere, or the client
   (sinks), may be waiting for.
6. ``None`` is a valid result: outputs travel as values, never as "missing" markers.

The logic yields effects (`worker.effects`) and never performs I/O itself. `Worker` hands the
same generator to the real driver (`execute_branch`) or to the SimPy driver
(`mock_execute_branch`).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dag.resources import ResourceConfig
from worker.effects import (
    Download,
    Execute,
    Exists,
    Incr,
    Invoke,
    Parallel,
    Publish,
    SetIfAbsent,
    Subscribe,
    TaskOutput,
    Upload,
    WaitFor,
)
from worker.schedule import (
    Schedule,
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
    """What a worker is started with: its id, config and the task(s) it starts from."""

    worker_id: str
    config: ResourceConfig
    start_tasks: tuple[str, ...]

    @classmethod
    def from_effect(cls, effect: Invoke) -> Invocation:
        return cls(effect.worker_id, effect.config, effect.start_tasks)


def _all(effects: list[Any]) -> Logic:
    """Perform `effects` concurrently; returns their results as a list.

    None yields nothing, one is yielded as itself, several as one Parallel.
    """
    if not effects:
        return []
    if len(effects) == 1:
        return [(yield effects[0])]
    return list((yield Parallel(tuple(effects))))


def fetch_inputs(schedule: Schedule, task_id: str, remote: Iterable[str], *, wait: bool) -> Logic:
    """Download the outputs of `remote` producers for `task_id`, waiting for them if asked.

    Returns {producer id: value}.
    """
    remote = list(remote)
    if not remote:
        return {}
    if wait:
        yield from _all([Subscribe(channel=done_channel(d), task_id=task_id) for d in remote])
        present = yield from _all([Exists(key=output_key(d), task_id=task_id) for d in remote])
        for producer, stored in zip(remote, present, strict=True):
            if not stored:
                yield WaitFor(channel=done_channel(producer), task_id=task_id)
    values = yield from _all([Download(key=output_key(d), task_id=task_id) for d in remote])
    return dict(zip(remote, values, strict=True))


def execute(task_id: str, inputs: Mapping[str, Any]) -> Logic:
    output = yield Execute(task_id=task_id, inputs=inputs)
    if not isinstance(output, TaskOutput):
        raise PlanViolation(f"driver returned {type(output).__name__} for Execute of {task_id!r}")
    return output


def complete(schedule: Schedule, task_id: str, output: TaskOutput, me: Invocation) -> Logic:
    """After `task_id` ran on worker `me`: upload, announce, count, start consumers.

    Returns the flexible continuation task id, or None.
    """
    dag = schedule.dag
    worker_of = schedule.worker_of
    flexible = worker_of[task_id] is None
    consumers = dag.successors(task_id)
    continuation = None
    if flexible:
        continuation = next(
            (
                c
                for c in consumers
                if worker_of[c] is None
                and len(schedule.counted[c]) == 1
                and schedule.config_of[c] == me.config
            ),
            None,
        )
    elsewhere = [c for c in consumers if c != continuation and worker_of[c] != me.worker_id]
    if not consumers or elsewhere:
        yield Upload(
            key=output_key(task_id), value=output.value, nbytes=output.nbytes, task_id=task_id
        )
    if not consumers or any(worker_of[c] is not None for c in elsewhere):
        yield Publish(channel=done_channel(task_id), task_id=task_id)

    fan_ins = [c for c in elsewhere if len(schedule.counted[c]) > 1]
    counts = yield from _all([Incr(counter=counter_key(c), task_id=task_id) for c in fan_ins])
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

    fixed_ready = [c for c in ready if worker_of[c] is not None]
    won = yield from _all(
        [SetIfAbsent(key=started_key(worker_of[c]), task_id=task_id) for c in fixed_ready]
    )
    invokes = [
        Invoke(
            worker_id=worker_of[c], config=schedule.config_of[c], start_tasks=(c,), task_id=task_id
        )
        for c, first in zip(fixed_ready, won, strict=True)
        if first
    ]
    for consumer in ready:
        if worker_of[consumer] is not None:
            continue
        if flexible and continuation is None and schedule.config_of[consumer] == me.config:
            continuation = consumer
        else:
            invokes.append(
                Invoke(
                    worker_id=flexible_worker_id(consumer),
                    config=schedule.config_of[consumer],
                    start_tasks=(consumer,),
                    task_id=task_id,
                )
            )
    if invokes:
        yield from _all(invokes)
    return continuation


def fixed_worker(schedule: Schedule, me: Invocation) -> Logic:
    """A fixed worker: run its planned tasks in topological order."""
    local: dict[str, Any] = {}
    for task_id in schedule.local_order[me.worker_id]:
        deps = schedule.dag.predecessors(task_id)
        remote = [d for d in deps if schedule.worker_of[d] != me.worker_id]
        fetched = yield from fetch_inputs(schedule, task_id, remote, wait=True)
        inputs = {d: fetched[d] if d in fetched else local[d] for d in deps}
        output = yield from execute(task_id, inputs)
        local[task_id] = output.value
        yield from complete(schedule, task_id, output, me)


def flexible_worker(schedule: Schedule, me: Invocation) -> Logic:
    """A flexible worker: run its start task, then each continuation, until there is none."""
    (task_id,) = me.start_tasks
    local: dict[str, Any] = {}  # outputs this worker produced stay in its memory
    while task_id is not None:
        deps = schedule.dag.predecessors(task_id)
        remote = [d for d in deps if d not in local]
        # A flexible task is started only once all its inputs are stored: no waiting.
        fetched = yield from fetch_inputs(schedule, task_id, remote, wait=False)
        inputs = {d: fetched[d] if d in fetched else local[d] for d in deps}
        output = yield from execute(task_id, inputs)
        local[task_id] = output.value
        task_id = yield from complete(schedule, task_id, output, me)


def run_worker(schedule: Schedule, me: Invocation) -> Logic:
    """The whole life of one worker invocation."""
    if me.worker_id in schedule.local_order:
        yield from fixed_worker(schedule, me)
    else:
        yield from flexible_worker(schedule, me)


def run_client(schedule: Schedule, *, fetch_results: bool = True) -> Logic:
    """The client: start the initial workers, wait for every sink; returns {sink: value}."""
    starts = schedule.initial_workers()
    fixed = [(w, c, t) for w, c, t in starts if w in schedule.local_order]
    if fixed:
        yield from _all([SetIfAbsent(key=started_key(w)) for w, _, _ in fixed])
    yield from _all([Invoke(worker_id=w, config=c, start_tasks=(t,)) for w, c, t in starts])
    sinks = list(schedule.dag.sinks)
    yield from _all([Subscribe(channel=done_channel(s)) for s in sinks])
    present = yield from _all([Exists(key=output_key(s)) for s in sinks])
    for sink, stored in zip(sinks, present, strict=True):
        if not stored:
            yield WaitFor(channel=done_channel(sink))
    if not fetch_results:
        return {}
    values = yield from _all([Download(key=output_key(s)) for s in sinks])
    return dict(zip(sinks, values, strict=True))


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
