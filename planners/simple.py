"""One-config planners: `uniform` (octoflows-style chains), `wukong` (flexible) and `dask`.

- ``uniform`` follows octoflows' uniform planner: every worker gets the same config; worker ids
  are assigned so that chains stay on one worker and fan-outs split by predicted exec time (see
  `chain_workers`).
- ``wukong`` follows WUKONG (Carver et al., SoCC 2020): no worker ids at all; every task is
  flexible, so the worker that makes a task ready runs it, and the plan sets WUKONG's task
  clustering (fan-out and fan-in) and delayed-I/O flags, whose behaviour lives in `worker/`.
- ``dask`` places tasks as the Dask distributed scheduler's ``decide_worker`` would on a fixed
  pool of workers: in priority (topological) order, each task goes to the worker where it could
  start earliest, counting that worker's queued work (occupancy) plus the transfer of the input
  bytes it does not hold. Candidates are the workers holding its inputs and the least occupied
  worker (Dask's work stealing lets an idle worker take it). So a task lands where most of its
  input bytes live unless that worker is busy, and a source task on the least occupied worker.
"""

from __future__ import annotations

from dag.graph import DAG
from dag.plan import Optimization, Placement, Plan
from dag.resources import ResourceConfig
from planners.base import (
    Context,
    Param,
    Planner,
    is_non_negative,
    is_positive,
    parse_config,
)

_CONFIG_PARAM = Param(
    parse_config, None, "config of every worker (default: the largest candidate config)"
)


def upward_rank(dag: DAG, exec_ms: dict[str, float], comm_ms: dict[str, float]) -> dict[str, float]:
    """Classic upward rank: a task's exec ms plus the longest (comm + rank) over its consumers."""
    rank: dict[str, float] = {}
    for task_id in reversed(dag.topological_order()):
        tail = max((rank[c] for c in dag.successors(task_id)), default=None)
        rank[task_id] = exec_ms[task_id] + (0.0 if tail is None else comm_ms[task_id] + tail)
    return rank


def chain_workers(ctx: Context, config: ResourceConfig, prefix: str = "u") -> dict[str, str]:
    """Worker id per task: chains stay on one worker, fan-outs split by predicted exec time.

    Each task has a *main parent*: the one whose output it reads most of (ties: the longer
    upward rank). Of the tasks sharing a main parent, the one with the longest upward rank
    (the likely critical one) continues the parent's worker. A sibling also stays on that worker
    when it is short compared with what a worker of its own would add: its predicted exec ms is
    at most the download of the parent's output plus a worker start (a short task behind a large
    output). Every other task gets a new worker. Sources start workers of their own.
    """
    dag = ctx.dag
    order = dag.topological_order()
    exec_ms = ctx.exec_ms(config)
    out_bytes = ctx.output_bytes()
    xfer = ctx.transfer_ms_of(out_bytes, config)
    comm = {t: 2 * xfer[t] for t in order}
    rank = upward_rank(dag, exec_ms, comm)
    sizes = dag.edge_bytes_map
    main: dict[str, str] = {}
    heir: dict[str, str] = {}
    for task_id in order:
        deps = dag.predecessors(task_id)
        if not deps:
            continue
        parent = max(deps, key=lambda d: (sizes.get((d, task_id), out_bytes[d]), rank[d], d))
        main[task_id] = parent
        best = heir.get(parent)
        if best is None or rank[task_id] > rank[best]:
            heir[parent] = task_id
    startup_ms = ctx.startup_estimate_ms()
    worker_of: dict[str, str] = {}
    n_workers = 0
    for task_id in order:
        parent = main.get(task_id)
        if parent is not None and (
            heir[parent] == task_id or exec_ms[task_id] <= xfer[parent] + startup_ms
        ):
            worker_of[task_id] = worker_of[parent]
        else:
            worker_of[task_id] = f"{prefix}{n_workers}"
            n_workers += 1
    return worker_of


def fixed_placements(
    worker_of: dict[str, str], config_of_worker: dict[str, ResourceConfig]
) -> dict[str, Placement]:
    """Placements from a worker per task and a config per worker (one Placement per worker)."""
    shared = {w: Placement(w, c) for w, c in config_of_worker.items()}
    return {t: shared[w] for t, w in worker_of.items()}


class UniformPlanner(Planner):
    """One config for all workers; chains on one worker (octoflows' uniform planner)."""

    name = "uniform"
    PARAMS = {"config": _CONFIG_PARAM}

    def _plan(self, ctx: Context) -> Plan:
        config = self.params["config"] or ctx.largest
        worker_of = chain_workers(ctx, config)
        placements = fixed_placements(worker_of, {w: config for w in set(worker_of.values())})
        return ctx.finish(ctx.make_plan(placements))


class WukongPlanner(Planner):
    """All tasks flexible on one config, with WUKONG's clustering and delayed-I/O flags."""

    name = "wukong"
    PARAMS = {
        "config": _CONFIG_PARAM,
        "large_bytes": Param(
            int,
            50_000_000,
            "output size from which WUKONG treats an object as large (fan-in clustering, "
            "delayed I/O, fan-out clustering of large-input children), bytes",
            is_non_negative,
            "an integer >= 0",
        ),
        "short_ms": Param(
            float,
            100.0,
            "fan-out children predicted to run at most this long are clustered on the "
            "current worker, ms",
            is_non_negative,
            "a number >= 0",
        ),
    }

    def optimizations(self) -> tuple[Optimization, ...]:
        large, short = self.params["large_bytes"], self.params["short_ms"]
        return (
            Optimization(
                "fan-out-clustering", params={"max_exec_ms": short, "min_input_bytes": large}
            ),
            Optimization("fan-in-clustering", params={"min_output_bytes": large}),
            Optimization("delayed-io", params={"min_output_bytes": large}),
        )

    def _plan(self, ctx: Context) -> Plan:
        config = self.params["config"] or ctx.largest
        flexible = Placement(None, config)
        plan = ctx.make_plan({t: flexible for t in ctx.dag}, self.optimizations())
        return ctx.finish(plan)


class DaskPlanner(Planner):
    """A fixed pool of workers, tasks placed as Dask's ``decide_worker`` would."""

    name = "dask"
    PARAMS = {
        "config": _CONFIG_PARAM,
        "workers": Param(int, 8, "number of workers in the pool", is_positive, "an integer > 0"),
    }

    def _plan(self, ctx: Context) -> Plan:
        config = self.params["config"] or ctx.largest
        n_workers = int(self.params["workers"])
        dag = ctx.dag
        exec_ms = ctx.exec_ms(config)
        out_bytes = ctx.output_bytes()
        transfer = {t: 2 * ms for t, ms in ctx.transfer_ms_of(out_bytes, config).items()}
        free_ms = [0.0] * n_workers  # when each worker's queue drains (occupancy)
        where: dict[str, int] = {}
        finish: dict[str, float] = {}
        for task_id in dag.topological_order():
            deps = dag.predecessors(task_id)
            least = min(range(n_workers), key=lambda w: (free_ms[w], w))
            candidates = {where[d] for d in deps} | {least}

            def objective(w: int, deps=deps) -> tuple[float, int, int]:
                ready = max(
                    (finish[d] + (0.0 if where[d] == w else transfer[d]) for d in deps),
                    default=0.0,
                )
                local = sum(out_bytes[d] for d in deps if where[d] == w)
                return (max(free_ms[w], ready), -local, w)

            chosen = min(candidates, key=objective)
            start = objective(chosen)[0]
            where[task_id] = chosen
            finish[task_id] = free_ms[chosen] = start + exec_ms[task_id]
        worker_of = {t: f"d{w}" for t, w in where.items()}
        placements = fixed_placements(worker_of, {w: config for w in set(worker_of.values())})
        return ctx.finish(ctx.make_plan(placements))
