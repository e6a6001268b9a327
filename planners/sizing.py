"""Per-worker right-sizing by simulation: `non-uniform`, `deadline` and `cost-min`.

All three start from the `uniform` plan at the largest candidate config (same worker ids) and
only ever downgrade whole workers, checking each change by simulating it on predicted profiles.

Search (`downgrade_search`): workers are ordered by slack (most slack first; slack read off the
simulated timeline). For each smaller config, smallest first, the planner tries moving every
remaining candidate worker to it at once; if the simulated plan is not acceptable it bisects on
the prefix of the slack order, keeping the longest acceptable prefix it finds. Workers that could
not move try the next larger config. A budget (``max_sims``) bounds the simulations, since one
simulation of a 10,000-task plan takes a couple of seconds; every accepted step was simulated, so
the returned plan's prediction is exact, never extrapolated.

- ``non-uniform`` (octoflows' non-uniform planner): first the workers off the critical path,
  accepted while the predicted makespan stays within ``tolerance`` (relative, default 1%) of the
  uniform plan's and the predicted cost does not grow; then right-sizing of the critical path's
  workers, accepted under the same two conditions.
- ``deadline``: minimise predicted cost subject to predicted makespan <= the deadline
  (``deadline_ms``, or ``slack`` times over the uniform plan's makespan). If even the uniform plan
  at the largest config misses it, that plan (the fastest one considered) is returned.
- ``cost-min``: ``deadline`` with no deadline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

from dag.plan import Plan
from dag.resources import ResourceConfig
from planners.base import (
    Context,
    Param,
    Planner,
    PredictedTimeline,
    is_non_negative,
    is_positive,
    parse_configs,
)
from planners.simple import chain_workers, fixed_placements

logger = logging.getLogger(__name__)

Accept = Callable[[PredictedTimeline, PredictedTimeline], bool]


def uniform_start(ctx: Context) -> tuple[dict[str, str], dict[str, ResourceConfig], Plan]:
    """The uniform plan at the largest config: worker per task, config per worker, plan."""
    worker_of = chain_workers(ctx, ctx.largest)
    config_of = {w: ctx.largest for w in dict.fromkeys(worker_of.values())}
    return worker_of, config_of, ctx.make_plan(fixed_placements(worker_of, config_of))


def slack_order(
    ctx: Context, worker_of: dict[str, str], timeline: PredictedTimeline, workers
) -> list[str]:
    """`workers`, most slack first (a worker's slack: the least of its tasks')."""
    slack = timeline.slack_ms(ctx.dag)
    least: dict[str, float] = {}
    for task_id, worker_id in worker_of.items():
        least[worker_id] = min(least.get(worker_id, math.inf), slack[task_id])
    rank = {w: i for i, w in enumerate(dict.fromkeys(worker_of.values()))}
    return sorted(workers, key=lambda w: (-least[w], rank[w]))


def downgrade_search(
    ctx: Context,
    worker_of: dict[str, str],
    config_of: dict[str, ResourceConfig],
    candidates: Sequence[str],
    current: PredictedTimeline,
    accept: Accept,
    max_sims: int,
) -> tuple[dict[str, ResourceConfig], PredictedTimeline]:
    """Move `candidates` (in order) to smaller configs while `accept(new, current)` holds.

    Returns the accepted config per worker and the timeline of that plan. Stops trying once
    ``ctx.n_simulations`` reaches `max_sims`.
    """
    config_of = dict(config_of)

    def trial(moved: Sequence[str], target: ResourceConfig) -> PredictedTimeline | None:
        configs = dict(config_of)
        configs.update(dict.fromkeys(moved, target))
        # Makespan-only: a trial is judged on makespan and cost; the kept one gets its table
        # when the plan is finished.
        timeline = ctx.evaluate(ctx.make_plan(fixed_placements(worker_of, configs)), tables=False)
        return timeline if accept(timeline, current) else None

    for target in ctx.configs:
        remaining = [w for w in candidates if config_of[w] > target]
        if not remaining or ctx.n_simulations >= max_sims:
            continue
        good, bad = 0, len(remaining)
        timeline = trial(remaining, target)
        if timeline is not None:
            good, current = bad, timeline
        while bad - good > 1 and ctx.n_simulations < max_sims:
            mid = (good + bad) // 2
            timeline = trial(remaining[:mid], target)
            if timeline is None:
                bad = mid
            else:
                good, current = mid, timeline
        config_of.update(dict.fromkeys(remaining[:good], target))
    return config_of, current


_MAX_SIMS = Param(
    int,
    12,
    "simulations the planner may run (the first, of the uniform plan, included)",
    is_positive,
    "an int > 0",
)
_CONFIGS = Param(parse_configs, None, "candidate configs (default: the configs passed to plan)")


class NonUniformPlanner(Planner):
    """Largest config, then off-critical-path workers downgraded within a makespan tolerance
    and the critical path right-sized (octoflows' non-uniform planner)."""

    name = "non-uniform"
    PARAMS = {
        "configs": _CONFIGS,
        "tolerance": Param(
            float,
            0.01,
            "relative makespan increase over the uniform plan allowed (0.01 = 1%)",
            is_non_negative,
            "a number >= 0",
        ),
        "max_sims": _MAX_SIMS,
    }

    def _plan(self, ctx: Context) -> Plan:
        worker_of, config_of, plan = uniform_start(ctx)
        base = ctx.evaluate(plan)
        bound_ms = base.makespan_ms * (1 + self.params["tolerance"])

        def accept(new: PredictedTimeline, current: PredictedTimeline) -> bool:
            return new.makespan_ms <= bound_ms and new.cost_usd <= current.cost_usd

        max_sims = int(self.params["max_sims"])
        on_path = {worker_of[t] for t in base.critical_path}
        off_path = [w for w in config_of if w not in on_path]
        order = slack_order(ctx, worker_of, base, off_path)
        config_of, current = downgrade_search(
            ctx, worker_of, config_of, order, base, accept, max_sims
        )
        on_path = list(dict.fromkeys(worker_of[t] for t in current.critical_path))

        def cheaper(new: PredictedTimeline, current: PredictedTimeline) -> bool:
            return new.makespan_ms <= bound_ms and new.cost_usd < current.cost_usd

        config_of, current = downgrade_search(
            ctx, worker_of, config_of, on_path, current, cheaper, max_sims
        )
        return ctx.finish(ctx.make_plan(fixed_placements(worker_of, config_of)), current)


class DeadlinePlanner(Planner):
    """Least predicted cost with predicted makespan within a deadline, by per-worker
    downgrades from the largest config (greedy bisection over the simulator)."""

    name = "deadline"
    PARAMS = {
        "configs": _CONFIGS,
        "deadline_ms": Param(
            float, None, "deadline on the predicted makespan, ms", is_positive, "a number > 0"
        ),
        "slack": Param(
            float,
            0.25,
            "without deadline_ms: deadline = uniform-at-largest makespan * (1 + slack)",
            is_non_negative,
            "a number >= 0",
        ),
        "max_sims": _MAX_SIMS,
    }

    def deadline_for(self, base: PredictedTimeline) -> float:
        """The deadline in ms given the uniform plan's timeline."""
        if self.params["deadline_ms"] is not None:
            return float(self.params["deadline_ms"])
        return base.makespan_ms * (1 + float(self.params["slack"]))

    def _plan(self, ctx: Context) -> Plan:
        worker_of, config_of, plan = uniform_start(ctx)
        base = ctx.evaluate(plan)
        deadline_ms = self.deadline_for(base)
        if base.makespan_ms > deadline_ms:
            logger.warning(
                "%s: even the uniform plan at %s predicts %.1f ms > deadline %.1f ms; returning it",
                self.spec,
                ctx.largest,
                base.makespan_ms,
                deadline_ms,
            )
            return ctx.finish(plan, base)

        def accept(new: PredictedTimeline, current: PredictedTimeline) -> bool:
            return new.makespan_ms <= deadline_ms and new.cost_usd < current.cost_usd

        order = slack_order(ctx, worker_of, base, list(config_of))
        config_of, current = downgrade_search(
            ctx, worker_of, config_of, order, base, accept, int(self.params["max_sims"])
        )
        return ctx.finish(ctx.make_plan(fixed_placements(worker_of, config_of)), current)


class CostMinPlanner(DeadlinePlanner):
    """Least predicted cost, any makespan (`deadline` with an infinite slack)."""

    name = "cost-min"
    PARAMS = {
        **DeadlinePlanner.PARAMS,
        "slack": Param(
            float,
            math.inf,
            "deadline = uniform-at-largest makespan * (1 + slack); default no deadline",
            is_non_negative,
            "a number >= 0",
        ),
    }
