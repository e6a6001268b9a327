"""Planning time per planner on 1,000- and 10,000-task layered DAGs (aws-lambda preset).

Every planner simulates its final plan at least once (the plan's predicted timeline), so each
case also reports how many simulations the planner ran and the wall time of one standalone
simulation of the returned plan, measured in the same run, for comparison.
With ``--compare``, also the wall time of ``faasdag compare`` of every planner on a 600-task
WfFormat workflow with two seeds.
Run: python benchmarks/planner_speed.py [--sizes 1000,10000] [--planners uniform,heft] [--compare]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dag.generators import layered_dag
from dag.wfformat import write_wfformat
from planners import PLANNERS, ProfilesPredictor, get_planner
from sim.simulate import simulate

#: Acceptance at 10,000 tasks (issue 28): one simulation for the one-config planners, the
#: what-if loop of octo; planners that simulate in a loop otherwise get the older 30 s.
TARGET_S = {"uniform": 1.0, "heft": 1.0, "dask": 1.0, "octo": 8.0}
SIM_IN_THE_LOOP_TARGET_S = 30.0
COMPARE_TARGET_S = 15.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(n_tasks: int, name: str) -> dict:
    workflow = layered_dag(n_tasks, seed=1, ccr=0.1)
    predictor = ProfilesPredictor.from_profiled(workflow)
    planner = get_planner(name)
    start = time.perf_counter()
    plan = planner.plan(workflow.dag, predictor, "aws-lambda", seed=0)
    wall_s = time.perf_counter() - start
    start = time.perf_counter()
    simulate(workflow.dag, plan, predictor.profiles, "aws-lambda", seed=0)
    sim_s = time.perf_counter() - start
    predicted = plan.predicted
    return {
        "bench": "planner_speed",
        "case": f"PLANNER-{n_tasks}",
        "planner": name,
        "tasks": len(workflow.dag),
        "wall_s": round(wall_s, 3),
        "n_simulations": predicted.n_simulations,
        "one_sim_s": round(sim_s, 3),
        "target_s": TARGET_S.get(name, SIM_IN_THE_LOOP_TARGET_S),
        "predicted_makespan_ms": round(predicted.makespan_ms, 1),
        "predicted_cost_usd": round(predicted.cost_usd, 6),
        "n_workers": predicted.n_workers,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def compare_case(n_tasks: int = 600, seeds: int = 2) -> dict:
    """`faasdag compare` of every planner on a WfFormat file of a layered DAG (written with
    `dag.wfformat.write_wfformat`), in a process of its own, as a researcher runs it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"layered-{n_tasks}.json"
        write_wfformat(layered_dag(n_tasks, seed=1, ccr=0.1), path)
        faasdag = Path(sys.executable).with_name("faasdag")
        command = [str(faasdag), "compare", str(path), "--seeds", str(seeds)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall_s = time.perf_counter() - start
    return {
        "bench": "planner_speed",
        "case": f"compare-wfformat-{n_tasks}",
        "planners": len(PLANNERS),
        "seeds": seeds,
        "wall_s": round(wall_s, 3),
        "target_s": COMPARE_TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--planners", default=",".join(PLANNERS))
    parser.add_argument(
        "--compare", action="store_true", help="also time `faasdag compare` on 600 tasks"
    )
    args = parser.parse_args()
    for n_tasks in (int(n) for n in args.sizes.split(",") if n):
        for name in args.planners.split(","):
            print(json.dumps(run_case(n_tasks, name)), flush=True)
    if args.compare:
        print(json.dumps(compare_case()), flush=True)


if __name__ == "__main__":
    main()
