"""`octo`: choose the optimizations of a plan by what-if simulation (after octoflows).

Starting from a base planner's placements, `octo` proposes each optimization in turn, first for
every task where it can act, then only for the tasks on the predicted critical path, and
simulates the plan with the proposal on the predicted profiles. A proposal is kept only when
the predicted makespan falls without the cost rising by more than ``cost_tolerance``, or the
cost falls without the makespan rising. The optimizations' behaviour lives in `worker/`; this
module only decides where to switch them on:

- pre-warm: for each worker predicted to start cold late enough, one warm-up of its config at
  the latest time that still hides a cold start (the invocation's arrival minus a pessimistic
  cold start, the median times ``exp(sigma)``), and never earlier than keep-alive allows.
- pre-load: consumers waiting for two or more inputs from other fixed workers.
- task-dup: consumers with an input from another fixed worker.
- output-streaming: producers with an output of at least ``stream_bytes`` read by another
  fixed worker.
- inline-subdag (``max_exec_ms`` = ``inline_exec_ms``): flexible fan-out producers (two or
  more consumers) with a flexible consumer of their config predicted to run at most
  ``inline_exec_ms``; it acts only over a base with flexible tasks (``base=wukong``).
- small-results-inline (``max_bytes`` = ``inline_bytes``): producers the client does not
  fetch, with a predicted output of at most ``inline_bytes``, read on another worker.

Proposals for the flags with parameters name exactly the tasks listed; the others are proposed
for every task first, as octoflows does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from dag.plan import MAX_INLINE_BYTES, Optimization, Plan
from planners.base import Context, Param, Planner, PredictedTimeline, is_non_negative
from planners.heft import HeftPlanner
from planners.simple import DaskPlanner, UniformPlanner, WukongPlanner
from planners.sizing import NonUniformPlanner

#: The planners octo may start from (imported directly: the registry imports octo).
BASES: dict[str, type[Planner]] = {
    "uniform": UniformPlanner,
    "non-uniform": NonUniformPlanner,
    "heft": HeftPlanner,
    "dask": DaskPlanner,
    "wukong": WukongPlanner,
}


def _is_inline_bytes(value: int) -> bool:
    return 0 <= value <= MAX_INLINE_BYTES


def _is_base(value: str) -> bool:
    return value in BASES


def _remote_inputs(plan: Plan, dag, task_id: str) -> list[str]:
    worker = plan[task_id].worker_id
    if worker is None:
        return []
    return [d for d in dag.predecessors(task_id) if plan[d].worker_id not in (None, worker)]


def prewarm_flags(ctx: Context, plan: Plan, timeline: PredictedTimeline) -> list[Optimization]:
    """One pre-warm per worker predicted to start cold, timed to finish just before it is
    invoked (see the module docstring)."""
    platform = ctx.platform
    cold_ms = platform.cold_start_median_ms * math.exp(platform.cold_start_sigma)
    cold_ms = max(cold_ms, platform.cold_start_min_ms)
    tasks = timeline.tasks
    first = tasks[tasks["startup"] == "cold"]
    flags = []
    for task_id, row in first.iterrows():
        arrival_ms = float(row["start_ms"]) - float(row["startup_ms"])
        at_ms = arrival_ms - cold_ms
        if at_ms <= 0:
            continue  # a warm-up sent at the start would not be ready in time
        at_ms = max(at_ms, arrival_ms - platform.keep_alive_ms)
        config = plan[task_id].config
        flags.append(Optimization("pre-warm", params={"config": config, "at_ms": round(at_ms, 3)}))
    return flags


class OctoPlanner(Planner):
    """A base planner's placements plus the optimizations what-if simulation says pay."""

    name = "octo"
    PARAMS = {
        "base": Param(
            str,
            "non-uniform",
            f"planner giving the placements: {', '.join(BASES)}",
            _is_base,
            f"one of {', '.join(BASES)}",
        ),
        "cost_tolerance": Param(
            float,
            0.01,
            "relative cost increase accepted for a faster plan",
            is_non_negative,
            "a number >= 0",
        ),
        "stream_bytes": Param(
            int,
            1 << 20,
            "smallest output streamed to a consumer on another worker, bytes",
            is_non_negative,
            "an integer >= 0",
        ),
        "inline_exec_ms": Param(
            float,
            100.0,
            "inline-subdag: largest predicted exec of a task run inside a fan-out's sub-DAG, ms",
            is_non_negative,
            "a number >= 0",
        ),
        "inline_bytes": Param(
            int,
            64 * 1024,
            "small-results-inline: largest output carried in a payload or message, bytes",
            _is_inline_bytes,
            f"an integer in 0..{MAX_INLINE_BYTES}",
        ),
    }

    def _inline_candidates(self, ctx: Context, plan: Plan) -> dict[str, list[str]]:
        """Tasks where inline-subdag and small-results-inline can act (see the module)."""
        dag = ctx.dag
        out = ctx.output_bytes()
        small_exec = self.params["inline_exec_ms"]
        fan_outs = []
        for t in dag:
            config = plan[t].config
            children = dag.successors(t)
            if plan[t].worker_id is not None or len(children) < 2:
                continue
            if any(
                plan[c].worker_id is None
                and plan[c].config == config
                and float(ctx.profiles.exec_ms(c, config)) <= small_exec
                for c in children
            ):
                fan_outs.append(t)
        sinks = set(dag.sinks)
        small_outputs = [
            t
            for t in dag
            if t not in sinks
            and out[t] <= self.params["inline_bytes"]
            and any(
                plan[c].worker_id is None or plan[c].worker_id != plan[t].worker_id
                for c in dag.successors(t)
            )
        ]
        return {"inline-subdag": fan_outs, "small-results-inline": small_outputs}

    def _candidates(self, ctx: Context, plan: Plan, timeline: PredictedTimeline):
        dag = ctx.dag
        out = ctx.output_bytes()
        consumers_elsewhere = {
            t: [c for c in dag.successors(t) if plan[c].worker_id not in (None, plan[t].worker_id)]
            for t in dag
        }
        yield "pre-warm", lambda _tasks: prewarm_flags(ctx, plan, timeline)
        per_task: dict[str, list[str]] = {
            "pre-load": [t for t in dag if len(_remote_inputs(plan, dag, t)) >= 2],
            "task-dup": [t for t in dag if _remote_inputs(plan, dag, t)],
            "output-streaming": [
                t
                for t in dag
                if plan[t].worker_id is not None
                and consumers_elsewhere[t]
                and out[t] >= self.params["stream_bytes"]
            ],
        }
        for name, tasks in per_task.items():
            if tasks:
                yield name, lambda chosen, name=name: [Optimization(name, frozenset(chosen))]
                critical = [t for t in tasks if t in set(timeline.critical_path)]
                if critical and len(critical) < len(tasks):
                    yield (
                        name,
                        lambda chosen, name=name, critical=critical: [
                            Optimization(name, frozenset(critical))
                        ],
                    )
            per_task[name] = tasks
        inline_params = {
            "inline-subdag": {"max_exec_ms": self.params["inline_exec_ms"]},
            "small-results-inline": {"max_bytes": self.params["inline_bytes"]},
        }
        for name, tasks in self._inline_candidates(ctx, plan).items():
            if not tasks:
                continue
            params = inline_params[name]
            variants = [tasks]
            critical = [t for t in tasks if t in set(timeline.critical_path)]
            if critical and len(critical) < len(tasks):
                variants.append(critical)
            for chosen in variants:
                yield (
                    name,
                    lambda _all, name=name, chosen=chosen, params=params: [
                        Optimization(name, frozenset(chosen), params)
                    ],
                )

    def _better(self, new: PredictedTimeline, old: PredictedTimeline) -> bool:
        tolerance = 1 + self.params["cost_tolerance"]
        faster = new.makespan_ms < old.makespan_ms * (1 - 1e-9) and (
            new.cost_usd <= old.cost_usd * tolerance
        )
        cheaper = new.cost_usd < old.cost_usd * (1 - 1e-9) and new.makespan_ms <= old.makespan_ms
        return faster or cheaper

    def _plan(self, ctx: Context) -> Plan:
        base = BASES[self.params["base"]]()._plan(ctx)
        plan, timeline = base, base.predicted
        kept: list[Optimization] = list(base.optimizations)
        tried: set[str] = set()
        for name, propose in list(self._candidates(ctx, plan, timeline)):
            if name in tried:
                continue
            proposal: Callable[[list[str]], list[Optimization]] = propose
            flags = proposal([t for t in ctx.dag])
            if not flags:
                continue
            candidate = plan.with_optimizations([*kept, *flags])
            predicted = ctx.evaluate(candidate, tables=False)  # judged on makespan and cost
            if self._better(predicted, timeline):
                kept.extend(flags)
                plan, timeline = candidate, predicted
                tried.add(name)
        return ctx.finish(plan, timeline)


def optimization_summary(plan: Plan) -> pd.DataFrame:
    """Which optimizations a plan switches on, and for how many tasks (None: all)."""
    rows = [
        {"optimization": o.name, "tasks": None if o.tasks is None else len(o.tasks)}
        for o in plan.optimizations
    ]
    return pd.DataFrame(rows, columns=["optimization", "tasks"])
