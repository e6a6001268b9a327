"""HEFT and CPOP (Topcuoglu, Hariri and Wu, IEEE TPDS 13(3), 2002) on a bounded pool of workers.

The classic list schedulers work on a cost model: a computation cost per (task, processor) and a
communication cost per edge, paid only between different processors.

- HEFT orders tasks by decreasing *upward rank* (mean computation cost plus the longest path of
  mean communication + rank to an exit) and puts each on the processor giving it the earliest
  finish time, with the insertion policy (a task may fill an idle gap between scheduled tasks).
- CPOP ranks tasks by upward + downward rank; the tasks on the critical path (priority equal to
  the entry's) all go to the one processor that runs them fastest in total, the others to their
  earliest-finish processor, taken from a ready queue in priority order.

`heft_schedule` and `cpop_schedule` are those algorithms on any cost model, with their own
schedule length (the classic makespan). As planners (`HeftPlanner`, `CpopPlanner`), the
processors are fixed workers, ``workers`` per candidate config; computation costs are the
predicted exec ms per config, communication costs the platform's transfer time of the producer's
output (upload from one worker, download to the other). The plan's predicted timeline then comes
from simulating it; the classic length is kept as ``planner_estimate_ms`` for comparison (the
simulated run differs: a fixed worker runs its tasks in the DAG's topological order, and the
platform adds start-ups and shared bandwidth).

`classic_plan` applies either algorithm to a `dag.generators.CostedDAG` (the paper's example):
the paper's cost matrix directly, processor ``i`` as worker ``P{i+1}``.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dag.generators import CostedDAG
from dag.graph import DAG
from dag.plan import Placement, Plan
from dag.resources import ResourceConfig
from planners.base import Context, Param, Planner, as_platform, evaluate, is_positive
from planners.simple import fixed_placements
from sim.platform import Platform

#: comm_ms(producer, consumer, producer's processor, consumer's processor) -> ms.
CommCost = Callable[[str, str, int, int], float]


@dataclass(frozen=True)
class ClassicSchedule:
    """A list schedule: processor, start and finish of each task, in scheduling order."""

    processor_of: dict[str, int]
    start: dict[str, float]
    finish: dict[str, float]
    order: tuple[str, ...]

    @property
    def makespan(self) -> float:
        return max(self.finish.values(), default=0.0)


class _Timeline:
    """Busy intervals of the processors, for the insertion policy."""

    def __init__(self, n_processors: int):
        self.starts: list[list[float]] = [[] for _ in range(n_processors)]
        self.ends: list[list[float]] = [[] for _ in range(n_processors)]

    def earliest(self, proc: int, ready: float, duration: float) -> tuple[float, int]:
        """Earliest start >= ready of an idle gap of `duration` on `proc`, and its slot index."""
        starts, ends = self.starts[proc], self.ends[proc]
        i = bisect_right(ends, ready)
        start = ready
        n = len(starts)
        while i < n:
            if start + duration <= starts[i]:
                break
            if ends[i] > start:
                start = ends[i]
            i += 1
        return start, i

    def book(self, proc: int, slot: int, start: float, end: float) -> None:
        self.starts[proc].insert(slot, start)
        self.ends[proc].insert(slot, end)


def mean_ranks(
    dag: DAG,
    cost: dict[str, Sequence[float]],
    mean_comm: Callable[[str, str], float],
) -> tuple[dict[str, float], dict[str, float]]:
    """Upward and downward ranks with mean computation and communication costs."""
    mean = {t: math.fsum(c) / len(c) for t, c in cost.items()}
    order = dag.topological_order()
    up: dict[str, float] = {}
    for t in reversed(order):
        up[t] = mean[t] + max((mean_comm(t, s) + up[s] for s in dag.successors(t)), default=0.0)
    down: dict[str, float] = {}
    for t in order:
        down[t] = max(
            (down[p] + mean[p] + mean_comm(p, t) for p in dag.predecessors(t)), default=0.0
        )
    return up, down


def _place(dag, task, procs, cost, finish, start, where, busy, comm) -> None:
    """Put `task` on whichever of `procs` finishes it earliest (insertion policy)."""
    best = None
    inputs = [(finish[d], where[d], d) for d in dag.predecessors(task)]
    costs = cost[task]
    for proc in procs:
        ready = 0.0  # when the last input can be on `proc`
        for finished, source, dep in inputs:
            arrival = finished if source == proc else finished + comm(dep, task, source, proc)
            if arrival > ready:
                ready = arrival
        duration = costs[proc]
        begin, slot = busy.earliest(proc, ready, duration)
        if best is None or begin + duration < best[0]:
            best = (begin + duration, begin, proc, slot)
    end, begin, proc, slot = best
    busy.book(proc, slot, begin, end)
    finish[task], start[task], where[task] = end, begin, proc


def heft_schedule(
    dag: DAG,
    cost: dict[str, Sequence[float]],
    comm: CommCost,
    mean_comm: Callable[[str, str], float],
) -> ClassicSchedule:
    """HEFT: tasks by decreasing upward rank, each on its earliest-finish processor.

    Parameters
    ----------
    dag : DAG
    cost : mapping task id -> computation cost on each processor
    comm : callable (producer, consumer, p_producer, p_consumer) -> cost, used when they differ
    mean_comm : callable (producer, consumer) -> mean communication cost, for the ranks

    Ties in rank keep the DAG's topological order (so n3 precedes n4 in the paper's example).
    """
    n_proc = len(next(iter(cost.values()))) if cost else 0
    up, _ = mean_ranks(dag, cost, mean_comm)
    order = sorted(dag.topological_order(), key=lambda t: -round(up[t], 9))
    finish: dict[str, float] = {}
    start: dict[str, float] = {}
    where: dict[str, int] = {}
    busy = _Timeline(n_proc)
    procs = range(n_proc)
    for task in order:
        _place(dag, task, procs, cost, finish, start, where, busy, comm)
    return ClassicSchedule(where, start, finish, tuple(order))


def cpop_schedule(
    dag: DAG,
    cost: dict[str, Sequence[float]],
    comm: CommCost,
    mean_comm: Callable[[str, str], float],
) -> ClassicSchedule:
    """CPOP: critical-path tasks on the processor that runs them fastest, others by EFT.

    Priority is upward + downward rank; the critical path starts at the entry task of highest
    priority and follows, at each step, the successor of highest priority (equal to the path
    length when costs are exact). The ready queue is served in decreasing priority, ties in
    topological order.
    """
    n_proc = len(next(iter(cost.values()))) if cost else 0
    up, down = mean_ranks(dag, cost, mean_comm)
    position = {t: i for i, t in enumerate(dag.topological_order())}
    priority = {t: round(up[t] + down[t], 9) for t in dag}
    critical: set[str] = set()
    if len(dag):
        task = max(dag.sources, key=lambda t: (priority[t], -position[t]))
        critical.add(task)
        while dag.successors(task):
            task = max(dag.successors(task), key=lambda t: (priority[t], -position[t]))
            critical.add(task)
    cp_proc = min(range(n_proc), key=lambda p: (math.fsum(cost[t][p] for t in critical), p))
    finish: dict[str, float] = {}
    start: dict[str, float] = {}
    where: dict[str, int] = {}
    busy = _Timeline(n_proc)
    all_procs = range(n_proc)
    waiting = {t: len(dag.predecessors(t)) for t in dag}
    ready = [(-priority[t], position[t], t) for t in dag.sources]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, _, task = heapq.heappop(ready)
        order.append(task)
        procs = (cp_proc,) if task in critical else all_procs
        _place(dag, task, procs, cost, finish, start, where, busy, comm)
        for child in dag.successors(task):
            waiting[child] -= 1
            if not waiting[child]:
                heapq.heappush(ready, (-priority[child], position[child], child))
    return ClassicSchedule(where, start, finish, tuple(order))


ALGORITHMS = {"heft": heft_schedule, "cpop": cpop_schedule}


# -- as planners ------------------------------------------------------------------------------


class _ListPlanner(Planner):
    """HEFT or CPOP on ``workers`` fixed workers per candidate config."""

    PARAMS = {
        "workers": Param(
            int, 4, "fixed workers (processors) per candidate config", is_positive, "an int > 0"
        ),
    }

    def _plan(self, ctx: Context) -> Plan:
        dag = ctx.dag
        per_config = int(self.params["workers"])
        configs = ctx.configs
        proc_config = [i for i in range(len(configs)) for _ in range(per_config)]
        exec_by_config = [ctx.exec_ms(c) for c in configs]
        out_bytes = ctx.output_bytes()
        xfer = [ctx.transfer_ms_of(out_bytes, c) for c in configs]
        cost = {t: [exec_by_config[i][t] for i in proc_config] for t in dag}
        n_configs = len(configs)
        mean_xfer = {t: sum(x[t] for x in xfer) / n_configs for t in dag}

        def comm(u: str, v: str, pu: int, pv: int) -> float:
            return xfer[proc_config[pu]][u] + xfer[proc_config[pv]][u]

        def mean_comm(u: str, v: str) -> float:
            return 2 * mean_xfer[u]

        schedule = ALGORITHMS[self.name](dag, cost, comm, mean_comm)
        worker_of = {t: f"h{p}" for t, p in schedule.processor_of.items()}
        config_of = {f"h{p}": configs[proc_config[p]] for p in set(schedule.processor_of.values())}
        # Each worker runs its tasks in the schedule's order (start times), not the DAG's.
        plan = ctx.make_plan(
            fixed_placements(worker_of, config_of), order=_priorities(dag, schedule)
        )
        return ctx.finish(plan, planner_estimate_ms=schedule.makespan)


def _priorities(dag, schedule: ClassicSchedule) -> dict[str, float]:
    """Start times as priorities, nudged so they increase along every edge (a zero-length
    task may start when its producer does)."""
    priority: dict[str, float] = {}
    levels = dag.levels()
    for task_id in sorted(dag, key=lambda t: (schedule.start[t], levels[t])):
        floor = max((priority[d] for d in dag.predecessors(task_id)), default=-1.0)
        priority[task_id] = max(float(schedule.start[task_id]), math.nextafter(floor, math.inf))
    return priority


class HeftPlanner(_ListPlanner):
    """HEFT (Topcuoglu et al. 2002) on a bounded pool of fixed workers."""

    name = "heft"


class CpopPlanner(_ListPlanner):
    """CPOP (Topcuoglu et al. 2002) on a bounded pool of fixed workers."""

    name = "cpop"


class CostedProfiles:
    """Profiles of a `CostedDAG` for the simulator: processor ``i``'s cost at ``configs[i]``;
    outputs of 0 bytes (per-edge communication costs have no store-based equivalent)."""

    def __init__(self, costed: CostedDAG, configs: Sequence[ResourceConfig]):
        self.dag = costed.dag
        self._cost = costed.cost
        self._index = {c: i for i, c in enumerate(configs)}

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float:
        return float(self._cost[task_id][self._index[config]])

    def output_bytes(self, task_id: str) -> int:
        return 0


def classic_plan(
    costed: CostedDAG,
    algorithm: str = "heft",
    configs: Sequence[ResourceConfig] | None = None,
    platform: Platform | str = "ideal",
    seed: int | None = 0,
) -> tuple[Plan, ClassicSchedule]:
    """HEFT or CPOP on the classic model of a `CostedDAG` (the paper's costs, used directly).

    Processor ``i`` becomes fixed worker ``P{i+1}`` of config ``configs[i]`` (default: distinct
    configs 1024, 2048, ... MB, only labels here). The plan's predicted timeline simulates it on
    `platform` with `CostedProfiles`; the classic schedule (with its makespan) is returned too.

    Raises
    ------
    ValueError
        For an unknown algorithm or a config count other than ``costed.n_processors``.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    if configs is None:
        configs = [ResourceConfig(1024 * (i + 1)) for i in range(costed.n_processors)]
    configs = list(configs)
    if len(configs) != costed.n_processors or len(set(configs)) != len(configs):
        raise ValueError(f"classic_plan needs {costed.n_processors} distinct configs")
    comm_cost = costed.comm
    costs = {t: tuple(float(x) for x in c) for t, c in costed.cost.items()}
    schedule = ALGORITHMS[algorithm](
        costed.dag,
        costs,
        lambda u, v, pu, pv: float(comm_cost[u, v]),
        lambda u, v: float(comm_cost[u, v]),
    )
    placements = {t: Placement(f"P{p + 1}", configs[p]) for t, p in schedule.processor_of.items()}
    plan = Plan(placements, planner=f"{algorithm}-classic", order=_priorities(costed.dag, schedule))
    platform = as_platform(platform)
    timeline = evaluate(
        costed.dag,
        plan,
        CostedProfiles(costed, configs),
        platform,
        seed,
        planner_estimate_ms=schedule.makespan,
    )
    plan = plan.with_predicted(timeline).validate(costed.dag)
    return plan, schedule
