"""Running an experiment's cells: one plan and one simulated run per cell, stored as it ends.

A cell's result is a small trace set (its `runs`, `tasks` and `workers` rows) plus one row of
cell labels. `experiments.cells.CellStore` keeps each finished cell under ``OUT/cells/``: the
trace folder is written atomically, then the cell row file, whose presence marks the cell
finished. So an
interrupted sweep leaves every finished cell readable, and re-running skips them. At the end the
cells are merged, in the experiment's cell order, into ``OUT/runs.parquet``, ``tasks.parquet``,
``workers.parquet`` (a trace folder) and ``cells.parquet``.

Cells run in this process, in worker processes (``jobs``) or on a Dask cluster (``dask``); the
workers only compute, and this process stores what comes back. A cell's result depends only on
the cell (its seed drives the simulation and any profile sampling), so every way of running gives
identical tables.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.cells import (
    CELL_COLUMNS,
    CellResult,
    CellStore,
    write_parquet,
    write_trace_table,
)
from experiments.config import Cell, Experiment

logger = logging.getLogger(__name__)

# -- one cell ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _workflow(spec: str) -> Any:
    from experiments.workflows import load_workflow

    return load_workflow(spec)


@functools.lru_cache(maxsize=8)
def _traces(path: str, host_cpus: float = math.inf) -> Any:
    """The trace set at `path`; for a platform whose host shares `host_cpus` CPUs, with each
    exec time turned into its time alone (the simulator adds the sharing itself)."""
    from traces.contention import solo_exec_ms
    from traces.io import TraceSet

    traces = TraceSet.read(path)
    if math.isinf(host_cpus):
        return traces
    tasks = traces.tasks.assign(exec_ms=solo_exec_ms(traces.tasks, host_cpus))
    return TraceSet(tasks, traces.workers, traces.runs)


@functools.lru_cache(maxsize=8)
def _fitted(path: str, name: str, host_cpus: float = math.inf) -> Any:
    from traces import BaselinePredictor, LearnedPredictor

    model = {"baseline": BaselinePredictor, "learned": LearnedPredictor}[name]()
    return model.fit(_traces(path, host_cpus))


def cell_platform(cell: Cell) -> Any:
    """The cell's Platform: its preset with its overrides."""
    from sim.platform import Platform

    platform = Platform.preset(cell.platform)
    return platform.with_overrides(**dict(cell.overrides)) if cell.overrides else platform


def cell_inputs(cell: Cell) -> tuple[Any, Any, Any, Any]:
    """(workflow, planner's predictor, run profiles, platform) of a cell.

    In ``model`` mode the planner knows the workflow's modelled profiles and the run uses them;
    otherwise the planner uses a predictor fitted on the cell's traces and the run replays,
    predicts or samples (seeded by the cell's seed) from them.
    """
    from planners import ProfilesPredictor
    from traces.profiles import FixedProfiles, make_profiles

    workflow = _workflow(cell.workflow)
    dag = workflow.dag
    platform = cell_platform(cell)
    if cell.profiles == "model":
        truth = FixedProfiles(dag, workflow.runtime_ms, workflow.output_bytes)
        predictor: Any = ProfilesPredictor(truth, dag)
    else:
        traces = _traces(cell.traces, platform.host_cpus)
        predictor = _fitted(cell.traces, cell.predictor, platform.host_cpus)
        truth = make_profiles(
            dag, cell.profiles, traces=traces, predictor=predictor, seed=cell.seed
        )
    return workflow, predictor, truth, platform


def lower_bound_ms(dag: Any, profiles: Any, configs: Sequence[Any]) -> float:
    """Critical-path lower bound on the makespan: the longest chain of exec times at the
    fastest candidate config (no start-ups, no transfers), ms."""
    fastest = max(configs, key=lambda c: (c.cpus, c.memory_mb))
    return float(dag.critical_path(lambda t: profiles.exec_ms(t, fastest))[0])


#: Environment variables that tell a real cell where to run (set by ``faasdag execute``; the
#: first is `runtime.redis_driver.REDIS_URL_ENV`, named here so a sweep need not import redis).
REDIS_URL_ENV = "FAASDAG_REDIS_URL"
LAMBDA_ENDPOINT_ENV = "FAASDAG_LAMBDA_ENDPOINT"


_dashboard: Any = None


@contextlib.contextmanager
def live_dashboard(dashboard: Any):
    """Within it, every real cell run in this process is followed by `dashboard` (a
    `dashboard.Dashboard`; `faasdag execute --dashboard`)."""
    global _dashboard
    previous, _dashboard = _dashboard, dashboard
    try:
        yield dashboard
    finally:
        _dashboard = previous


def _real_run(cell: Cell, workflow: Any, plan: Any, run_id: str) -> tuple[Any, Any, Any]:
    """Run `plan` for real (``cell.backend`` is ``local`` or ``lambda``); check the results
    (an example against the direct computation, a user workflow with its module's
    ``check_<builder>`` if it has one); returns its (runs row, tasks, workers)."""
    from runtime.client import run

    if not hasattr(workflow, "check"):
        raise ValueError(
            f"workflow {cell.workflow!r} has no code to run: only examples and workflows "
            "from your code (flow.py:BUILDER, package.module:BUILDER) run for real"
        )
    options: dict[str, Any] = {}
    if cell.backend == "lambda" and os.environ.get(LAMBDA_ENDPOINT_ENV):
        options["endpoint_url"] = os.environ[LAMBDA_ENDPOINT_ENV]
    if _dashboard is not None:
        options["dashboard"] = _dashboard
    result = run(
        workflow,
        plan,
        backend=cell.backend,
        redis_url=os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0"),
        run_id=run_id,
        platform=cell_platform(cell),  # the cell's prices bill the real run
        **options,
    )
    workflow.check(result.results)
    row = result.runs.iloc[0].to_dict()
    return row, result.tasks, result.workers


def compute_cell(cell: Cell) -> CellResult:
    """Plan one cell and simulate it (``backend = "sim"``) or run it for real.

    The planner plans with ``cell.plan_seed`` (the same plan for every seed); a simulated run
    uses ``cell.seed``; a real run goes to Redis (``FAASDAG_REDIS_URL``) and local threads or
    Lambda (``FAASDAG_LAMBDA_ENDPOINT`` for the emulator), and its results are checked.
    """
    from planners import get_planner
    from planners.base import as_configs
    from sim.simulate import simulate
    from traces.schema import make_frame

    workflow, predictor, truth, platform = cell_inputs(cell)
    dag = workflow.dag
    planner = get_planner(cell.planner)
    plan = planner.plan(dag, predictor, platform, cell.configs, seed=cell.plan_seed)
    run_id = f"c{cell.cell_id}"
    if cell.backend != "sim":  # a real run is unique: the same cell may run twice at once
        run_id = f"{run_id}-{uuid.uuid4().hex[:8]}"
    predicted = plan.predicted
    labels = {
        "run_id": run_id,
        "workflow": cell.workflow,
        "dag_hash": dag.dag_hash,
        "planner": cell.planner,
        "backend": cell.backend,
        "seed": cell.seed,
        "predicted_makespan_ms": predicted.makespan_ms,
        "config": json.dumps(cell.key, sort_keys=True, default=str),
    }
    if cell.backend == "sim":
        result = simulate(
            dag, plan, truth, platform, cell.seed, run_id=run_id, workflow=cell.workflow
        )
        row, tasks, workers = result.run_row(**labels), result.tasks, result.workers
    else:
        row, tasks, workers = _real_run(cell, workflow, plan, run_id)
        row.update(labels)
        tasks = tasks.assign(workflow=cell.workflow)
    runs = make_frame("runs", [row])
    result_workers = workers
    tasks = tasks.assign(planner=cell.planner)
    configs = as_configs(planner.params.get("configs") or cell.configs)
    cell_row = pd.DataFrame(
        [
            {
                "cell_id": cell.cell_id,
                "run_id": run_id,
                "workflow": cell.workflow,
                "planner": cell.planner,
                "platform": cell.platform_label,
                "overrides": str(dict(cell.overrides)) if cell.overrides else "",
                "configs": ",".join(cell.configs) if cell.configs else "default",
                "profiles": cell.profiles,
                "predictor": cell.predictor if cell.profiles != "model" else "",
                "seed": cell.seed,
                "plan_seed": cell.plan_seed,
                "lower_bound_ms": lower_bound_ms(dag, truth, configs),
                "predicted_makespan_ms": float(predicted.makespan_ms),
                "predicted_cost_usd": float(predicted.cost_usd),
            }
        ],
        columns=list(CELL_COLUMNS),
    )
    return CellResult(cell, runs, tasks, result_workers, cell_row)


# -- running ----------------------------------------------------------------------------------


@dataclass
class SweepStats:
    """How a sweep went: cells in the experiment, skipped (already finished), computed, and
    the ones that failed (`CellFailure`, not stored: a re-run tries them again); `corrupt`
    holds the stored cells that could not be read back and were computed again (cell id ->
    one line naming the file, as `CellStore.corrupt`)."""

    n_cells: int
    n_skipped: int
    n_computed: int
    failures: list[CellFailure] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)


@dataclass
class CellFailure:
    """A cell whose planning or simulation raised: the cell and ``"ErrorType: message"``."""

    cell: Cell
    error: str

    def __str__(self) -> str:
        cell = self.cell
        return (
            f"cell {cell.cell_id} ({cell.workflow} | {cell.planner} | {cell.platform_label} | "
            f"seed {cell.seed}): {self.error}"
        )


def attempt_cell(cell: Cell) -> CellResult | CellFailure:
    """`compute_cell`, with an exception returned as a `CellFailure` (so one broken cell does
    not stop a sweep, and nothing but plain data crosses a process boundary)."""
    try:
        return compute_cell(cell)
    except Exception as error:  # noqa: BLE001 - reported per cell, the sweep goes on
        logger.debug("cell %s failed", cell.cell_id, exc_info=True)
        return CellFailure(cell, f"{type(error).__name__}: {error}")


def run_cells(
    cells: Sequence[Cell],
    store: CellStore,
    *,
    jobs: int = 1,
    dask: str | Any | None = None,
    progress: bool | None = None,
    on_result: Callable[[CellResult], None] | None = None,
) -> SweepStats:
    """Compute the cells not yet finished in `store`, storing each as it ends.

    Parameters
    ----------
    jobs : int
        Worker processes (1: this process).
    dask : str or distributed.Client, optional
        Scheduler address (or a client) of a Dask cluster; overrides `jobs`.
    progress : bool or None
        Show a tqdm bar (None: only on a terminal).
    """
    from tqdm.auto import tqdm

    todo = [c for c in cells if not store.finished(c.cell_id)]
    stats = SweepStats(len(cells), len(cells) - len(todo), 0, corrupt=dict(store.corrupt))
    if not todo:
        return stats
    bar = tqdm(
        total=len(todo),
        desc="cells",
        unit="cell",
        disable=None if progress is None else not progress,
    )

    def done(result: CellResult | CellFailure) -> None:
        bar.update(1)
        if isinstance(result, CellFailure):
            logger.info("%s", result)
            stats.failures.append(result)
            return
        store.save(result)
        stats.n_computed += 1
        if on_result is not None:
            on_result(result)

    try:
        if dask is not None:
            _run_dask(todo, dask, done)
        elif jobs > 1:
            _run_pool(todo, jobs, done)
        else:
            for cell in todo:
                done(attempt_cell(cell))
    finally:
        bar.close()
    return stats


def _run_pool(todo: Sequence[Cell], jobs: int, done: Callable[[Any], None]) -> None:
    """The cells in `jobs` worker processes. On an interrupt (or any error) the workers are
    terminated at once: a plain `shutdown` would first run every queued cell, and a worker
    left behind would outlive this process."""
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_pool_worker_signals)
    try:
        futures = [pool.submit(attempt_cell, cell) for cell in todo]
        for future in as_completed(futures):
            done(future.result())
    except BaseException:
        _terminate_pool(pool)
        raise
    pool.shutdown()


def _pool_worker_signals() -> None:
    """In a pool worker: ignore SIGINT (a Ctrl-C reaches the whole process group; the parent
    stops the workers itself) and die on SIGTERM (not run a handler inherited by fork)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _terminate_pool(pool: ProcessPoolExecutor, wait_s: float = 5.0) -> None:
    """Cancel the queued cells and terminate the pool's workers (killed after `wait_s`)."""
    # The workers, read before `shutdown` drops them (Python 3.14's terminate_workers does
    # the same; earlier versions have no public way).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(wait_s)
        if process.is_alive():
            process.kill()
            process.join()
    # Its manager thread closes the pool's wake-up pipe once it sees the workers gone; let it
    # finish, or the interpreter's exit hook may write to the pipe as it closes ("Bad file
    # descriptor", printed as an ignored exception after the one line).
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(wait_s)


def _run_dask(todo: Sequence[Cell], dask: str | Any, done: Callable[[Any], None]) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        from experiments.errors import UsageError

        raise UsageError(
            "--dask needs dask[distributed]: pip install 'dask[distributed]'"
        ) from None
    client = dask if isinstance(dask, Client) else Client(dask)
    try:
        futures = client.map(attempt_cell, list(todo), pure=False)
        for future in dask_completed(futures):
            done(future.result())
    finally:
        if client is not dask:
            client.close()


def merge(store: CellStore, experiment: Experiment) -> dict[str, pd.DataFrame]:
    """Merge the experiment's finished cells into ``OUT/*.parquet`` (in cell order); returns
    the merged tables."""
    ids = [c.cell_id for c in experiment.cells()]
    tables = store.load(ids)
    for table in ("runs", "tasks", "workers"):
        write_trace_table(tables[table], table, store.out / f"{table}.parquet")
    write_parquet(tables["cells"], store.out / "cells.parquet")
    return tables


def run_experiment(
    experiment: Experiment,
    out: str | Path,
    *,
    jobs: int = 1,
    dask: str | Any | None = None,
    progress: bool | None = None,
) -> tuple[dict[str, pd.DataFrame], SweepStats]:
    """Run (or resume) `experiment` into the folder `out` and merge its results.

    Writes ``experiment.json`` first, then each finished cell, then the merged tables.

    Returns
    -------
    (tables, stats)
        Merged ``runs``, ``tasks``, ``workers`` and ``cells`` frames, and the `SweepStats`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.json").write_text(experiment.to_json() + "\n", encoding="utf-8")
    store = CellStore(out)
    stats = run_cells(experiment.cells(), store, jobs=jobs, dask=dask, progress=progress)
    failures = out / "failures.txt"
    if stats.failures:
        failures.write_text("".join(f"{f}\n" for f in stats.failures), encoding="utf-8")
    else:
        failures.unlink(missing_ok=True)
    logger.info(
        "experiment %s: %d cells, %d skipped, %d computed",
        experiment.name,
        stats.n_cells,
        stats.n_skipped,
        stats.n_computed,
    )
    return merge(store, experiment), stats
