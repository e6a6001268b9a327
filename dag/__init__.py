"""Workflow model: tasks, DAGs, resource configs and plans.

Owns `DAG`, `Task`, `ResourceConfig`, `Plan`; the `@task` workflow language; the WfFormat 1.5
reader and writer; seeded DAG generators; and the example workflows. Depends only on numpy and
networkx.
"""

from dag.generators import CostedDAG, layered_dag, topcuoglu_example
from dag.graph import DAG, CycleError, DAGError, Task, TaskHints
from dag.lang import Workflow, build, task
from dag.plan import OPTIMIZATIONS, Optimization, Placement, Plan, PlanError
from dag.profiled import ProfiledDAG
from dag.resources import ResourceConfig, lambda_cpus
from dag.wfformat import WfFormatError, WfInstance, read_wfformat, write_wfformat

__all__ = [
    "DAG",
    "CostedDAG",
    "ProfiledDAG",
    "WfFormatError",
    "WfInstance",
    "Workflow",
    "build",
    "layered_dag",
    "read_wfformat",
    "task",
    "topcuoglu_example",
    "write_wfformat",
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
