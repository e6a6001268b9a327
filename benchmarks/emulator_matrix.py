"""Every example workflow under every planner and every optimization, run for real on the local
Lambda emulator with a private Redis; each result checked against the direct computation.

Prints one JSON line per failed run, then one summary object (runs ok, runs failed, wall time).
Run: python benchmarks/emulator_matrix.py
"""

from __future__ import annotations

import json
import time

from dag import Optimization
from dag.examples import EXAMPLES, build_example
from dag.resources import ResourceConfig
from planners import PLANNERS, ProfilesPredictor, get_planner
from runtime.client import run
from runtime.lambda_local.server import LambdaEmulator
from runtime.local_redis import local_redis

CONFIGS = [ResourceConfig(1024), ResourceConfig(2048)]
#: Each optimization with parameters that make it act on these small examples.
FLAGS = {
    "pre-warm": Optimization("pre-warm", params={"config": CONFIGS[1], "at_ms": 0}),
    "pre-load": Optimization("pre-load"),
    "task-dup": Optimization("task-dup"),
    "output-streaming": Optimization("output-streaming", params={"chunk_bytes": 65536}),
    "fan-out-clustering": Optimization("fan-out-clustering", params={"max_exec_ms": 50}),
    "fan-in-clustering": Optimization("fan-in-clustering", params={"min_output_bytes": 0}),
    "delayed-io": Optimization("delayed-io", params={"min_output_bytes": 0}),
    "inline-subdag": Optimization("inline-subdag", params={"max_exec_ms": 100.0}),
    "small-results-inline": Optimization("small-results-inline", params={"max_bytes": 65536}),
}
FLEXIBLE_ONLY = {"fan-out-clustering", "fan-in-clustering", "delayed-io", "inline-subdag"}


def cases(example):
    """(label, plan): every planner's plan, then each optimization on a base plan."""
    predictor = ProfilesPredictor.from_profiled(example)
    plans = {
        p: get_planner(p).plan(example.dag, predictor, "aws-lambda", CONFIGS) for p in PLANNERS
    }
    yield from plans.items()
    for name, flag in FLAGS.items():
        base = plans["wukong" if name in FLEXIBLE_ONLY else "uniform"]
        # The base plan's predictions give task-dup its run-time estimates.
        yield name, base.with_optimizations([flag]).with_predicted(base.predicted)


def main() -> None:
    ok = failed = 0
    start = time.perf_counter()
    with local_redis() as redis, LambdaEmulator(max_concurrency=24, keep_alive_s=300) as emulator:
        for config in CONFIGS:
            emulator.add_function(
                f"faasdag-{config.memory_mb}",
                config.memory_mb,
                environment={"FAASDAG_REDIS_URL": redis.url},
            )
        for name in sorted(EXAMPLES):
            example = build_example(name)
            for label, plan in cases(example):
                try:
                    result = run(
                        example,
                        plan,
                        backend="lambda",
                        endpoint_url=emulator.endpoint_url,
                        redis_url=redis.url,
                        timeout_s=120,
                    )
                    example.check(result.results)
                    ok += 1
                except Exception as error:  # noqa: BLE001 - reported, the matrix goes on
                    failed += 1
                    print(json.dumps({"failed": f"{name} / {label}", "error": repr(error)[:300]}))
    summary = {
        "bench": "emulator_matrix",
        "case": "examples-x-planners-and-optimizations",
        "ok": ok,
        "failed": failed,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
