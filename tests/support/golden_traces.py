"""Golden hashes of simulated trace tables: what the engine computes, frozen.

For every example workflow (`dag.examples.EXAMPLES`, at small sizes), every registered planner
(`planners.PLANNERS`) and a few seeds, a case plans the workflow, simulates the plan and hashes
what came out: the plan (placements, flags), the planner's predicted timeline, and the
simulated `tasks`, `workers` and `runs` tables. A few extra cases run the same plans on the
platforms whose host is shared (round-robin and processor-sharing CPUs) and on the ideal one,
and the benchmark's own shape (a layered DAG, every task on its own flexible worker).

A table hashes in a canonical form: columns sorted by name, each with its dtype, then every
value as text, in row order (the order is part of the output); floats by their exact ``repr``.
The engine must reproduce these hashes bit for bit (`tests/sim/test_golden.py`).

The committed hashes were recorded on the engine as it was before it was made faster (commit
bf69ff1), so they freeze what it computed then.

Regenerate (only when a change of results is intended, and say why in the commit):
    .venv/bin/python tests/support/golden_traces.py [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

GOLDEN_FILE = Path(__file__).resolve().parents[1] / "sim" / "golden_traces.json"

#: Example workflows at sizes small enough for every planner (octo simulates many times).
EXAMPLE_SPECS = {
    "tree_reduction": {"n": 16},
    "gemm": {"blocks": 3},
    "svd": {"blocks": 8},
    "image_pipeline": {"tiles": 3},
    "text_analysis": {"chunks": 8},
    "montage_like": {"grid": 3},
}
SEEDS = (0, 1)
#: Planners re-run on the other platforms (seed 0 only).
PLATFORM_PLANNERS = ("uniform", "wukong", "dask", "octo")


def _text(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "<NA>"
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if hasattr(value, "item"):  # numpy scalar
        return _text(value.item())
    if isinstance(value, int):
        return repr(value)
    return repr(str(value))


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 of a frame in canonical form: sorted columns with their dtypes, values as text."""
    digest = hashlib.sha256()
    if frame.index.name is not None or not isinstance(frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    for name in sorted(frame.columns, key=str):
        column = frame[name]
        digest.update(f"{name}:{column.dtype}\n".encode())
        digest.update("\x1f".join(_text(v) for v in column.tolist()).encode())
        digest.update(b"\n")
    digest.update(f"rows:{len(frame)}".encode())
    return digest.hexdigest()[:24]


def value_hash(value: Any) -> str:
    """sha256 of a JSON-able value, floats by their exact repr."""

    def canon(obj: Any) -> Any:
        if isinstance(obj, float):
            return repr(obj)
        if isinstance(obj, dict):
            return {str(k): canon(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
        if isinstance(obj, list | tuple):
            return [canon(v) for v in obj]
        if hasattr(obj, "item"):
            return canon(obj.item())
        return obj if isinstance(obj, int | str | bool | type(None)) else repr(obj)

    return hashlib.sha256(json.dumps(canon(value), sort_keys=True).encode()).hexdigest()[:24]


def plan_summary(plan: Any) -> dict[str, Any]:
    return {
        "placements": [
            (t, p.worker_id, p.config.memory_mb, p.config.cpus)
            for t, p in sorted(plan.placements.items())
        ],
        "optimizations": [
            (o.name, sorted(o.tasks) if o.tasks is not None else None, repr(dict(o.params)))
            for o in plan.optimizations
        ],
        "order": None if plan.order is None else sorted(plan.order.items()),
    }


def case_hashes(dag: Any, plan: Any, profiles: Any, platform: Any, seed: int) -> dict[str, Any]:
    """Hashes of one planned and simulated case."""
    from sim.simulate import simulate

    result = simulate(dag, plan, profiles, platform, seed)
    predicted = plan.predicted
    out: dict[str, Any] = {"plan": value_hash(plan_summary(plan))}
    if predicted is not None:
        out["predicted"] = value_hash(
            {
                "tasks": frame_hash(predicted.tasks),
                "makespan_ms": predicted.makespan_ms,
                "cost": dict(predicted.cost),
                "critical_path": list(predicted.critical_path),
                "n_cold": predicted.n_cold,
                "n_workers": predicted.n_workers,
                "n_simulations": predicted.n_simulations,
                "planner_estimate_ms": predicted.planner_estimate_ms,
            }
        )
    out["tasks"] = frame_hash(result.tasks)
    out["workers"] = frame_hash(result.workers)
    out["runs"] = value_hash(
        {
            **result.run_row(seed=seed, planner=plan.planner),
            "critical_path": list(result.critical_path),
            "n_warm": result.n_warm,
            "n_store_commands": result.n_store_commands,
            "n_publishes": result.n_publishes,
            "uploads": list(result.uploads),
        }
    )
    out["makespan_ms"] = repr(result.makespan_ms)
    return out


def _platforms() -> dict[str, Any]:
    from sim.platform import Platform

    local = Platform.preset("local")
    return {
        "local": local,  # a shared host: round-robin CPUs
        "local-ps": local.with_overrides(host_quantum_ms=0.0),  # processor-sharing CPUs
        "ideal": Platform.preset("ideal"),
    }


def _flagged_plans(dag: Any) -> dict[str, Any]:
    """Plans with every optimization flag on: fixed and flexible workers mixed (pre-warm,
    pre-load, task-dup, output streaming), and all flexible (WUKONG's clustering and delayed
    I/O, inline sub-DAGs, small results inline)."""
    from plans import plans_for

    from dag import Optimization, ResourceConfig

    shapes = plans_for(dag)
    warm = [
        Optimization("pre-warm", params={"config": ResourceConfig(1024), "at_ms": 0.0}),
        Optimization("pre-warm", params={"config": ResourceConfig(1024), "at_ms": 150.0}),
    ]
    mixed = [
        *warm,
        Optimization("pre-load"),
        Optimization("task-dup"),
        Optimization("output-streaming", params={"chunk_bytes": 1 << 16}),
    ]
    flexible = [
        *warm,
        Optimization("fan-out-clustering", params={"max_exec_ms": 50.0, "min_input_bytes": 1}),
        Optimization("fan-in-clustering", params={"min_output_bytes": 0}),
        Optimization("delayed-io", params={"min_output_bytes": 0}),
        Optimization("inline-subdag", params={"max_exec_ms": 30.0}),
        Optimization("small-results-inline", params={"max_bytes": 32 * 1024}),
    ]
    return {
        "mixed": shapes["mixed"].with_optimizations(mixed),
        "flexible": shapes["flexible"].with_optimizations(flexible),
        "small": shapes["flexible"].with_optimizations(
            [Optimization("small-results-inline", params={"max_bytes": 96 * 1024})]
        ),
    }


def cases() -> Iterator[tuple[str, Any]]:
    """(case name, thunk computing its hashes), in a fixed order."""
    from dag import Placement, Plan, ResourceConfig
    from dag.examples import EXAMPLES
    from dag.generators import layered_dag
    from planners import PLANNERS, ProfilesPredictor, get_planner

    for example, params in EXAMPLE_SPECS.items():
        workflow = EXAMPLES[example](**params)
        predictor = ProfilesPredictor.from_profiled(workflow)
        for planner in PLANNERS:
            for seed in SEEDS:

                def run(workflow=workflow, predictor=predictor, planner=planner, seed=seed):
                    plan = get_planner(planner).plan(
                        workflow.dag, predictor, "aws-lambda", seed=seed
                    )
                    return case_hashes(workflow.dag, plan, predictor.profiles, "aws-lambda", seed)

                yield f"{example}/{planner}/aws-lambda/{seed}", run
        for label, platform in _platforms().items():
            for planner in PLATFORM_PLANNERS:

                def run(workflow=workflow, predictor=predictor, planner=planner, p=platform):
                    plan = get_planner(planner).plan(workflow.dag, predictor, p, seed=0)
                    return case_hashes(workflow.dag, plan, predictor.profiles, p, 0)

                yield f"{example}/{planner}/{label}/0", run
    # Every optimization forced on, over the plan shapes the runtime tests use.
    for example, params in EXAMPLE_SPECS.items():
        workflow = EXAMPLES[example](**params)
        profiles = ProfilesPredictor.from_profiled(workflow).profiles
        for shape, plan in _flagged_plans(workflow.dag).items():
            for label in ("aws-lambda", "local"):
                platform = label if label == "aws-lambda" else _platforms()["local"]

                def run(dag=workflow.dag, plan=plan, profiles=profiles, platform=platform):
                    return case_hashes(dag, plan, profiles, platform, 0)

                yield f"{example}/flags-{shape}/{label}/0", run
    # The benchmark's shape: a layered DAG, every task on its own flexible worker.
    layered = layered_dag(400, seed=1, mean_runtime_ms=200.0, ccr=0.05)
    profiles = ProfilesPredictor.from_profiled(layered).profiles
    flexible = Plan(
        {t: Placement(None, ResourceConfig(1024)) for t in layered.dag}, planner="flexible-1024"
    )
    for seed in SEEDS:
        yield (
            f"layered-400/flexible-1024/aws-lambda/{seed}",
            lambda seed=seed: case_hashes(layered.dag, flexible, profiles, "aws-lambda", seed),
        )


def compute() -> dict[str, dict[str, Any]]:
    return {name: run() for name, run in cases()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--root",
        default=str(Path(__file__).resolve().parents[2]),
        help="checkout whose engine computes the hashes (default: this one)",
    )
    parser.add_argument("--out", default=str(GOLDEN_FILE))
    args = parser.parse_args()
    sys.path[:0] = [args.root, str(Path(__file__).resolve().parent)]
    golden = compute()
    Path(args.out).write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(golden)} cases to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
