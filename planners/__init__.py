"""Planner algorithms (uniform, non-uniform, WUKONG, HEFT, CPOP, Dask-style, cost/deadline) and
what-if evaluation of a plan by simulation.

    >>> planner = get_planner("non-uniform:configs=1024,2048,4096")
    >>> plan = planner.plan(dag, predictor, "aws-lambda")
    >>> plan.predicted.makespan_ms, plan.predicted.cost_usd

Every plan carries its `PredictedTimeline` (``plan.predicted``), simulated by `sim` on predicted
profiles; see `planners.base`.
"""

from planners.base import (
    DEFAULT_CONFIGS,
    TIMELINE_COLUMNS,
    Planner,
    PlannerError,
    PredictedTimeline,
    ProfilesPredictor,
    evaluate,
    predicted_profiles,
)
from planners.compare import compare_planners
from planners.heft import (
    ClassicSchedule,
    CostedProfiles,
    CpopPlanner,
    HeftPlanner,
    classic_plan,
    cpop_schedule,
    heft_schedule,
)
from planners.octo import OctoPlanner, prewarm_flags
from planners.registry import PLANNERS, get_planner, parse_spec
from planners.simple import DaskPlanner, UniformPlanner, WukongPlanner, chain_workers
from planners.sizing import CostMinPlanner, DeadlinePlanner, NonUniformPlanner

__all__ = [
    "OctoPlanner",
    "prewarm_flags",
    "DEFAULT_CONFIGS",
    "PLANNERS",
    "TIMELINE_COLUMNS",
    "ClassicSchedule",
    "CostMinPlanner",
    "CostedProfiles",
    "CpopPlanner",
    "DaskPlanner",
    "DeadlinePlanner",
    "HeftPlanner",
    "NonUniformPlanner",
    "Planner",
    "PlannerError",
    "PredictedTimeline",
    "ProfilesPredictor",
    "UniformPlanner",
    "WukongPlanner",
    "chain_workers",
    "classic_plan",
    "compare_planners",
    "cpop_schedule",
    "evaluate",
    "get_planner",
    "heft_schedule",
    "parse_spec",
    "predicted_profiles",
]
