"""Simulator speed on layered DAGs with the full aws-lambda model, against raw SimPy.

Every task runs on its own flexible worker at 1024 MB. Prints one JSON object per case: wall
time of one `simulate` (tables included), tasks and SimPy events per second, peak RSS, and the
raw SimPy event rate (a process yielding timeouts) measured in the same run, with the ratio of
the two; then, with two sizes or more, how the wall time grows from the smallest to the largest.

The DAG's structure hash (computed once per DAG, then cached; it labels the trace rows) is
computed before the clock starts for every size alike, as the first run of the smallest size
is a warm-up that has it already.

Run: python benchmarks/sim_speed.py [--sizes 10000,100000]
     python benchmarks/sim_speed.py --sizes 1000000   (a million tasks: on request only)
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import time

import simpy

from dag import Placement, Plan, ResourceConfig
from dag.generators import layered_dag
from sim.simulate import simulate
from traces.profiles import FixedProfiles

#: Acceptance figures of issue 28 (wall seconds, peak RSS MB) per size.
TARGETS = {10_000: (0.5, None), 100_000: (6.0, 600.0), 1_000_000: (90.0, 4096.0)}
MAX_GROWTH_PER_10X = 11.0


def raw_simpy_events_per_s(n_events: int = 300_000) -> float:
    """Timeouts per second that a bare SimPy process achieves on this machine (best of 3)."""
    best = 0.0
    for _ in range(3):
        env = simpy.Environment()

        def ticker(env=env):
            for _ in range(n_events):
                yield env.timeout(1)

        env.process(ticker())
        start = time.perf_counter()
        env.run()
        best = max(best, n_events / (time.perf_counter() - start))
    return best


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(n_tasks: int, raw_rate: float) -> dict:
    workflow = layered_dag(n_tasks, seed=1, mean_runtime_ms=200.0, ccr=0.05)
    dag = workflow.dag
    placement = Placement(None, ResourceConfig(1024))  # one object for every task
    plan = Plan(dict.fromkeys(dag, placement), planner="flexible-1024")
    profiles = FixedProfiles(dag, workflow.runtime_ms, workflow.output_bytes)
    del workflow
    dag.dag_hash  # noqa: B018 - computed once per DAG, before the clock (see the docstring)
    # Small cases repeat (median of 3) so one scheduling hiccup on a shared machine does not
    # decide the figure; the first call also pays lazy imports, so a first run warms up.
    if n_tasks <= 10_000:
        simulate(dag, plan, profiles, "aws-lambda", seed=1)
    walls = []
    for _ in range(3 if n_tasks <= 10_000 else 1):
        result = None  # the previous run's tables go before the next run starts
        start = time.perf_counter()
        result = simulate(dag, plan, profiles, "aws-lambda", seed=1)
        walls.append(time.perf_counter() - start)
    wall_s = statistics.median(walls)
    events_per_s = result.n_events / wall_s
    target_s, target_rss = TARGETS.get(n_tasks, (None, None))
    return {
        "bench": "sim_speed",
        "case": f"layered-{n_tasks}",
        "tasks": len(dag),
        "edges": dag.n_edges,
        "wall_s": round(wall_s, 3),
        "repeats": len(walls),
        "tasks_per_s": round(len(dag) / wall_s, 1),
        "events": result.n_events,
        "events_per_s": round(events_per_s, 1),
        "simpy_events_per_s": round(raw_rate, 1),
        "events_vs_simpy": round(events_per_s / raw_rate, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "target_s": target_s,
        "target_rss_mb": target_rss,
        "makespan_ms": round(result.makespan_ms, 3),
        "n_cold": result.n_cold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    raw_rate = raw_simpy_events_per_s()
    cases = []
    for n in args.sizes.split(","):
        cases.append(run_case(int(n), raw_rate))
        print(json.dumps(cases[-1]), flush=True)
    if len(cases) > 1:
        small, large = cases[0], cases[-1]
        ratio_tasks = large["tasks"] / small["tasks"]
        ratio_wall = large["wall_s"] / small["wall_s"]
        print(
            json.dumps(
                {
                    "bench": "sim_speed",
                    "case": "scaling",
                    "wall_s": large["wall_s"],
                    "ratio_wall": round(ratio_wall, 2),
                    "ratio_tasks": round(ratio_tasks, 2),
                    # wall growth per 10x tasks, for any pair of sizes
                    "growth_per_10x": round(ratio_wall ** (1 / math.log10(ratio_tasks)), 2),
                    "target_growth_per_10x": MAX_GROWTH_PER_10X,
                }
            )
        )


if __name__ == "__main__":
    main()
