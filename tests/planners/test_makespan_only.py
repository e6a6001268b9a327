"""Makespan-only what-if runs: trials without tables, plans always with them."""

import pytest

from dag import layered_dag
from planners import PLANNERS, ProfilesPredictor, evaluate, get_planner
from planners.base import Context, as_configs, as_platform


def _context(n_tasks: int = 40) -> Context:
    workflow = layered_dag(n_tasks, seed=2, ccr=0.5)
    profiles = ProfilesPredictor.from_profiled(workflow).profiles
    return Context(
        workflow.dag, profiles, as_platform("aws-lambda"), as_configs(None), 0, "uniform"
    )


def test_a_makespan_only_timeline_has_every_figure_but_the_table():
    """evaluate(tables=False): makespan, cost, critical path as the full one; no table."""
    ctx = _context()
    plan = get_planner("uniform").plan(ctx.dag, ProfilesPredictor(ctx.profiles, ctx.dag))
    full = evaluate(ctx.dag, plan, ctx.profiles, ctx.platform, 0)
    light = evaluate(ctx.dag, plan, ctx.profiles, ctx.platform, 0, tables=False)
    assert light.tasks is None
    for name in ("makespan_ms", "cost_usd", "cost", "critical_path", "n_cold", "n_workers"):
        assert getattr(light, name) == getattr(full, name)
    assert light.with_tables().tasks.equals(full.tasks)


def test_finish_builds_the_table_of_a_makespan_only_timeline():
    """Context.finish attaches the table from the same run, with no simulation more."""
    ctx = _context()
    plan = get_planner("dask").plan(ctx.dag, ProfilesPredictor(ctx.profiles, ctx.dag))
    plan = ctx.make_plan(plan.placements)
    light = ctx.evaluate(plan, tables=False)
    finished = ctx.finish(plan, light)
    assert ctx.n_simulations == 1 and finished.predicted.n_simulations == 1
    full = evaluate(ctx.dag, plan, ctx.profiles, ctx.platform, 0)
    assert finished.predicted.tasks.equals(full.tasks)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_every_planner_returns_a_plan_with_its_table(name):
    """Whatever trials ran makespan-only, the returned plan's timeline has its tasks table."""
    workflow = layered_dag(30, seed=3, ccr=0.5)
    plan = get_planner(name).plan(workflow.dag, ProfilesPredictor.from_profiled(workflow))
    assert plan.predicted.tasks is not None
    assert list(plan.predicted.tasks.index) == list(workflow.dag.topological_order())
