"""The quickstart experiment: every planner on three example workflows (`quickstart.toml`).

`make run` runs it through ``faasdag quickstart`` (same as ``faasdag run
experiments/quickstart.toml --out results/quickstart``), prints the comparison table and writes
the plots.
"""

from __future__ import annotations

from pathlib import Path

from experiments.config import Experiment, load_config

#: The bundled experiment config.
QUICKSTART_CONFIG = Path(__file__).with_name("quickstart.toml")


def quickstart_experiment() -> Experiment:
    """The validated quickstart experiment."""
    return load_config(QUICKSTART_CONFIG)


def run_quickstart(out: str | Path = "results/quickstart", *, jobs: int = 1) -> str:
    """Run (or resume) the quickstart into `out`, write its report; return the table text."""
    from experiments.results import load_results, write_report
    from experiments.sweep import run_experiment

    experiment = quickstart_experiment()
    run_experiment(experiment, out, jobs=jobs)
    return write_report(load_results(out), out)
