"""Step 3, validation: leave-one-run-out simulation of every recorded run (`validate_traces`).

For each recorded run: the plan that ran (its cell's planner, re-planned on the preset the
recording planned with, and checked against where the run's tasks ran: `_check_plan_ran`),
the platform and profiles fitted on the other runs only (`experiments.fidelity.fit`, as
`HOST_FITS` says), and one simulation. One row per run: simulated and real makespan and billed
cost (`billed_cost_usd`, the same prices on both sides), and their relative errors.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from experiments.fidelity.config import FidelityConfig
from experiments.fidelity.fit import (
    SimulatedLogMakespans,
    _unbiased_host_cpus,
    fit_round_host_cpus,
    median_profiles,
    refined_platform,
)
from experiments.fidelity.record import plan_cell, warm_regime

log = logging.getLogger(__name__)

#: How `validate_traces` fits the host CPUs a run is simulated with: ``"round"`` moves the fit
#: on its workflow's other rounds by the speed of the run's round, measured on its round-mates
#: (`fit_round_host_cpus`); ``"other-rounds"`` keeps the fit on the other rounds.
HOST_FITS = ("round", "other-rounds")


def billed_cost_usd(workers: pd.DataFrame, platform: Any) -> float:
    """Cost of a run from its workers table: GB-seconds from ready to end plus requests, USD.

    Both sides use ``end_ms - ready_ms`` (the real driver bills that span; the simulator's
    ``billed_ms`` also counts its modelled start-up), so the comparison is like for like.
    """
    if workers.empty:
        return 0.0
    busy_ms = np.ceil((workers["end_ms"] - workers["ready_ms"]).clip(lower=0.0))
    gb_s = float((busy_ms * workers["memory_mb"] / 1024.0).sum()) / 1000.0
    return gb_s * platform.price_per_gb_s + len(workers) * platform.price_per_request


def _planning_platform(preset: str | None, fallback: Any) -> Any:
    """The warm platform a recorded cell was planned on (its ``preset``), else `fallback`."""
    from sim.platform import Platform

    if not preset:
        return fallback
    try:
        return warm_regime(Platform.preset(preset))
    except (ValueError, OSError) as err:  # moved or removed since: the placement check decides
        log.warning("planning on the validation preset: the cell's preset %r: %s", preset, err)
        return fallback


def _check_plan_ran(plan: Any, tasks: pd.DataFrame, run: Any) -> None:
    """Raise ValueError unless every task of `run` ran where `plan` places it: on its worker
    (when the plan names one; a retry keeps the worker id) and with its memory size."""
    rows = tasks[~tasks["duplicated"]]
    workers: dict[str, set[str]] = {}
    memory: dict[str, set[int]] = {}
    for task_id, worker_id, memory_mb in zip(
        rows["task_id"], rows["worker_id"], rows["memory_mb"], strict=True
    ):
        workers.setdefault(task_id, set()).add(str(worker_id))
        memory.setdefault(task_id, set()).add(int(memory_mb))
    for task_id, placement in plan.placements.items():
        ran = (sorted(workers.get(task_id, ())), sorted(memory.get(task_id, ())))
        planned = (
            [placement.worker_id] if placement.worker_id is not None else ran[0],
            [placement.config.memory_mb],
        )
        if ran != planned:
            raise ValueError(
                f"run {run.run_id} ({run.cell_workflow}, {run.cell_planner}): task {task_id!r} "
                f"ran on worker(s) {ran[0] or 'none'} with {ran[1] or '?'} MB, but the plan to "
                f"simulate places it on {placement.worker_id or 'a flexible worker'} with "
                f"{placement.config.memory_mb} MB: the cell's preset {run.cell_preset!r} is "
                "not the one it was planned on"
            )


def validate_traces(
    traces: Any,
    config: FidelityConfig,
    *,
    refine: bool = True,
    seed: int = 0,
    presets: dict[str, str] | None = None,
    host_fit: str = "round",
) -> pd.DataFrame:
    """Leave-one-run-out predictions of every recorded run; one row per run.

    `presets` maps a workflow spec to the preset its runs are simulated with (the one
    calibrated just before them); other workflows use ``config.preset``. With `refine`, a
    preset with a shared host gets its host CPUs fitted (see `HOST_FITS`): first on the
    workflow's runs of the *other* rounds (`fit_host_cpus`), and with ``host_fit="round"``
    then moved by the speed of the run's round, measured on its round-mates
    (`fit_round_host_cpus`). The run itself never trains its prediction. A preset without a
    shared host gets its latencies re-fitted on the other runs (`refined_platform`); there, and
    without `refine`, `host_fit` changes nothing.

    Columns: run_id, workflow, planner, real_makespan_ms, sim_makespan_ms, makespan_error,
    real_cost_usd, sim_cost_usd, cost_error, n_cold (real), host_cpus (simulated); with fitted
    host CPUs, also host_cpus_other_rounds and sim_makespan_other_rounds_ms (the prediction
    with the fit on the other rounds alone).

    Raises
    ------
    ValueError
        If host_fit is not one of `HOST_FITS`, or a recorded run did not run the plan that
        is simulated for it (`_check_plan_ran`).
    """
    from sim.platform import Platform
    from sim.simulate import simulate, simulate_makespan_ms

    if host_fit not in HOST_FITS:
        raise ValueError(f"validate: host_fit={host_fit!r} is not one of {', '.join(HOST_FITS)}")
    bases: dict[str, Any] = {}
    runs = traces.runs.copy()
    cells = [json.loads(c) for c in runs["config"]]
    runs["cell_workflow"] = [c["workflow"] for c in cells]
    runs["cell_planner"] = [c["planner"] for c in cells]
    runs["cell_preset"] = [c.get("preset") for c in cells]
    # Runs recorded without rounds are each their own fold.
    runs["fold"] = [
        f"round {c['repetition']}" if "repetition" in c else f"run {run_id}"
        for c, run_id in zip(cells, runs["run_id"], strict=True)
    ]
    plans: dict[tuple[str, str, str | None], tuple[Any, Any]] = {}
    for run in runs.itertuples(index=False):
        key = (run.cell_workflow, run.cell_planner, run.cell_preset)
        if key[0] not in bases:
            preset = (presets or {}).get(key[0], config.preset)
            bases[key[0]] = warm_regime(Platform.preset(preset))
        if key not in plans:
            # The plan that ran: made on the preset the recording planned with (a validation
            # simulates with one re-fitted after the runs, on which planners may choose other
            # placements); the runs' tasks must sit where it places them.
            planned_on = _planning_platform(run.cell_preset, bases[key[0]])
            plans[key] = plan_cell(key[0], key[1], config.configs, planned_on)
        _check_plan_ran(plans[key][1], traces.tasks[traces.tasks["run_id"] == run.run_id], run)
    runs["planner"] = runs["cell_planner"]  # what the fits group the runs by
    # Per (DAG, fold): the other rounds' runs, their simulated makespans and the fit on them.
    folds: dict[tuple[str, str], tuple[pd.DataFrame, SimulatedLogMakespans, float]] = {}
    rows = []
    for run in runs.itertuples(index=False):
        key = (run.cell_workflow, run.cell_planner, run.cell_preset)
        base = bases[key[0]]
        example, plan = plans[key]
        same_dag = runs["dag_hash"] == run.dag_hash
        train_ids = set(runs.loc[same_dag, "run_id"]) - {run.run_id}
        train_tasks = traces.tasks[traces.tasks["run_id"].isin(train_ids)]
        train_workers = traces.workers[traces.workers["run_id"].isin(train_ids)]
        platform = base
        fold_cpus = None
        if refine and math.isinf(base.host_cpus):
            platform = refined_platform(base, train_tasks, train_workers, example.dag, plan)
        elif refine:
            fold = (run.dag_hash, run.fold)
            if fold not in folds:
                fit_runs = runs[same_dag & (runs["fold"] != run.fold)]
                fit_plans = {
                    cell[1]: plans[cell][1]
                    for cell in zip(
                        fit_runs["cell_workflow"],
                        fit_runs["cell_planner"],
                        fit_runs["cell_preset"],
                        strict=True,
                    )
                }
                fit_tasks = traces.tasks[traces.tasks["run_id"].isin(fit_runs["run_id"])]
                log_makespans = SimulatedLogMakespans(
                    base, example.dag, fit_plans, fit_tasks, seed=seed
                )
                folds[fold] = (
                    fit_runs,
                    log_makespans,
                    _unbiased_host_cpus(log_makespans, fit_runs),
                )
            fit_runs, log_makespans, fold_cpus = folds[fold]
            cpus = fold_cpus
            if host_fit == "round":
                mates = runs[same_dag & (runs["fold"] == run.fold) & (runs["run_id"] != run.run_id)]
                cpus = fit_round_host_cpus(log_makespans, fold_cpus, mates, fit_runs)
            platform = base.with_overrides(host_cpus=cpus)
        profiles = median_profiles(example.dag, train_tasks, platform.host_cpus)
        simulated = simulate(example.dag, plan, profiles, platform, seed=seed)
        real_workers = traces.workers[traces.workers["run_id"] == run.run_id]
        real_cost = billed_cost_usd(real_workers, platform)
        sim_cost = billed_cost_usd(simulated.workers, platform)
        row = {
            "run_id": run.run_id,
            "workflow": run.cell_workflow,
            "planner": run.cell_planner,
            "real_makespan_ms": float(run.makespan_ms),
            "sim_makespan_ms": simulated.makespan_ms,
            "real_cost_usd": real_cost,
            "sim_cost_usd": sim_cost,
            "n_cold": int(run.n_cold),
            "host_cpus": float(platform.host_cpus),
        }
        if fold_cpus is not None:
            row["host_cpus_other_rounds"] = fold_cpus
            row["sim_makespan_other_rounds_ms"] = (
                simulated.makespan_ms
                if fold_cpus == platform.host_cpus
                else simulate_makespan_ms(
                    example.dag,
                    plan,
                    median_profiles(example.dag, train_tasks, fold_cpus),
                    base.with_overrides(host_cpus=fold_cpus),
                    seed,
                )
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["makespan_error"] = (frame["sim_makespan_ms"] - frame["real_makespan_ms"]).abs() / frame[
        "real_makespan_ms"
    ]
    frame["cost_error"] = (frame["sim_cost_usd"] - frame["real_cost_usd"]).abs() / frame[
        "real_cost_usd"
    ]
    return frame
