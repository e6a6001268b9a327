"""Step 2, fitting: what the simulation of a held-out run learns from the *other* runs.

- profiles: per task, the median exec ms and bytes over the training runs
  (`median_profiles`); on a shared host the exec times are first turned into times alone;
- a preset with a shared host (finite ``host_cpus``): the host CPUs at which the simulator is
  unbiased on the workflow's other rounds (`fit_host_cpus`, bisected within `FIT_HOST_CPUS`),
  moved by the speed of the run's own round, measured on its round-mates
  (`fit_round_host_cpus`);
- a preset without one: its latencies re-fitted on the training rows (`refined_platform`).

Nothing here sees the run that is predicted: the callers pass the other runs only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Bounds of a shared host's CPUs fitted on training runs (`fit_host_cpus`), and bisection steps
#: (8 halvings of a 16x range: within 1.1%).
FIT_HOST_CPUS = (0.25, 4.0)
FIT_STEPS = 8


def median_profiles(dag: Any, tasks: pd.DataFrame, host_cpus: float = math.inf) -> Any:
    """Profiles of `dag`: per task, the median exec ms, input and output bytes over `tasks`
    (rows of other runs; originals only, duplicates dropped). With finite `host_cpus` the exec
    times are first turned into times alone (`traces.contention.solo_exec_ms`), for a platform
    whose simulated host shares that many CPUs.

    Raises
    ------
    traces.ProfileError
        Naming a task with no row.
    """
    from traces.contention import solo_exec_ms
    from traces.profiles import ProfileError, TaskProfiles

    # Every row of a run shared the host, duplicates too: work alone before filtering.
    tasks = tasks.assign(exec_ms=solo_exec_ms(tasks, host_cpus))
    rows = tasks[(tasks["dag_hash"] == dag.dag_hash) & ~tasks["duplicated"]]
    stats = rows.groupby("task_id")[["exec_ms", "input_bytes", "output_bytes"]].median()
    missing = [t for t in dag.topological_order() if t not in stats.index]
    if missing:
        raise ProfileError(f"task {missing[0]!r} has no recorded row in the training runs")
    exec_ms = stats["exec_ms"].to_dict()
    return TaskProfiles(
        dag,
        input_bytes={t: int(v) for t, v in stats["input_bytes"].items() if t in dag},
        output_bytes={t: int(v) for t, v in stats["output_bytes"].items() if t in dag},
        exec_ms={t: (lambda config, v=float(exec_ms[t]): v) for t in dag},
    )


def refined_platform(
    platform: Any, tasks: pd.DataFrame, workers: pd.DataFrame, dag: Any = None, plan: Any = None
) -> Any:
    """`platform` re-fitted on recorded runs (other runs only): the machine under load.

    Microbenchmarks run on an idle machine; during a run, the workers, Redis and the client
    share two cores, so every round trip is slower. A platform with finite ``host_cpus``
    simulates that sharing itself and is returned unchanged. Otherwise, from the training rows:

    - invoke latency: median ``ready_ms - invoked_ms`` of warm workers, minus the warm start;
    - store bandwidth: `runtime.calibrate.fit_transfer` on (bytes, ms) of recorded uploads and
      downloads (harmonic mean of the two bandwidths);
    - store op and pub/sub latency: scaled by the ratio of the median recorded ``dc_ms``
      (post-task coordination: counters, markers, publishes) to the median simulated one
      (one simulation of `plan` on `dag`, when given).
    """
    from runtime.calibrate import fit_transfer
    from sim.simulate import simulate

    if not math.isinf(platform.host_cpus):
        return platform  # it simulates the load itself: a re-fit would count it twice
    overrides: dict[str, float] = {}
    warm = workers[workers["startup"] == "warm"]
    if not warm.empty:
        gap = float((warm["ready_ms"] - warm["invoked_ms"]).median())
        overrides["invoke_latency_ms"] = max(gap - platform.warm_start_ms, 0.0)
    up = tasks[(tasks["upload_ms"] > 0) & (tasks["output_bytes"] > 0)]
    down = tasks[(tasks["download_ms"] > 0) & (tasks["download_bytes"] > 0)]
    try:
        _, up_bw = fit_transfer(list(zip(up["output_bytes"], up["upload_ms"], strict=True)))
        _, down_bw = fit_transfer(
            list(zip(down["download_bytes"], down["download_ms"], strict=True))
        )
        overrides["store_bandwidth_bytes_per_ms"] = 2.0 / (1.0 / up_bw + 1.0 / down_bw)
    except (ValueError, ZeroDivisionError):
        pass
    refined = platform.with_overrides(**overrides)
    if dag is not None and plan is not None and refined.store_op_ms > 0:
        recorded = tasks.loc[tasks["dc_ms"] > 0, "dc_ms"]
        probe = median_profiles(dag, tasks)
        simulated = simulate(dag, plan, probe, refined, seed=0).tasks
        modelled = simulated.loc[simulated["dc_ms"] > 0, "dc_ms"]
        if len(recorded) and len(modelled):
            ratio = float(recorded.median()) / float(modelled.median())
            refined = refined.with_overrides(
                store_op_ms=refined.store_op_ms * ratio, pubsub_ms=refined.pubsub_ms * ratio
            )
    return refined


def fit_host_cpus(
    platform: Any,
    dag: Any,
    plans: dict[str, Any],
    tasks: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    seed: int = 0,
) -> float:
    """The ``host_cpus`` at which the simulator is unbiased on recorded runs of `dag`.

    Finds the value at which the mean of ``log(simulated / real)`` makespan over `runs` is zero,
    by bisection in log space over `FIT_HOST_CPUS` (the bias falls as CPUs grow); the profiles
    are re-derived at each trial value (`median_profiles`), as the simulation would be.

    The fit is an effective figure, not the machine's CPUs. It absorbs two things:

    - the CPUs a run's work gets differ from what a busy loop measures between runs
      (`runtime.calibrate.measure_host_parallelism`), and by workflow: on this 2-core machine,
      with 1.5 ms slices, gemm and image_pipeline fitted 1.35-1.77 CPUs and tree_reduction
      1.78-2.31 (four validations), where the loop measured 1.6-1.9;
    - `traces.contention.solo_exec_ms` counts only the executing tasks as a run's load on the
      host and undoes processor sharing, while the simulator also runs transfers' copy work
      and invocation CPU there, in time slices when the preset has ``host_quantum_ms``. Runs
      simulated with 1.2 CPUs (1.5 ms slices), recorded and fitted, give ~2.3 (and unbiased
      predictions of those runs).

    Parameters
    ----------
    platform : Platform
        With a shared host (finite ``host_cpus``).
    plans : dict of str to Plan
        The plan of each planner whose runs are in `runs`.
    tasks, runs : DataFrame
        Rows of the training runs only; `runs` has ``planner`` and ``makespan_ms``.

    Returns
    -------
    float
        CPUs, within `FIT_HOST_CPUS` (an end of it when no value there is unbiased).
    """
    return _unbiased_host_cpus(SimulatedLogMakespans(platform, dag, plans, tasks, seed=seed), runs)


def _unbiased_host_cpus(log_makespans: SimulatedLogMakespans, runs: pd.DataFrame) -> float:
    """`fit_host_cpus` with the simulations given: the CPUs at which the mean log ratio of
    simulated to real makespan over `runs` (``planner``, ``makespan_ms``) is zero."""
    log_real = float(np.mean(np.log(runs["makespan_ms"].to_numpy(dtype=float))))
    planners = list(runs["planner"])

    def bias(log_cpus: float) -> float:
        return _mean_log_makespan(log_makespans, log_cpus, planners) - log_real

    return _bisect_host_cpus(bias)


class SimulatedLogMakespans:
    """The log of each plan's simulated makespan on `dag` at a number of host CPUs, memoised.

    A callable of ``log(host_cpus)``: the profiles are re-derived at each value from the
    training `tasks` (`median_profiles`), as the simulation of a held-out run would be. The
    fits of one validation fold bisect over the same values again and again, so each value is
    simulated once.

    Parameters
    ----------
    platform : Platform
        With a shared host (finite ``host_cpus``).
    dag : DAG
    plans : dict of str to Plan
        Per planner, the plan its runs ran.
    tasks : DataFrame
        Rows of the training runs.
    seed : int, default 0
    """

    def __init__(
        self, platform: Any, dag: Any, plans: dict[str, Any], tasks: pd.DataFrame, *, seed: int = 0
    ) -> None:
        self.platform = platform
        self.dag = dag
        self.plans = dict(plans)
        self.tasks = tasks
        self.seed = seed
        self._memo: dict[float, dict[str, float]] = {}

    def __call__(self, log_cpus: float) -> dict[str, float]:
        """Per planner, ``log(simulated makespan ms)`` with ``exp(log_cpus)`` host CPUs."""
        from sim.simulate import simulate_makespan_ms

        found = self._memo.get(log_cpus)
        if found is None:
            cpus = math.exp(log_cpus)
            trial = self.platform.with_overrides(host_cpus=cpus)
            profiles = median_profiles(self.dag, self.tasks, cpus)
            found = self._memo[log_cpus] = {
                name: math.log(simulate_makespan_ms(self.dag, plan, profiles, trial, self.seed))
                for name, plan in self.plans.items()
            }
        return found


def _mean_log_makespan(
    log_makespans: Callable[[float], dict[str, float]], log_cpus: float, planners: Sequence[str]
) -> float:
    """The mean over `planners` (one entry a run) of their simulated log makespans at
    ``exp(log_cpus)`` host CPUs (`SimulatedLogMakespans`)."""
    simulated = log_makespans(log_cpus)
    return float(np.mean([simulated[name] for name in planners]))


def _round_shrinkage(
    deviations: pd.Series, rounds: pd.Series, cells: pd.Series, n_mates: int
) -> float:
    """The weight of a round's measured shift, from the other rounds' runs: the share of the
    variance of a mean of `n_mates` runs' deviations that is the rounds' own (empirical Bayes).

    `deviations` are runs' log makespans less their cell's mean (unitless); `rounds` and
    `cells` label them. As in a two-way analysis of variance (rounds by cells), the runs' own
    variance ``s2`` is what is left once each round's mean comes off too, over
    ``N - R - C + 1`` degrees of freedom (N runs, R rounds, C cells); ``tau2``, the spread of
    true round shifts, is the variance of the rounds' means less ``s2`` times the rounds' mean
    ``1 / n``. The weight is ``tau2 / (tau2 + s2 / n_mates)``: near 1 on a machine whose rounds
    drift, 0 on a steady one (a round's few runs then say little beyond their own noise), and 0
    with nothing to estimate it from (fewer than two rounds, no degrees of freedom left).
    """
    by_round = deviations.groupby(rounds.to_numpy())
    sizes = by_round.size().to_numpy(dtype=float)
    dof = len(deviations) - len(sizes) - cells.nunique() + 1
    if len(sizes) < 2 or dof < 1 or n_mates < 1:
        return 0.0
    within = float((deviations - by_round.transform("mean")).pow(2).sum()) / dof
    tau2 = float(by_round.mean().var(ddof=1)) - within * float(np.mean(1.0 / sizes))
    if not tau2 > 0:
        return 0.0
    return tau2 / (tau2 + within / n_mates)


def _bisect_host_cpus(bias: Callable[[float], float]) -> float:
    """The host CPUs, within `FIT_HOST_CPUS`, at which `bias` (of ``log(cpus)``, falling as
    the CPUs grow) crosses zero: `FIT_STEPS` halvings in log space, rounded to 0.001."""
    low, high = (math.log(v) for v in FIT_HOST_CPUS)
    for _ in range(FIT_STEPS):
        middle = (low + high) / 2
        if bias(middle) > 0:  # simulated slower than real: more CPUs
            low = middle
        else:
            high = middle
    return round(math.exp((low + high) / 2), 3)


def fit_round_host_cpus(
    log_makespans: SimulatedLogMakespans,
    fold_cpus: float,
    mates: pd.DataFrame,
    other_rounds: pd.DataFrame,
) -> float:
    """Host CPUs for a run, from `fold_cpus` (fitted on its workflow's other rounds) and the
    speed of its own round, measured on its round-mates.

    The machine under a local run is not steady: over a validation, runs of one round (one run
    of every cell, seconds apart) are slow or fast together, and the fit on the other rounds
    misses that. Each mate's shift is the log of its makespan over the mean of its cell's runs
    in the other rounds; their mean, weighted by how far this workflow's rounds differ beyond
    their runs' own noise (`_round_shrinkage`, on the other rounds: near 0 on a steady
    machine), is the round's shift. The result is the host CPUs at which the mates' simulated
    makespans move from those at `fold_cpus` by that shift, on average. Measured against each
    mate's own cell, not the simulator, so what the simulator gets wrong about a planner stays
    out of it. Neither the run nor anything fitted on it enters: `log_makespans` and
    `fold_cpus` come from the other rounds.

    Parameters
    ----------
    log_makespans : SimulatedLogMakespans
        Of the other rounds' tasks, with a plan for every mate's planner.
    fold_cpus : float
        The fit on the other rounds (`fit_host_cpus`).
    mates, other_rounds : DataFrame
        The other runs of the run's round, and the runs of the other rounds (``planner``,
        ``makespan_ms``; `other_rounds` also ``fold``, its round, for the weight). Mates whose
        cell has no run in the other rounds are left out; with none left, `fold_cpus` is
        returned.
    """
    log_ms = np.log(other_rounds["makespan_ms"].astype(float))
    cell_means = log_ms.groupby(other_rounds["planner"]).mean()
    mates = mates[mates["planner"].isin(cell_means.index)]
    if mates.empty:
        return fold_cpus
    planners = list(mates["planner"])
    shift = float(
        np.mean(np.log(mates["makespan_ms"].to_numpy(dtype=float)) - cell_means[planners])
    )
    deviations = log_ms - cell_means[other_rounds["planner"]].to_numpy()
    shift *= _round_shrinkage(deviations, other_rounds["fold"], other_rounds["planner"], len(mates))
    if shift == 0:
        return fold_cpus  # as it is: bisecting again where the makespan is flat would move it
    fold_mean = _mean_log_makespan(log_makespans, math.log(fold_cpus), planners)

    def bias(log_cpus: float) -> float:
        return _mean_log_makespan(log_makespans, log_cpus, planners) - fold_mean - shift

    return _bisect_host_cpus(bias)
