"""Side-by-side what-if comparison of planners on one workflow: predicted makespan and cost."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from dag.graph import DAG
from dag.resources import ResourceConfig
from planners.base import Planner
from planners.registry import PLANNERS, get_planner
from sim.platform import Platform


def compare_planners(
    dag: DAG,
    predictor: Any,
    planners: Iterable[str | Planner] = tuple(PLANNERS),
    platform: Platform | str = "aws-lambda",
    configs: Sequence[ResourceConfig | int | str] | None = None,
    *,
    seed: int | None = 0,
) -> pd.DataFrame:
    """One row per planner: its spec, predicted makespan (ms) and cost (USD), workers, cold
    starts and the simulations it ran; every figure from the plan's simulated timeline."""
    rows = []
    for spec in planners:
        planner = get_planner(spec)
        predicted = planner.plan(dag, predictor, platform, configs, seed=seed).predicted
        rows.append(
            {
                "workflow": dag.name,
                "planner": planner.spec,
                "makespan_ms": predicted.makespan_ms,
                "cost_usd": predicted.cost_usd,
                "n_workers": predicted.n_workers,
                "n_cold": predicted.n_cold,
                "n_simulations": predicted.n_simulations,
            }
        )
    return pd.DataFrame(rows)
