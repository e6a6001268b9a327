"""Workflow model: tasks, DAGs, resource configs and plans.

Owns `DAG`, `Task`, `ResourceConfig`, `Plan`; the `@task` workflow language; the WfFormat 1.5
reader and writer; seeded DAG generators; and the example workflows. Depends only on numpy and
networkx.
"""

from dag.graph import DAG, CycleError, DAGError, Task, TaskHints
from dag.plan import OPTIMIZATIONS, Optimization, Placement, Plan, PlanError
from dag.resources import ResourceConfig, lambda_cpus

__all__ = [
    "DAG",
    "OPTIMIZATIONS",
    "CycleError",
    "DAGError",
    "Optimization",
    "Placement",
    "Plan",
    "PlanError",
    "ResourceConfig",
    "Task",
    "TaskHints",
    "lambda_cpus",
]
