"""`faasdag run`, `report`, `compare`, `plan`, `simulate` and `quickstart`; the comparison table."""

import json

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main
from experiments.report import comparison_table, format_table

CONFIG = """
name = "tiny"
workflows = ["gemm:n=256,blocks=2", "tree_reduction:n=4,length=1000"]
planners = ["uniform", "heft"]
seeds = 2
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """`faasdag run` on a tiny config: (out dir, printed text)."""
    folder = tmp_path_factory.mktemp("run")
    config = folder / "tiny.toml"
    config.write_text(CONFIG)
    out = folder / "out"
    capture = pytest.MonkeyPatch()
    import io
    import sys

    buffer = io.StringIO()
    capture.setattr(sys, "stdout", buffer)
    try:
        assert main(["run", str(config), "--out", str(out)]) == 0
    finally:
        capture.undo()
    return out, buffer.getvalue()


def test_run_writes_tables_report_and_plots(ran):
    """runs/tasks Parquet (trace schema), summary.md, index.html and PNG+SVG plots."""
    from traces import TraceSet

    out, _ = ran
    traces = TraceSet.read(out)
    assert len(traces.runs) == 2 * 2 * 2
    assert set(traces.tasks["run_id"]) == set(traces.runs["run_id"])
    assert "| planner |" in (out / "summary.md").read_text()
    page = (out / "index.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page
    for stem in ("makespan_cost", "pareto", "predicted_vs_simulated"):
        assert (out / "plots" / f"{stem}.png").stat().st_size > 1000
        assert (out / "plots" / f"{stem}.svg").is_file()
    assert len(list((out / "plots").glob("gantt_*.png"))) == 2


def test_run_prints_the_comparison_table(ran):
    """The printed table has a block per workflow and a row per planner."""
    _, text = ran
    assert "== gemm:n=256,blocks=2" in text and "== tree_reduction:n=4,length=1000" in text
    assert text.count("\nuniform ") == 2 and text.count("\nheft ") == 2
    assert "makespan ms (95% CI)" in text and "x bound" in text


def test_report_rebuilds_from_results(ran, capsys):
    """`faasdag report DIR` rewrites summary, page and plots from the stored results."""
    out, _ = ran
    (out / "summary.md").unlink()
    (out / "plots" / "pareto.png").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "summary.md").is_file() and (out / "plots" / "pareto.png").is_file()
    assert "== gemm:n=256,blocks=2" in capsys.readouterr().out


def test_report_of_a_non_results_folder(tmp_path, capsys):
    """A folder with no experiment.json is refused in one line."""
    assert main(["report", str(tmp_path)]) == 2
    assert "not a results folder" in capsys.readouterr().err


def test_run_with_dask_address_equals_sequential(ran, tmp_path):
    """`--dask ADDRESS` (a LocalCluster) reproduces the sequential tables exactly."""
    distributed = pytest.importorskip("distributed")
    out, _ = ran
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        status = main(
            ["run", str(config), "--out", str(tmp_path / "d"), "--dask", cluster.scheduler_address,
             "--no-plots"]
        )  # fmt: skip
    assert status == 0
    for table in ("runs", "tasks", "workers"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / f"{table}.parquet"),
            pd.read_parquet(tmp_path / "d" / f"{table}.parquet"),
            check_exact=True,
        )


def test_compare_prints_the_planners_asked_for(capsys):
    """`faasdag compare` runs the named planners (spec commas included) and prints the table."""
    argv = ["compare", "svd", "--planners", "uniform,non-uniform:configs=1024,2048,dask",
            "--seeds", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    for planner in ("uniform", "non-uniform:configs=1024,2048", "dask"):
        assert f"\n{planner} " in out


def test_compare_unknown_planner(capsys):
    """An unknown planner in --planners exits 2 naming it."""
    assert main(["compare", "svd", "--planners", "uniform,fastest"]) == 2
    assert "'fastest'" in capsys.readouterr().err


def test_plan_prints_every_task(capsys):
    """`faasdag plan` prints the predicted makespan and one timeline row per task."""
    from dag.examples import build_example

    assert main(["plan", "gemm:n=256,blocks=2", "--planner", "heft"]) == 0
    out = capsys.readouterr().out
    assert "predicted makespan:" in out
    for task_id in build_example("gemm:n=256,blocks=2").dag:
        assert task_id in out


def test_simulate_prints_predicted_and_simulated(tmp_path, capsys):
    """`faasdag simulate` prints both makespans, per-task rows, and draws a Gantt on request."""
    gantt = tmp_path / "g.png"
    argv = ["simulate", "tree_reduction:n=4,length=1000", "--planner", "dask", "--seed", "3",
            "--gantt", str(gantt)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "predicted" in out and "simulated" in out and "sim_end_ms" in out
    assert gantt.stat().st_size > 1000


def test_quickstart_runs_the_bundled_config(tmp_path, monkeypatch, capsys):
    """`faasdag quickstart` runs the bundled config (here swapped for a tiny one)."""
    import experiments.commands as commands

    config = tmp_path / "q.toml"
    config.write_text(CONFIG + "[outputs]\nplots = false\n")
    monkeypatch.setattr(commands, "QUICKSTART", config)
    assert main(["quickstart", "--out", str(tmp_path / "q"), "--jobs", "1"]) == 0
    assert "== gemm:n=256,blocks=2" in capsys.readouterr().out


def _frames():
    runs = pd.DataFrame(
        {
            "run_id": ["a0", "a1", "b0", "b1"],
            "workflow": ["w"] * 4,
            "planner": ["A", "A", "B", "B"],
            "seed": [0, 1, 0, 1],
            "makespan_ms": [100.0, 110.0, 90.0, 130.0],
            "cost_usd": [1.0, 1.0, 2.0, 2.0],
            "n_cold": [3, 3, 1, 1],
            "bytes_up": [10, 10, 5, 5],
            "bytes_down": [0, 0, 0, 0],
            "predicted_makespan_ms": [100.0] * 4,
        }
    )
    cells = pd.DataFrame({"run_id": runs["run_id"], "platform": "p", "lower_bound_ms": 50.0})
    return runs, cells


def test_comparison_table_means_cis_and_winners():
    """Means, t-based 95% CIs, makespan over the bound, and the winner of each column."""
    table = comparison_table(*_frames()).set_index("planner")
    assert table.loc["A", "makespan_ms"] == 105.0
    # two seeds: t(0.975, 1) = 12.706; sd of (100, 110) is 7.071; / sqrt(2)
    assert table.loc["A", "makespan_ci_ms"] == pytest.approx(12.706 * 7.0711 / np.sqrt(2), 1e-3)
    assert table.loc["A", "vs_bound"] == pytest.approx(2.1)
    assert table["best_makespan_ms"].to_dict() == {"A": True, "B": False}
    assert table["best_cost_usd"].to_dict() == {"A": True, "B": False}
    assert table["best_n_cold"].to_dict() == {"A": False, "B": True}
    text = format_table(table.reset_index())
    assert "105.0 ± 63.5*" in text


def test_pareto_front():
    """The front keeps the points nothing beats on both makespan and cost."""
    from experiments.plots import pareto_front

    assert pareto_front([1.0, 2.0, 3.0, 2.5], [5.0, 3.0, 1.0, 4.0]) == [0, 1, 2]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("faasdag: error: "), err
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "CONFIG", "--out", "FILE"],
        ["run", "CONFIG", "--out", "FILE/sub"],
        ["compare", "svd", "--seeds", "1", "--out", "FILE"],
        ["execute", "CONFIG", "--out", "FILE"],
        ["report", "FILE"],
        ["quickstart", "--out", "FILE"],
    ],
)
def test_out_naming_an_existing_file_is_refused(tmp_path, capsys, argv):
    """--out (or report's DIR) naming an existing file, or a path under one, exits 2 naming it."""
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    file = tmp_path / "taken"
    file.write_text("not a folder")
    argv = [a.replace("CONFIG", str(config)).replace("FILE", str(file)) for a in argv]
    assert main(argv) == 2
    assert "is a file, not a folder" in _one_error_line(capsys)
    assert file.read_text() == "not a folder"


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "svd", "--jobs", "0"],
        ["compare", "svd", "--jobs", "-2"],
        ["run", "CONFIG", "--jobs", "-1"],
        ["quickstart", "--jobs", "0"],
    ],
)
def test_jobs_below_one_is_refused(tmp_path, capsys, argv):
    """--jobs 0 or negative exits 2 naming the option, before anything runs."""
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    argv = [a.replace("CONFIG", str(config)) for a in argv]
    assert main(argv) == 2
    assert "--jobs" in (err := _one_error_line(capsys)) and "must be >= 1" in err


def test_compare_without_out_prints_every_failure(monkeypatch, capsys):
    """compare without --out prints the failed cells themselves, never a path to a deleted
    temporary folder."""
    import experiments.sweep as sweep

    def broken(cell):
        raise RuntimeError(f"planner exploded on seed {cell.seed}")

    monkeypatch.setattr(sweep, "compute_cell", broken)
    assert main(["compare", "svd", "--planners", "uniform", "--seeds", "2"]) == 1
    captured = capsys.readouterr()
    assert "faasdag-compare-" not in captured.out + captured.err
    assert "failures.txt" not in captured.err
    assert "planner exploded on seed 0" in captured.err
    assert "planner exploded on seed 1" in captured.err


def test_report_names_a_corrupt_cell_and_reports_the_others(ran, tmp_path, capsys):
    """report on a folder with a damaged cell file warns naming it and reports the rest; a run
    resuming into the folder computes that cell again."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(ran[0], out)
    damaged = sorted((out / "cells").glob("*.parquet"))[0]
    damaged.write_bytes(damaged.read_bytes()[:40])
    assert main(["report", str(out), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert f"faasdag: warning: {damaged}: not a readable Parquet file" in captured.err
    assert "1 cell(s) unfinished" in captured.out
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    assert main(["run", str(config), "--out", str(out), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert f"warning: {damaged}" in captured.err and "computed again" in captured.err
    assert "7 finished cell(s) skipped, 1 run" in captured.out


@pytest.mark.parametrize("command", ["plan", "simulate", "compare"])
def test_wfformat_without_an_execution_entry_is_refused_by_every_command(tmp_path, capsys, command):
    """plan, simulate and compare refuse a WfFormat task with no execution entry alike (one
    line naming the task), and dag show reports it without a critical path."""
    from dag import DAG, Task
    from dag.wfformat import to_wfformat

    dag = DAG([Task("a", "f"), Task("b", "f", ("a",))], {("a", "b"): 5})
    doc = to_wfformat(dag, {"a": 1.0, "b": 2.0}, {"a": 5, "b": 9})
    doc["workflow"]["execution"]["tasks"].pop(0)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(doc))
    assert main([command, str(path)]) == 2
    assert "task 'a' has no runtime (no entry in workflow.execution.tasks)" in _one_error_line(
        capsys
    )
    assert main(["dag", "show", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "critical_path_ms" not in shown and "tasks_without_runtime: 1 (first 'a')" in shown
