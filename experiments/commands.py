"""The experiment subcommands of `faasdag`: run, compare, plan, simulate, report, quickstart.

`add_commands` registers them on the CLI's subparsers; each handler prints its results and
returns the exit status. Bad input raises `UsageError` (exit 2, one line).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from experiments.errors import UsageError

logger = logging.getLogger(__name__)

#: The quickstart experiment shipped with the package.
QUICKSTART = Path(__file__).with_name("quickstart.toml")  # see experiments.quickstart


def split_planners(text: str) -> list[str]:
    """Planner specs from ``a,b,c``; after a spec with parameters, a ``key=value`` item or a
    number (``2048`` in ``non-uniform:configs=1024,2048,heft``) continues it. ``;`` also
    separates specs.

    Raises
    ------
    UsageError
        If the list is empty or starts with a parameter.
    """
    from planners import PLANNERS

    specs: list[str] = []
    for chunk in text.split(";"):
        for item in (i.strip() for i in chunk.split(",")):
            if not item:
                continue
            continues = (
                specs and ":" in specs[-1] and ("=" in item or item[0] in "0123456789.")
            ) and item.partition(":")[0] not in PLANNERS
            if continues:
                specs[-1] = f"{specs[-1]},{item}"
            elif "=" in item and ":" not in item:
                raise UsageError(f"--planners {text!r}: {item!r} is not a planner spec")
            else:
                specs.append(item)
    if not specs:
        raise UsageError(f"--planners {text!r} names no planner; known: {', '.join(PLANNERS)}")
    return specs


def _configs_arg(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _experiment(args: argparse.Namespace, planners: Any, seeds: Any, source: str) -> Any:
    from experiments.config import parse_config

    data: dict[str, Any] = {
        "name": source,
        "workflows": [args.workflow],
        "planners": planners,
        "platform": args.platform,
        "seeds": seeds,
    }
    if args.configs:
        data["configs"] = _configs_arg(args.configs)
    if getattr(args, "traces", None):
        data["traces"] = args.traces
        data["profiles"] = args.profiles or "predict"
        data["predictor"] = args.predictor
    elif getattr(args, "profiles", None) not in (None, "model"):
        raise UsageError(f"--profiles {args.profiles} needs --traces DIR (a trace folder)")
    return parse_config(data, source=f"faasdag {source}")


# -- run / report -----------------------------------------------------------------------------


def run_and_report(
    experiment: Any,
    out: Path,
    *,
    jobs: int = 1,
    dask: str | None = None,
    plots: bool = True,
    keep: bool = True,
) -> str:
    """Run (or resume) `experiment` into `out`, write its report, return the table text.

    With `keep` False (`out` is a temporary folder about to go), `out` is not named.
    """
    from experiments.plots import use_agg
    from experiments.results import Results, write_report
    from experiments.sweep import run_experiment

    use_agg()
    cells = experiment.cells()
    where = f" -> {out}" if keep else ""
    print(f"experiment {experiment.name}: {len(cells)} cells{where}", flush=True)
    try:
        tables, stats = run_experiment(experiment, out, jobs=jobs, dask=dask)
    except KeyboardInterrupt as interrupt:  # SIGINT/SIGTERM: `main` prints one line with this
        if keep and (out / "cells").is_dir():
            interrupt.add_note(f"finished cells are kept in {out}")
        raise
    for problem in stats.corrupt.values():
        print(f"faasdag: warning: {problem}; that cell was computed again", file=sys.stderr)
    if stats.n_skipped:
        print(f"resumed: {stats.n_skipped} finished cell(s) skipped, {stats.n_computed} run")
    if tables["runs"].empty:
        raise CellsFailed(stats.failures)
    results = Results(experiment, n_missing=len(stats.failures), **tables)
    text = write_report(results, out, plots=plots and experiment.plots)
    if stats.failures:
        raise CellsFailed(stats.failures, text)
    return text


class CellsFailed(Exception):
    """Some cells raised; the others are stored and reported (`text`, the table so far)."""

    def __init__(self, failures: list[Any], text: str = ""):
        super().__init__(f"{len(failures)} cell(s) failed")
        self.failures = failures
        self.text = text


def report_failed_cells(error: CellsFailed, out: Path | None) -> int:
    """Print the partial table and the failed cells (stderr); exit status 1.

    `out` is the results folder, None when nothing was kept (`compare` without ``--out``):
    then every failure is printed, as there is no ``failures.txt`` to point to.
    """
    if error.text:
        print(error.text)
        if out is not None:
            print_outputs(out)
    if out is None:
        print(f"faasdag: {len(error.failures)} cell(s) failed:", file=sys.stderr)
        shown = error.failures
    else:
        print(
            f"faasdag: {len(error.failures)} cell(s) failed (see {out}/failures.txt); the "
            "finished cells are kept and a re-run retries only the failed ones:",
            file=sys.stderr,
        )
        shown = error.failures[:20]
    for failure in shown:
        print(f"  {failure}", file=sys.stderr)
    return 1


def check_jobs(jobs: int) -> None:
    """Refuse a number of worker processes below 1.

    Raises
    ------
    UsageError
        If `jobs` < 1.
    """
    if jobs < 1:
        raise UsageError(f"--jobs {jobs} must be >= 1")


def check_out(out: Path, option: str = "--out") -> Path:
    """`out` as a results folder: it, or the first of its parents that exists, is a folder.

    Raises
    ------
    UsageError
        If `out` (or a parent) names an existing file, not a folder.
    """
    for path in (out, *out.parents):
        if path.exists():
            if path == out and not path.is_dir():
                raise UsageError(f"{option} {str(out)!r} is a file, not a folder")
            if not path.is_dir():
                raise UsageError(f"{option} {str(out)!r}: {str(path)!r} is a file, not a folder")
            break
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from experiments.config import load_config

    check_jobs(args.jobs)
    experiment = load_config(args.config)
    out = check_out(Path(args.out) if args.out else Path("results") / experiment.name)
    try:
        text = run_and_report(
            experiment, out, jobs=args.jobs, dask=args.dask, plots=not args.no_plots
        )
    except CellsFailed as error:
        return report_failed_cells(error, out)
    print(text)
    print_outputs(out)
    return 0


def print_outputs(out: Path) -> None:
    plots = sorted((out / "plots").glob("*.png")) if (out / "plots").is_dir() else []
    print(f"\nresults: {out}/runs.parquet, tasks.parquet, summary.md, index.html")
    if plots:
        print(f"plots: {', '.join(str(p) for p in plots)}")


def _cmd_report(args: argparse.Namespace) -> int:
    from experiments.cells import CellStore
    from experiments.plots import use_agg
    from experiments.results import load_results, write_report
    from experiments.sweep import merge

    use_agg()
    out = check_out(Path(args.dir), "DIR")
    results = load_results(out)
    for problem in results.corrupt.values():
        print(
            f"faasdag: warning: {problem}; that cell is left out (`faasdag run` computes it again)",
            file=sys.stderr,
        )
    merge(CellStore(out), results.experiment)
    if results.n_missing:
        print(f"note: {results.n_missing} cell(s) unfinished; reporting the finished ones")
    print(write_report(results, out, plots=not args.no_plots))
    print_outputs(out)
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from experiments.config import load_config

    check_jobs(args.jobs)
    experiment = load_config(QUICKSTART)
    out = check_out(Path(args.out))
    try:
        print(run_and_report(experiment, out, jobs=args.jobs))
    except CellsFailed as error:
        return report_failed_cells(error, out)
    print_outputs(out)
    return 0


# -- compare / plan / simulate ----------------------------------------------------------------


def _cmd_compare(args: argparse.Namespace) -> int:
    check_jobs(args.jobs)
    out = check_out(Path(args.out)) if args.out else None
    experiment = _experiment(args, split_planners(args.planners), args.seeds, "compare")
    try:
        if out is not None:
            text = run_and_report(experiment, out, jobs=args.jobs, plots=not args.no_plots)
        else:  # nothing kept: a failure is printed in full, not pointed to in a deleted folder
            with tempfile.TemporaryDirectory(prefix="faasdag-compare-") as tmp:
                text = run_and_report(
                    experiment, Path(tmp), jobs=args.jobs, plots=False, keep=False
                )
    except CellsFailed as error:
        return report_failed_cells(error, out)
    print(text)
    return 0


def _planned(args: argparse.Namespace) -> tuple[Any, Any, Any, Any, Any]:
    from experiments.sweep import cell_inputs
    from planners import PlannerError, get_planner

    experiment = _experiment(args, [args.planner], [args.seed], args.command)
    cell = experiment.cells()[0]
    workflow, predictor, truth, platform = cell_inputs(cell)
    try:
        plan = get_planner(cell.planner).plan(
            workflow.dag, predictor, platform, cell.configs, seed=cell.plan_seed
        )
    except PlannerError as error:
        raise UsageError(f"planner {cell.planner!r}: {error}") from None
    return cell, workflow, truth, platform, plan


def _timeline_text(frame: Any, columns: list[str]) -> str:
    shown = frame[columns].copy()
    for column in shown.columns:
        if column.endswith("_ms"):
            shown[column] = shown[column].map(lambda v: f"{v:,.1f}")
    return shown.to_string()


def _cmd_plan(args: argparse.Namespace) -> int:
    cell, workflow, _, platform, plan = _planned(args)
    predicted = plan.predicted
    print(f"workflow: {cell.workflow}  planner: {plan.planner}  platform: {platform.name}")
    print(
        f"predicted makespan: {predicted.makespan_ms:,.1f} ms  cost: {predicted.cost_usd:.3e} USD"
        f"  workers: {predicted.n_workers}  cold starts: {predicted.n_cold}"
        f"  simulations: {predicted.n_simulations}"
    )
    optimizations = ", ".join(str(o) for o in plan.optimizations) or "none"
    print(f"optimizations: {optimizations}")
    frame = predicted.tasks.copy()
    frame["critical"] = frame["critical"].map({True: "*", False: ""})
    columns = [
        "worker_id",
        "memory_mb",
        "startup",
        "start_ms",
        "download_ms",
        "exec_ms",
        "upload_ms",
        "end_ms",
        "critical",
    ]
    print(_timeline_text(frame, columns))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sim.simulate import simulate

    cell, workflow, truth, platform, plan = _planned(args)
    result = simulate(workflow.dag, plan, truth, platform, cell.seed, workflow=cell.workflow)
    predicted = plan.predicted
    print(
        f"workflow: {cell.workflow}  planner: {plan.planner}  platform: {platform.name}"
        f"  seed: {cell.seed}  profiles: {cell.profiles}"
    )
    print(
        f"makespan: predicted {predicted.makespan_ms:,.1f} ms, simulated {result.makespan_ms:,.1f}"
        f" ms  cost: {result.cost['total_usd']:.3e} USD  cold starts: {result.n_cold}"
        f"  bytes moved: {result.bytes_up + result.bytes_down:,}"
    )
    sim = result.tasks.drop_duplicates("task_id").set_index("task_id")
    frame = predicted.tasks[["worker_id", "memory_mb", "startup", "start_ms", "end_ms"]].rename(
        columns={"startup": "pred_startup", "start_ms": "pred_start_ms", "end_ms": "pred_end_ms"}
    )
    frame["sim_startup"] = sim["startup"]
    frame["sim_start_ms"] = sim["start_ms"]
    frame["sim_exec_ms"] = sim["exec_ms"]
    frame["sim_end_ms"] = sim["end_ms"]
    frame["critical"] = frame.index.isin(result.critical_path)
    frame["critical"] = frame["critical"].map({True: "*", False: ""})
    print(_timeline_text(frame, list(frame.columns)))
    if args.gantt:
        from experiments.plots import gantt_figure, save, use_agg

        use_agg()

        runs = result.tasks.head(0)
        import pandas as pd

        runs = pd.DataFrame(
            [
                {
                    "run_id": result.tasks["run_id"].iloc[0],
                    "planner": plan.planner,
                    "makespan_ms": result.makespan_ms,
                    "seed": cell.seed,
                }
            ]
        )
        path = Path(args.gantt)
        fmt = path.suffix.lstrip(".") or "png"
        saved = save(
            gantt_figure(cell.workflow, runs, result.tasks, result.workers),
            path.with_suffix(""),
            [fmt],
        )
        print(f"gantt: {saved[0]}")
    return 0


# -- registration -----------------------------------------------------------------------------


def _workflow_args(parser: argparse.ArgumentParser, *, planner: bool) -> None:
    parser.add_argument(
        "workflow",
        metavar="WORKFLOW",
        help="example spec (gemm:n=2000,blocks=4), layered:n=..., WfFormat .json, or your "
        "code: flow.py:BUILDER[:k=v,...] or package.module:BUILDER[:k=v,...]",
    )
    if planner:
        parser.add_argument(
            "--planner",
            default="uniform",
            help="planner spec, e.g. heft or non-uniform:configs=1024,2048 (default uniform)",
        )
    parser.add_argument(
        "--platform", default="aws-lambda", help="preset or .toml (default aws-lambda)"
    )
    parser.add_argument(
        "--configs", metavar="MB,...", help="candidate configs, e.g. 1024,2048,4096"
    )
    parser.add_argument(
        "--traces", metavar="DIR", help="trace folder: plan with a fitted predictor"
    )
    parser.add_argument(
        "--profiles",
        choices=("model", "replay", "predict", "sample"),
        help="run profiles (default model; with --traces, predict)",
    )
    parser.add_argument(
        "--predictor",
        choices=("baseline", "learned"),
        default="baseline",
        help="predictor fitted on --traces (default baseline)",
    )


def add_commands(commands: Any) -> None:
    """Register run, compare, plan, simulate and report on the CLI's subparsers."""
    run = commands.add_parser("run", help="run an experiment config (TOML); resumable")
    run.add_argument("config", metavar="CONFIG", help="experiment TOML file")
    run.add_argument("--out", metavar="DIR", help="results folder (default results/NAME)")
    run.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)"
    )
    run.add_argument("--dask", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://127.0.0.1:8786")
    run.add_argument("--no-plots", action="store_true", help="skip the plots")
    run.set_defaults(handler=_cmd_run)

    compare = commands.add_parser("compare", help="side-by-side planners on one workflow")
    _workflow_args(compare, planner=False)
    compare.add_argument(
        "--planners", default="all", help="comma list of planner specs (default all)"
    )
    compare.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds (default 3)")
    compare.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes")
    compare.add_argument("--out", metavar="DIR", help="also keep results, report and plots here")
    compare.add_argument("--no-plots", action="store_true", help="skip the plots (with --out)")
    compare.set_defaults(handler=_cmd_compare)

    plan = commands.add_parser("plan", help="plan one workflow; print the predicted timeline")
    _workflow_args(plan, planner=True)
    plan.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    plan.set_defaults(handler=_cmd_plan)

    simulate = commands.add_parser(
        "simulate", help="plan and simulate one run; print predicted and simulated timelines"
    )
    _workflow_args(simulate, planner=True)
    simulate.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    simulate.add_argument(
        "--gantt", metavar="FILE", help="also draw the run's Gantt chart (.png/.svg)"
    )
    simulate.set_defaults(handler=_cmd_simulate)

    report = commands.add_parser("report", help="rebuild summary.md, index.html and plots")
    report.add_argument("dir", metavar="DIR", help="results folder of `faasdag run`")
    report.add_argument("--no-plots", action="store_true", help="skip the plots")
    report.set_defaults(handler=_cmd_report)


def configure_quickstart(parser: argparse.ArgumentParser) -> None:
    """Options of `faasdag quickstart` (the bundled experiment)."""
    parser.add_argument(
        "--out",
        default="results/quickstart",
        metavar="DIR",
        help="results folder (default results/quickstart)",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="worker processes (default 2)"
    )
    parser.set_defaults(handler=_cmd_quickstart)
