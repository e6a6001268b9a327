"""Predictor fit and query cost on 100k task rows (issue 3, acceptance 3).

Prints one JSON line: fit time of LearnedPredictor on 100k synthetic task rows (500 runs of 200
tasks, 4 functions), per-query time of its batched exec-time query (100k queries, q=0.9), and
the same two figures for BaselinePredictor, measured in the same run.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traces import BaselinePredictor, LearnedPredictor, synthetic_traces  # noqa: E402

N_RUNS, TASKS_PER_RUN = 500, 200


def _time_fit_and_query(predictor, tasks, repeats: int = 3) -> tuple[float, float]:
    fit_s = min(_timed(lambda: predictor.fit(tasks)) for _ in range(repeats))
    args = (
        tasks["function"].to_numpy(dtype=object),
        tasks["input_bytes"].to_numpy(),
        tasks["memory_mb"].to_numpy(),
        tasks["cpus"].to_numpy(),
    )
    query_s = min(_timed(lambda: predictor.exec_ms_many(*args, q=0.9)) for _ in range(repeats))
    return fit_s, query_s / len(tasks) * 1e6


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    wall = time.perf_counter()
    tasks = synthetic_traces(
        n_runs=N_RUNS, tasks_per_run=TASKS_PER_RUN, drift_per_run=0.002, seed=0
    ).tasks
    fit_s, query_us = _time_fit_and_query(LearnedPredictor(), tasks)
    base_fit_s, base_query_us = _time_fit_and_query(BaselinePredictor(), tasks)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "bench": "predictor_fit",
                "case": f"rows-{len(tasks)}",
                "wall_s": round(time.perf_counter() - wall, 3),
                "fit_s": round(fit_s, 4),
                "query_us": round(query_us, 4),
                "baseline_fit_s": round(base_fit_s, 4),
                "baseline_query_us": round(base_query_us, 4),
                "peak_rss_mb": round(peak_kb / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
