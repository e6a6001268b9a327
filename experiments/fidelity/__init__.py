"""Fidelity of the simulator against real runs: record, calibrate, validate.

Protocol (`validate_traces`): real runs of (workflow, planner) cells on the local Lambda
emulator, each in steady state (the cell's plan ran once before to warm the pools, which are
then topped up; see `record`). Every recorded run is predicted by a simulation that sees only
*other* runs (leave-one-run-out, split by run id):

- profiles: per task, the median exec ms and output bytes over the other runs of the same DAG
  (every planner's runs; the emulator does not limit CPU, so exec time does not depend on the
  memory size); on a preset with a shared host (finite ``host_cpus``) each recorded exec time
  is first turned into its time alone (`traces.contention.solo_exec_ms`), since the simulator
  shares the host's CPUs itself;
- platform: the calibrated preset in its warm regime (cold-start draws replaced by the warm
  start-up, as the measured runs had warm pools): ``sim/presets/local.toml`` for the shipped
  traces (recorded in the session that calibrated it), a fresh calibration of this machine
  just before each workflow's runs for ``faasdag validate`` with real runs. With
  ``refine=True`` (the default) it is fitted on recorded runs too: a preset with a shared host
  gets the host CPUs at which the workflow's runs of the *other* rounds are simulated without
  bias (`fit_host_cpus`), then moved by how much slower or faster the run's round-mates ran
  than their cells' runs in the other rounds (`fit_round_host_cpus`; ``host_fit``): the
  machine's speed at the time of the run, measured on other runs; one without a shared host
  gets its latencies re-fitted on the other runs (`refined_platform`);
- the plan: the cell's planner re-planned with the workflow's modelled profiles on the preset
  (deterministic, so the same plan that ran).

It reports per run ``|sim - real| / real`` of makespan and of cost (both from the workers'
billed ms with the same prices), their median and 90th percentile, the Kendall tau between the
planner rankings by simulated and by real mean makespan per workflow (simulated makespans within
`SIM_TIE` of each other tied; the strict tau beside it), and a scatter plot of simulated against
real makespan with the y = x line.

One module per step:

- `experiments.fidelity.config`: what a validation runs (`FidelityConfig`, `load_config`);
- `experiments.fidelity.record`: the real runs on the emulator (`record`, `Bench`);
- `experiments.fidelity.fit`: profiles and host CPUs fitted on the other runs
  (`median_profiles`, `fit_host_cpus`, `fit_round_host_cpus`, `refined_platform`);
- `experiments.fidelity.validate`: the leave-one-run-out predictions (`validate_traces`);
- `experiments.fidelity.report`: errors, rank agreement, targets, the plot (`summarize`);
- `experiments.fidelity.cli`: `register` adds the ``calibrate`` and ``validate`` subcommands
  to the `faasdag` CLI; ``python -m experiments.fidelity record`` regenerates the shipped
  trace sets under ``traces/data``.
"""

from experiments.fidelity.cli import calibrate_preset, register
from experiments.fidelity.config import (
    CONFIG_KEYS,
    DEFAULT_CONFIG,
    PRESET,
    SHIPPED_REPETITIONS,
    FidelityConfig,
    load_config,
)
from experiments.fidelity.fit import (
    FIT_HOST_CPUS,
    FIT_STEPS,
    SimulatedLogMakespans,
    fit_host_cpus,
    fit_round_host_cpus,
    median_profiles,
    refined_platform,
)
from experiments.fidelity.record import (
    POOL_MARGIN,
    PREWARM_HOLD_MS,
    RUN_ATTEMPTS,
    WARMUP_ROUNDS,
    WARMUP_RUNS,
    Bench,
    plan_cell,
    record,
    record_with_overheads,
    warm_regime,
)
from experiments.fidelity.report import (
    REAL_TAU_RESAMPLES,
    SIM_TIE,
    TARGETS,
    FidelityReport,
    error_floor,
    kendall_tau,
    plot_predicted_vs_real,
    summarize,
)
from experiments.fidelity.validate import HOST_FITS, billed_cost_usd, validate_traces

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_CONFIG",
    "FIT_HOST_CPUS",
    "FIT_STEPS",
    "HOST_FITS",
    "POOL_MARGIN",
    "PRESET",
    "PREWARM_HOLD_MS",
    "REAL_TAU_RESAMPLES",
    "RUN_ATTEMPTS",
    "SHIPPED_REPETITIONS",
    "SIM_TIE",
    "TARGETS",
    "WARMUP_ROUNDS",
    "WARMUP_RUNS",
    "Bench",
    "FidelityConfig",
    "FidelityReport",
    "SimulatedLogMakespans",
    "billed_cost_usd",
    "calibrate_preset",
    "error_floor",
    "fit_host_cpus",
    "fit_round_host_cpus",
    "kendall_tau",
    "load_config",
    "median_profiles",
    "plan_cell",
    "plot_predicted_vs_real",
    "record",
    "record_with_overheads",
    "refined_platform",
    "register",
    "summarize",
    "validate_traces",
    "warm_regime",
]
