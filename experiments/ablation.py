"""Ablation of the optimizations: each one on and off, same plans and seeds, on the examples.

Fixed-worker optimizations (pre-warm, pre-load, task-dup, output streaming) are switched on, for
every task where they can act, over the ``non-uniform`` plan; WUKONG's (fan-out and fan-in
clustering, delayed I/O) and inline-subdag over the ``wukong`` plan with its flags removed;
small-results-inline, which acts on both kinds of worker, over each. Each cell is the mean
over seeds of the simulated makespan and cost at the aws-lambda preset.

Run: ``python -m experiments.ablation [--seeds 5] [--workflows a,b]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

import pandas as pd

from dag.examples import build_example
from dag.plan import MAX_INLINE_BYTES, Optimization, Plan
from planners import ProfilesPredictor, get_planner, prewarm_flags
from planners.base import Context, as_configs, as_platform
from sim.simulate import simulate
from traces.profiles import FixedProfiles

WORKFLOWS = (
    "tree_reduction:n=64,length=1000000",
    "gemm:n=2000,blocks=4",
    "svd:rows=200000,cols=32,blocks=16",
    "image_pipeline",
    "text_analysis",
    "montage_like",
)
FIXED = ("pre-warm", "pre-load", "task-dup", "output-streaming", "small-results-inline")
WUKONG = (
    "fan-out-clustering",
    "fan-in-clustering",
    "delayed-io",
    "inline-subdag",
    "small-results-inline",
)
#: Parameters of the flags that have thresholds: WUKONG's 100 ms for a short task, and the
#: largest output a payload may carry.
PARAMS = {
    "output-streaming": {"chunk_bytes": 1 << 20},
    "inline-subdag": {"max_exec_ms": 100.0},
    "small-results-inline": {"max_bytes": MAX_INLINE_BYTES},
}


def _flags(name: str, plan: Plan, ctx: Context) -> list[Optimization]:
    if name == "pre-warm":
        return prewarm_flags(ctx, plan, plan.predicted)
    return [Optimization(name, params=PARAMS.get(name, {}))]


def _mean_run(dag, plan: Plan, profiles, platform, seeds: Sequence[int]) -> tuple[float, float]:
    results = [simulate(dag, plan, profiles, platform, seed) for seed in seeds]
    return (
        statistics.fmean(r.makespan_ms for r in results),
        statistics.fmean(r.cost["total_usd"] for r in results),
    )


def ablation(
    workflows: Sequence[str] = WORKFLOWS, seeds: Sequence[int] = range(5), platform="aws-lambda"
) -> pd.DataFrame:
    """One row per (workflow, optimization): mean makespan and cost off and on, and deltas."""
    platform = as_platform(platform)
    rows = []
    for spec in workflows:
        example = build_example(spec)
        dag = example.dag
        profiles = FixedProfiles(dag, example.runtime_ms, example.output_bytes)
        predictor = ProfilesPredictor(profiles)
        ctx = Context(dag, profiles, platform, as_configs(None), 0, "ablation")
        bases = {
            "non-uniform": get_planner("non-uniform").plan(dag, predictor, platform),
            "wukong": get_planner("wukong").plan(dag, predictor, platform),
        }
        for base_name, names in (("non-uniform", FIXED), ("wukong", WUKONG)):
            base = bases[base_name].with_optimizations([])
            base = base.with_predicted(ctx.evaluate(base))
            off_ms, off_usd = _mean_run(dag, base, profiles, platform, seeds)
            for name in names:
                flags = _flags(name, base, ctx)
                on_ms, on_usd = _mean_run(
                    dag, base.with_optimizations(flags), profiles, platform, seeds
                )
                rows.append(
                    {
                        "workflow": spec.split(":")[0],
                        "base": base_name,
                        "optimization": name,
                        "makespan_off_ms": off_ms,
                        "makespan_on_ms": on_ms,
                        "makespan_delta_pct": 100 * (on_ms - off_ms) / off_ms,
                        "cost_off_usd": off_usd,
                        "cost_on_usd": on_usd,
                        "cost_delta_pct": 100 * (on_usd - off_usd) / off_usd,
                    }
                )
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, numbers to 3 significant digits."""

    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--workflows", default=None, help="';'-separated specs (default: the examples)"
    )
    args = parser.parse_args(argv)
    workflows = args.workflows.split(";") if args.workflows else list(WORKFLOWS)
    table = ablation(workflows, range(args.seeds))
    print(markdown_table(table))


if __name__ == "__main__":
    main()
