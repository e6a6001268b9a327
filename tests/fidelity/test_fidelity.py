"""Fidelity of the simulator against real runs: the calibrated preset, the shipped traces,
leave-one-run-out validation offline (shipped traces) and live (emulator + Redis).

Bounds (a regression gate): offline on the shipped traces, the issue's makespan targets
(median error <= OFFLINE_MEDIAN, p90 <= OFFLINE_P90; the shipped sets score 0.051 / 0.125);
live, a few real runs on whatever this machine does at the time, median <= LIVE_MEDIAN. A
change to the simulator, the worker or the planners that moves predictions away from recorded
reality fails here.
"""

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import UsageError
from experiments.fidelity import (
    FIT_HOST_CPUS,
    SIM_TIE,
    TARGETS,
    FidelityConfig,
    fit_host_cpus,
    fit_round_host_cpus,
    kendall_tau,
    load_config,
    plan_cell,
    summarize,
    validate_traces,
    warm_regime,
)
from sim.platform import Platform, preset_file
from traces.io import TraceSet
from traces.shipped import list_shipped, load_shipped, shipped_path

OFFLINE_MEDIAN = TARGETS["median"]
OFFLINE_P90 = TARGETS["p90"]
LIVE_MEDIAN = 0.35


def test_local_preset_loads_with_measured_values():
    """The shipped local preset loads and holds calibrated (non-default) figures: start-ups,
    store latencies, the worker's own overheads and the machine's CPUs."""
    platform = Platform.preset("local")
    assert platform.cold_start_median_ms > platform.warm_start_ms >= 0
    assert 0 < platform.store_op_ms < 10 and math.isfinite(platform.store_bandwidth_bytes_per_ms)
    assert platform.worker_setup_ms > 0 and platform.task_overhead_ms > 0
    assert 1 <= platform.host_cpus < math.inf


def test_shipped_trace_sets_read_back_with_the_schema_validator():
    """Every shipped set reads back through TraceSet.read and covers at least four planners."""
    names = list_shipped()
    assert len(names) >= 3
    for name in names:
        traces = TraceSet.read(shipped_path(name))
        traces.validate(name)
        assert traces.runs["planner"].nunique() >= 4
        assert set(traces.runs["backend"]) == {"lambda"}


def test_unknown_shipped_name_lists_the_known_ones():
    """Asking for a set that is not shipped names the shipped ones."""
    with pytest.raises(ValueError, match="shipped: "):
        shipped_path("nope")


def test_kendall_tau_of_known_rankings():
    """Tau is 1 for the same order, -1 for the reverse, and handles ties (tau-b)."""
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    # Within a relative tolerance, two scores are a tie: 100 and 100.5 differ by 0.5%.
    assert kendall_tau([2, 1, 3], [100, 100.5, 200]) == pytest.approx(1 / 3)
    assert kendall_tau([2, 1, 3], [100, 100.5, 200], tie_b=0.01) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau([100, 100.5, 200], [2, 1, 3], tie_a=0.01) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau([2, 1, 3], [100, 100.5, 200], tie_b=0.001) == pytest.approx(1 / 3)


def test_summary_ties_planners_the_simulator_does_not_tell_apart():
    """Simulated makespans within SIM_TIE of each other are no predicted order: the summary's
    tau ties them, its strict tau (also reported) does not."""
    import pandas as pd

    sim = {"a": 100.0, "b": 100.0 * (1 + SIM_TIE / 2), "c": 200.0}
    real = {"a": 110.0, "b": 105.0, "c": 190.0}  # a and b the other way round
    frame = pd.DataFrame(
        [
            {"workflow": "w", "planner": p, "real_makespan_ms": real[p], "sim_makespan_ms": sim[p],
             "makespan_error": 0.0, "cost_error": 0.0, "n_cold": 0, "host_cpus": 1.5}
            for p in sim
        ]
    )  # fmt: skip
    report = summarize(frame)
    assert report.tau_strict["w"] == pytest.approx(1 / 3)
    assert report.tau["w"] == pytest.approx(2 / math.sqrt(6))
    assert report.host_cpus == {"w": 1.5}
    assert "strict: mean 0.333" in report.text() and "w: 1.50" in report.text()


def test_summary_measures_the_real_runs_against_themselves():
    """Beside the simulator's errors, a summary says how well the real runs predict each
    other: each run against the mean of its cell's other runs, and the planner ranking of
    alternate runs against the others'."""
    import pandas as pd

    real = {"a": [100.0, 100.0, 100.0, 100.0], "b": [150.0, 250.0, 150.0, 250.0]}
    real["c"] = [300.0, 300.0, 300.0, 300.0]
    frame = pd.DataFrame(
        [
            {"workflow": "w", "planner": p, "real_makespan_ms": ms, "sim_makespan_ms": ms,
             "makespan_error": 0.0, "cost_error": 0.0, "n_cold": 0}
            for round_ms in zip(*real.values(), strict=True)
            for p, ms in zip(real, round_ms, strict=True)
        ]
    )  # fmt: skip
    report = summarize(frame)
    # a: exact; b: a 150 run against (250+150+250)/3, a 250 run against (150+250+150)/3
    b_errors = [abs(650 / 3 - 150) / 150, abs(550 / 3 - 250) / 250]
    expected = [0.0] * 8 + b_errors * 2
    assert report.run_noise["p90"] == pytest.approx(np.quantile(expected, 0.9))
    assert report.run_noise["p90"] > 0.3 and report.run_noise["n"] == 12
    # The halves agree on a < b < c: b's halves are 150 and 250 ms.
    assert report.real_tau_halves == pytest.approx(1.0)
    assert "other runs: median" in report.text()
    # a's alternate runs say 400 ms, its others 10 ms: the halves rank it last and first.
    a_runs = frame["planner"] == "a"
    swapped = frame.copy()
    swapped.loc[a_runs, "real_makespan_ms"] = [400.0, 10.0, 400.0, 10.0]
    assert summarize(swapped).real_tau_halves == pytest.approx(-1 / 3)


def _cells_predicted_at_their_means(real: dict[str, list[float]]):
    """`validate_traces` rows of workflow "w" in which every run of a cell is predicted at the
    mean of the cell's runs."""
    import pandas as pd

    rows = []
    for planner, runs in real.items():
        mean = float(np.mean(runs))
        for ms in runs:
            rows.append({"workflow": "w", "planner": planner, "real_makespan_ms": ms,
                         "sim_makespan_ms": mean, "makespan_error": abs(mean - ms) / ms,
                         "cost_error": 0.0, "n_cold": 0})  # fmt: skip
    return pd.DataFrame(rows)


def test_error_floor_is_the_least_any_one_prediction_per_cell_scores():
    """Of 20 runs, a p90 needs 18 within the error (numpy's quantile at 17.1 is at least the
    18th smallest). a's ten runs of 100 ms are matched exactly; b's six of 100 ms and two of
    130 are all within t of 100 * (1 + t) once 130 / 100 = (1 + t) / (1 - t): t = 0.3 / 2.3.
    No prediction of a cell does better, the cell means not (p90 0.25) nor the medians."""
    from experiments.fidelity import error_floor

    frame = _cells_predicted_at_their_means(
        {"a": [100.0] * 10, "b": [100.0] * 6 + [70.0, 130.0] * 2}
    )
    floor = error_floor(frame, 0.9)
    assert floor == pytest.approx(0.3 / 2.3, abs=1e-8)
    assert error_floor(frame, 0.5) == 0.0
    c = 100.0 * (1 + floor)  # b predicted at c: its 100 and 130 ms runs within the floor
    assert abs(c - 100.0) / 100.0 == pytest.approx(floor) == pytest.approx(abs(c - 130) / 130)
    rng = np.random.default_rng(0)
    real = frame["real_makespan_ms"].to_numpy()
    for _ in range(200):  # any other pair of predictions does no better
        guess = np.where(frame["planner"] == "a", *rng.uniform(60.0, 140.0, size=2))
        assert np.quantile(np.abs(guess - real) / real, 0.9) >= floor - 1e-9
    assert np.quantile(frame["makespan_error"], 0.9) > 0.25 > floor


def test_summary_sets_a_missed_target_beside_the_real_runs_own_errors():
    """The report checks the targets and sets a missed error beside the real runs' own (each
    against its cell's other runs) and the floor: the cell means miss the p90 where one
    prediction per cell could meet it (floor 0.130), and where b's runs spread so far that
    none can (floor 0.4: 60 to 140 ms, (1 + t) / (1 - t) = 7 / 3)."""
    within = summarize(
        _cells_predicted_at_their_means({"a": [100.0] * 10, "b": [100.0] * 6 + [70.0, 130.0] * 2})
    )
    assert within.targets_met() == {"median": True, "p90": False, "tau": False}
    line = within.targets_text()
    assert "median 0.000 <= 0.10: met;" in line and line in within.text()
    assert f"p90 {within.makespan['p90']:.3f} > 0.20: missed (" in line
    assert f"real runs against their cells' others {within.run_noise['p90']:.3f}" in line
    assert "least any one prediction per cell scores 0.130)" in line
    # Neither the simulator nor the real runs tell a and b apart: tau-b of two ties is nan.
    assert "tau nan < 0.80: missed" in line
    beyond = summarize(
        _cells_predicted_at_their_means({"a": [100.0] * 10, "b": [100.0] * 4 + [60.0, 140.0] * 3})
    )
    assert beyond.floor["p90"] == pytest.approx(0.4, abs=1e-8)
    assert "scores 0.400)" in beyond.targets_text()
    bare = replace(within, floor={}, run_noise={})
    assert "p90 0.251 > 0.20: missed;" in bare.targets_text()


def test_bootstrap_tau_of_the_real_runs_follows_their_noise():
    """The real ranking's bootstrap tau is 1 where resampling cannot reorder the cells, and
    its expectation where it can: x's runs of 100 and 300 ms (mean 200) against y's steady
    190 ms resample to a mean of 100 (x first: tau -1) a quarter of the time, else 200 or 300
    (tau +1), so 0.5."""
    import pandas as pd

    def frame(real: dict[str, list[float]]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"workflow": "w", "planner": p, "real_makespan_ms": ms, "sim_makespan_ms": ms,
                 "makespan_error": 0.0, "cost_error": 0.0, "n_cold": 0}
                for p, runs in real.items()
                for ms in runs
            ]
        )  # fmt: skip

    steady = summarize(frame({"a": [100.0, 120.0], "b": [150.0, 250.0], "c": [300.0, 310.0]}))
    assert steady.real_tau_bootstrap == pytest.approx(1.0)
    noisy = summarize(frame({"x": [100.0, 300.0], "y": [190.0, 190.0]}))
    assert noisy.real_tau_bootstrap == pytest.approx(0.5, abs=0.15)
    assert f"resampled runs against all: {noisy.real_tau_bootstrap:.3f}" in noisy.text()


def test_bad_config_is_one_clear_usage_error():
    """An unknown key or planner in a validation config raises UsageError naming it."""
    with pytest.raises(UsageError, match="unknown key 'plannerz'"):
        load_config({"plannerz": ["heft"]})
    with pytest.raises(UsageError, match="unknown planner 'nope'"):
        load_config({"planners": ["heft", "nope"]})


def test_record_rejects_too_few_rounds_before_touching_anything(tmp_path):
    """``record --repetitions 2`` is a usage error raised before calibrating or writing."""
    from experiments.fidelity import PRESET
    from experiments.fidelity.cli import _record_main

    preset_before = PRESET.read_bytes()
    with pytest.raises(UsageError, match="--repetitions must be >= 3"):
        _record_main(["record", "--repetitions", "2", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    assert PRESET.read_bytes() == preset_before


def test_offline_fidelity_on_shipped_traces_stays_within_bounds():
    """Leave-one-run-out on the shipped traces: makespan errors within the stated bounds."""
    traces = load_shipped()
    frame = validate_traces(traces, FidelityConfig())
    report = summarize(frame)
    assert report.makespan["n"] == len(traces.runs)
    for cpus in report.host_cpus.values():  # fitted per workflow on the other rounds
        assert FIT_HOST_CPUS[0] < cpus < FIT_HOST_CPUS[1]
    assert report.makespan["median"] <= OFFLINE_MEDIAN, report.text()
    assert report.makespan["p90"] <= OFFLINE_P90, report.text()


def _simulated_runs(cpus: float, planners=("uniform", "heft"), runs_each=2):
    """Runs of two planners' plans simulated on the local preset with `cpus` host CPUs, as
    recorded tables (tasks, runs with planner and makespan_ms), and the plans."""
    import pandas as pd

    from planners import ProfilesPredictor
    from sim.simulate import simulate

    base = warm_regime(Platform.preset("local"))
    truth = base.with_overrides(host_cpus=cpus)
    plans, tasks, runs = {}, [], []
    for planner in planners:
        example, plan = plan_cell("tree_reduction:n=8,length=200000", planner, [1024, 2048], base)
        plans[planner] = plan
        profiles = ProfilesPredictor.from_profiled(example).profiles_for(example.dag)
        for seed in range(runs_each):
            result = simulate(
                example.dag, plan, profiles, truth, seed=seed, run_id=f"{planner}{seed}"
            )
            tasks.append(result.tasks)
            runs.append({"run_id": f"{planner}{seed}", "planner": planner,
                         "makespan_ms": result.makespan_ms})  # fmt: skip
    return base, example.dag, plans, pd.concat(tasks, ignore_index=True), pd.DataFrame(runs)


def test_fitted_host_cpus_simulate_the_runs_without_bias():
    """Runs simulated with 1.2 and with 2.4 host CPUs, fitted from a preset that says 1.8:
    simulating with the fit is unbiased on them (mean log ratio ~0, each run within 10%), and
    slower runs get fewer CPUs. The fit is not the CPUs the runs had: it also absorbs what
    `solo_exec_ms` leaves out (see `fit_host_cpus`)."""
    from experiments.fidelity import median_profiles
    from sim.simulate import simulate

    fits = {}
    for cpus in (1.2, 2.4):
        base, dag, plans, tasks, runs = _simulated_runs(cpus)
        fit = fit_host_cpus(base.with_overrides(host_cpus=1.8), dag, plans, tasks, runs)
        assert FIT_HOST_CPUS[0] < fit < FIT_HOST_CPUS[1]
        fits[cpus] = fit
        platform = base.with_overrides(host_cpus=fit)
        profiles = median_profiles(dag, tasks, fit)
        ratios = [
            simulate(dag, plans[run.planner], profiles, platform, seed=0).makespan_ms
            / run.makespan_ms
            for run in runs.itertuples()
        ]
        assert abs(np.mean(np.log(ratios))) < 0.02
        assert all(0.9 < r < 1.1 for r in ratios)
    assert fits[1.2] < fits[2.4]


def _drifting_rounds(round_shifts, noise=0.01, planners=("a", "b", "c")):
    """Runs of three cells over rounds whose machine is slower or faster by `round_shifts`
    (log), each run off its round by up to `noise`: ``fold``, ``planner``, ``makespan_ms``."""
    import pandas as pd

    base = {"a": 50.0, "b": 80.0, "c": 120.0}
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        [
            {"fold": f"round {r}", "planner": p,
             "makespan_ms": base[p] * math.exp(shift + rng.uniform(-noise, noise))}
            for r, shift in enumerate(round_shifts)
            for p in planners
        ]
    )  # fmt: skip


def test_round_host_cpus_follow_the_rounds_speed_not_the_simulators_planner_bias():
    """A round whose runs are 10% slower than their cells' runs in the other rounds gets the
    host CPUs at which the simulated makespans are 10% slower than at the other rounds' fit;
    how far the simulator is off for one planner does not move it; a steady machine, or no
    mate, leaves the other rounds' fit as it is."""
    import pandas as pd

    def simulator(bias_a):  # makespan ~ cpus^-0.5
        return lambda x: {"a": math.log(50) + bias_a - 0.5 * x, "b": math.log(80) - 0.5 * x}

    other_rounds = _drifting_rounds([0.2, -0.2, 0.1, -0.1, 0.0])  # a drifting machine
    mates = pd.DataFrame({"planner": ["a", "b"], "makespan_ms": [50 * 1.1, 80 * 1.1]})
    expected = 1.6 * math.exp(-2 * math.log(1.1))  # 10% slower at cpus^-0.5
    fits = [fit_round_host_cpus(simulator(bias), 1.6, mates, other_rounds) for bias in (0, 0.3)]
    assert fits[0] == fits[1]
    assert fits[0] == pytest.approx(expected, rel=0.03)
    steady = _drifting_rounds([0.0] * 5, noise=0.05)
    assert fit_round_host_cpus(simulator(0), 1.6, mates, steady) == pytest.approx(1.6, rel=0.012)
    assert fit_round_host_cpus(simulator(0), 1.6, mates.iloc[:0], other_rounds) == 1.6
    # A mate whose cell never ran in the other rounds says nothing about the round.
    alone = pd.DataFrame({"planner": ["z"], "makespan_ms": [500.0]})
    assert fit_round_host_cpus(simulator(0), 1.6, alone, other_rounds) == 1.6


def _round_weights(round_sd, draws=300, rounds=9, cells=6, noise=0.1, sizes=None, seed=0):
    """`_round_shrinkage` of `draws` machines whose rounds shift by `round_sd` (log) and whose
    runs are off by `noise`; `sizes` leaves cells out of some rounds."""
    import pandas as pd

    from experiments.fidelity.fit import _round_shrinkage

    rng = np.random.default_rng(seed)
    weights = []
    for _ in range(draws):
        rows = []
        for r in range(rounds):
            shift = rng.normal(0, round_sd) if round_sd else 0.0
            for c in range(cells if sizes is None else sizes[r]):
                rows.append((r, c, shift + rng.normal(0, noise)))
        frame = pd.DataFrame(rows, columns=["round", "cell", "dev"])
        frame["dev"] -= frame.groupby("cell")["dev"].transform("mean")
        weights.append(_round_shrinkage(frame["dev"], frame["round"], frame["cell"], 5))
    return np.array(weights)


def test_round_weight_follows_how_much_rounds_drift_beyond_their_runs_noise():
    """The weight of a round's shift: near 0 where rounds do not drift (also with rounds of
    unequal size), near 1 where they drift as much as runs spread, between for less; 0 with one
    round, rounds of one run, or rounds whose means agree exactly."""
    import pandas as pd

    from experiments.fidelity.fit import _round_shrinkage

    steady = _round_weights(0.0)
    assert steady.mean() < 0.2 and (steady == 0).mean() > 0.5
    uneven = _round_weights(0.0, rounds=4, sizes=[6, 6, 2, 2])
    assert uneven.mean() < 0.25 and (uneven == 0).mean() > 0.5
    drifting, slight = _round_weights(0.1), _round_weights(0.05)
    assert drifting.mean() > 0.7 and 0.3 < slight.mean() < drifting.mean()

    def weight(devs, rounds, cells):
        return _round_shrinkage(pd.Series(devs), pd.Series(rounds), pd.Series(cells), 5)

    assert weight([0.1, -0.1, -0.1, 0.1], [0, 0, 1, 1], [0, 1, 0, 1]) == 0.0  # equal means
    assert weight([0.2, -0.2, 0.1], [0, 1, 2], [0, 0, 0]) == 0.0  # a run per round
    assert weight([0.2, -0.2, 0.1], [0, 0, 0], [0, 1, 2]) == 0.0  # one round


def test_validation_follows_a_runs_round_but_never_learns_the_run_from_itself():
    """On a machine whose rounds drift (the shipped gemm runs, each round made 15-20% slower or
    faster), one recorded run made 50% slower: its own prediction does not move; its
    round-mates get fewer host CPUs and slower predictions (their round looks slower), while
    their prediction with the other rounds' fit alone, reported beside, stays where it was."""
    shipped = load_shipped("gemm")
    runs = shipped.runs.copy()
    rounds = runs["config"].map(lambda c: json.loads(c)["repetition"])
    runs["makespan_ms"] *= np.exp(rounds.map({0: 0.2, 1: -0.15, 2: 0.15, 3: -0.2, 4: 0.0}))
    traces = TraceSet(tasks=shipped.tasks, workers=shipped.workers, runs=runs.copy())
    before = validate_traces(traces, FidelityConfig()).set_index("run_id")
    slow = runs["run_id"].iloc[3]
    runs.loc[runs["run_id"] == slow, "makespan_ms"] *= 1.5
    tampered = TraceSet(tasks=shipped.tasks, workers=shipped.workers, runs=runs)
    after_frame = validate_traces(tampered, FidelityConfig())
    after = after_frame.set_index("run_id")
    assert after.loc[slow, "sim_makespan_ms"] == before.loc[slow, "sim_makespan_ms"]
    assert after.loc[slow, "host_cpus"] == before.loc[slow, "host_cpus"]
    mates = runs.loc[(rounds == rounds[runs["run_id"] == slow].iloc[0]) & (runs["run_id"] != slow)]
    mates = list(mates["run_id"])
    assert len(mates) == 5
    assert (after.loc[mates, "host_cpus"] < before.loc[mates, "host_cpus"]).all()
    assert (after.loc[mates, "sim_makespan_ms"] > before.loc[mates, "sim_makespan_ms"]).all()
    column = "sim_makespan_other_rounds_ms"
    assert after.loc[mates, column].equals(before.loc[mates, column])
    report = summarize(after_frame)
    assert set(report.other_rounds) == {"median", "p90", "tau"}
    assert "fitted on the other rounds alone" in report.text()
    strict = validate_traces(tampered, FidelityConfig(), host_fit="other-rounds")
    assert strict["host_cpus"].equals(strict["host_cpus_other_rounds"])
    assert summarize(strict).other_rounds == {}
    with pytest.raises(ValueError, match="host_fit='rounds' is not one of round, other-rounds"):
        validate_traces(tampered, FidelityConfig(), host_fit="rounds")


def test_live_fidelity_on_the_emulator(redis_url, tmp_path):
    """Real runs of one workflow under four planners, as `faasdag validate` makes them: planned
    on a calibration of this machine just before, simulated with the overheads and CPUs
    measured between the runs, each predicted from the other runs. The median makespan error
    stays within LIVE_MEDIAN and every run is predicted."""
    from experiments.fidelity import record_with_overheads
    from runtime.calibrate import calibrate_local, refit_overheads, write_preset

    workflow = "tree_reduction:n=8,length=200000"
    calibration = calibrate_local(redis_url)
    config = load_config(
        {
            "workflows": [workflow],
            "planners": ["uniform", "wukong", "heft", "dask"],
            "repetitions": 3,
            "preset": str(write_preset(calibration, tmp_path / "before.toml")),
        }
    )
    traces, overheads = record_with_overheads(config, redis_url=redis_url)
    during = write_preset(refit_overheads(calibration, overheads), tmp_path / "during.toml")
    frame = validate_traces(traces, config, presets={workflow: str(during)})
    assert len(frame) == 12 and frame["sim_makespan_ms"].gt(0).all()
    assert summarize(frame).makespan["median"] <= LIVE_MEDIAN, summarize(frame).text()


def test_calibrate_writes_a_loadable_preset(redis_url, tmp_path):
    """A short calibration run writes a preset that Platform.preset loads by path."""
    from runtime.calibrate import calibrate_local, write_preset

    calibration = calibrate_local(
        redis_url, memory_sizes=(1024,), n_cold=2, n_warm=3, n_ops=20, n_transfers=2,
        sizes=(1_000, 1_000_000),
    )  # fmt: skip
    path = write_preset(calibration, tmp_path / "mine.toml")
    platform = Platform.preset(str(path))
    assert platform.name == "mine" and platform.cold_start_median_ms > 0
    # Redis said how much CPU it spent: the store's shared link is what its thread moves.
    [[moved, cpu_ms]] = calibration.samples["store_server_cpu"]
    assert moved >= 2 * 2 * 1_000_000 and cpu_ms > 0
    lone = max(platform.upload_bytes_per_ms, platform.download_bytes_per_ms)
    assert platform.store_bandwidth_bytes_per_ms == pytest.approx(
        max(moved / cpu_ms, lone), rel=1e-6
    )


def test_store_bandwidth_is_the_servers_bytes_per_cpu_ms():
    """The store's shared link moves what its thread moved per CPU-ms, never less than it
    served one transfer alone; without the server's CPU, the two directions' harmonic mean."""
    from runtime.calibrate.fit import _fit_store_bandwidth

    measured = {"store_server_cpu": [[6_000_000, 2.0], [2_000_000, 2.0]]}
    assert _fit_store_bandwidth(measured, 800.0, 400.0) == pytest.approx(2_000_000.0)
    assert _fit_store_bandwidth(measured, 3e6, 400.0) == pytest.approx(3e6)
    assert _fit_store_bandwidth({}, 800.0, 400.0) == pytest.approx(2 / (1 / 800 + 1 / 400))


def test_transfer_fit_weighs_every_object_size_alike():
    """The fit is relative: one size slower per byte than the rest (large objects on a machine
    that faults their pages in) moves the others' predictions little, where an absolute fit
    follows that size alone."""
    from runtime.calibrate import fit_transfer

    def ms(nbytes: float) -> float:
        return 0.2 + nbytes / 700_000.0

    sizes = (1_000, 16_000, 256_000, 1_000_000, 4_000_000)
    latency, bandwidth = fit_transfer([(n, ms(n)) for n in sizes for _ in range(3)])
    assert latency == pytest.approx(0.2) and bandwidth == pytest.approx(700_000.0)

    slow_16mb = [(n, ms(n)) for n in sizes] + [(16_000_000, 2.6 * ms(16_000_000))]
    latency, bandwidth = fit_transfer(slow_16mb)
    predicted = latency + 1_600_000 / bandwidth
    assert predicted == pytest.approx(ms(1_600_000), rel=0.25)
    # What the absolute fit of the earlier versions gave: the 16 MB point's rate, 2.6x slower.
    assert 1_600_000 / (16_000_000 / (2.6 * ms(16_000_000))) > 2 * ms(1_600_000)
    # A fit with a negative intercept goes through the origin instead.
    latency, bandwidth = fit_transfer([(1_000, 0.001), (2_000_000, 4.0), (4_000_000, 8.5)])
    assert latency == 0.0 and 2_000_000 / 4.0 * 0.9 < bandwidth < 1_000_000  # within the rates
    with pytest.raises(ValueError, match="two object sizes"):
        fit_transfer([(1_000, 0.1), (1_000, 0.2)])
    with pytest.raises(ValueError, match="16000 bytes took 0.0 ms"):
        fit_transfer([(1_000, 0.1), (16_000, 0.0)])


def test_worker_overheads_solve_the_cpu_budget():
    """From busy-CPU samples built with known c, t, w and s on the four benchmark shapes, the
    fit recovers t, s and the part of w not modelled elsewhere (w - setup - invoke)."""
    from runtime.calibrate import fit_worker_overheads

    c, t, w, s, p = 40.0, 0.2, 9.0, 0.15, 0.1
    shapes = {  # tasks, workers, store commands, publishes
        "chain": (100, 1, 4, 1),
        "chain2": (200, 1, 4, 1),
        "fanout": (10, 9, 71, 9),
        "relay": (100, 2, 499, 100),
    }
    samples = {"worker_setup_ms": [1.0, 2.0, 3.0]}
    for name, (n, k, m, q) in shapes.items():
        cpu = c + n * t + k * w + m * s + q * p
        samples[f"overhead_{name}"] = [[cpu + noise, n, k, m, q] for noise in (-5.0, 0.0, 9.0)]
    fitted = fit_worker_overheads(samples, invoke_ms=1.5, pubsub_ms=p)
    assert fitted["task_overhead_ms"] == pytest.approx(t)
    assert fitted["store_command_cpu_ms"] == pytest.approx(s)
    assert fitted["worker_setup_ms"] == pytest.approx(2.0)
    assert fitted["invocation_cpu_ms"] == pytest.approx(w - 2.0 - 1.5)
    assert set(fit_worker_overheads({}, 1.0).values()) == {0.0}


def test_refit_overheads_replaces_the_worker_samples_and_fits_again():
    """Overhead samples taken between recorded runs replace the calibration's own: with every
    run's CPU doubled the fitted invocation CPU grows, the other samples stay, the preset
    says where its overheads come from; missing shapes are named."""
    import json

    from runtime.calibrate import (
        OVERHEAD_WORKFLOWS,
        Calibration,
        host_cpus,
        overhead_workflows,
        preset_toml,
        refit_overheads,
    )

    assert tuple(overhead_workflows(3, 2)) == OVERHEAD_WORKFLOWS

    samples_file = Path(str(preset_file("local"))).with_suffix(".json")
    calibration = Calibration(**json.loads(samples_file.read_text()))
    doubled = {
        key: [[2 * row[0], *row[1:]] for row in rows]
        for key, rows in calibration.samples.items()
        if key.startswith("overhead_")
    }
    doubled["worker_setup_ms"] = calibration.samples["worker_setup_ms"]
    doubled["host_parallelism"] = [1.5, 1.6, 9.0]  # medians, at most the CPU count
    refit = refit_overheads(calibration, doubled)
    assert refit.fields["host_cpus"] == min(1.6, host_cpus())
    assert refit.samples["overhead_fanout"] == doubled["overhead_fanout"]
    assert refit.samples["upload"] == calibration.samples["upload"]
    assert refit.fields["invocation_cpu_ms"] > calibration.fields["invocation_cpu_ms"]
    assert refit.fields["invoke_latency_ms"] == calibration.fields["invoke_latency_ms"]
    assert "between the recorded runs" in preset_toml(refit)
    assert "CPUs together (median of 3 measurements)" in preset_toml(refit)
    del doubled["overhead_relay"], doubled["host_parallelism"]
    with pytest.raises(ValueError, match="overhead_relay, host_parallelism"):
        refit_overheads(calibration, doubled)


def test_validation_refuses_runs_that_did_not_run_the_plan_it_simulates():
    """A recorded task on another worker than the cell's plan places it (the plan was made on
    another preset) is an error naming the run and task, not a silent mismatch."""
    traces = load_shipped("gemm")
    tasks = traces.tasks.copy()
    first = tasks.index[0]
    tasks.loc[first, "worker_id"] = "elsewhere"
    tampered = TraceSet(tasks=tasks, workers=traces.workers, runs=traces.runs)
    run_id = tasks.loc[first, "run_id"]
    with pytest.raises(ValueError, match=f"run {run_id}.*'elsewhere'"):
        validate_traces(tampered, FidelityConfig())
    # Flexible (WUKONG) workers have no planned id, but their memory size is checked.
    tasks = traces.tasks.copy()
    flexible = tasks.index[tasks["worker_id"].str.startswith("flex-")][0]
    tasks.loc[flexible, "memory_mb"] = 4096
    tampered = TraceSet(tasks=tasks, workers=traces.workers, runs=traces.runs)
    with pytest.raises(ValueError, match=r"\[4096\] MB"):
        validate_traces(tampered, FidelityConfig())


def test_host_parallelism_is_the_cpus_busy_processes_share():
    """Two busy processes get some CPU together and one process timed against itself gets
    about one. Wide bounds: single timings on a shared 2-core VM vary by up to 1.6x."""
    from runtime.calibrate import measure_host_parallelism

    assert 0.5 <= measure_host_parallelism(2, repeats=3) <= 3.5
    assert 0.5 <= measure_host_parallelism(1, repeats=3) <= 2.0


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux /proc")
def test_cpu_counter_counts_this_process_and_its_children():
    """`_busy_cpu_ms` sees a child's CPU (a worker process) while this process sleeps."""
    import subprocess
    import sys

    from runtime.calibrate.overheads import _busy_cpu_ms

    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    child = subprocess.Popen([sys.executable, "-c", spin + "time.sleep(5)"])
    try:
        before = _busy_cpu_ms()
        time.sleep(1.0)
        used = _busy_cpu_ms() - before
    finally:
        child.kill()
        child.wait()
    assert 200.0 <= used <= 1000.0


def test_validate_command_calibrates_this_machine_then_reports(redis_url, tmp_path, capsys):
    """``faasdag validate CONFIG`` end to end: it calibrates before each workflow (the preset
    the planners plan on), records the real runs with the worker-overhead workflows between
    the rounds, re-fits the presets the runs are simulated with on those of every workflow's
    rounds, and writes the report, both presets per workflow and the scatter plot."""
    import json

    from experiments.cli import main

    config = tmp_path / "small.toml"
    config.write_text(
        'workflows = ["tree_reduction:n=4,length=20000", "tree_reduction:n=2,length=20000"]\n'
        'planners = ["uniform", "heft"]\nrepetitions = 3\n'
    )
    out = tmp_path / "report"
    assert main(["validate", str(config), "--out", str(out), "--redis-url", redis_url]) == 0
    names = ["tree_reduction_n_4_length_20000", "tree_reduction_n_2_length_20000"]
    before = [out / f"preset-{name}.before.toml" for name in names]
    presets = [out / f"preset-{name}.toml" for name in names]
    assert Platform.preset(str(before[0])).host_cpus < math.inf
    assert all("between the recorded runs" in preset.read_text() for preset in presets)
    samples = [json.loads(p.with_suffix(".json").read_text())["samples"] for p in presets]
    overheads = [f"overhead_{name}" for name in ("chain", "chain2", "fanout", "relay")]
    # one per round of either workflow, pooled into both presets
    assert [len(samples[0][name]) for name in overheads] == [6] * 4
    assert all(samples[0][name] == samples[1][name] for name in overheads)
    assert samples[0]["host_parallelism"] == samples[1]["host_parallelism"]
    report = json.loads((out / "report.json").read_text())
    assert report["makespan"]["n"] == 12
    assert (out / "predicted_vs_real.png").stat().st_size > 0
    cells = TraceSet.read(out / "traces").runs["config"].map(json.loads)
    assert set(cells.map(lambda cell: cell["preset"])) == set(map(str, before))
    assert "calibrated this machine" in capsys.readouterr().out
    workflows = ["tree_reduction:n=4,length=20000", "tree_reduction:n=2,length=20000"]
    assert report["presets"] == dict(zip(workflows, map(str, presets), strict=True))
    # Re-validating the report's traces offline simulates with its presets: same figures.
    again = tmp_path / "again"
    argv = ["validate", str(config), "--traces", str(out / "traces"), "--out", str(again)]
    assert main(argv) == 0
    assert json.loads((again / "report.json").read_text())["makespan"] == report["makespan"]
