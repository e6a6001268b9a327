"""Sweeps: results depend only on the cells, so sequential, process and Dask runs agree bit for
bit; finished cells survive an interruption and a re-run computes only the missing ones."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from experiments.cells import CellStore
from experiments.config import parse_config
from experiments.sweep import compute_cell, run_experiment

TABLES = ("runs", "tasks", "workers", "cells")


def _small(**extra):
    data = {
        "workflows": ["gemm:n=256,blocks=2", "layered:n=30,seed=3"],
        "planners": ["uniform", "heft", "wukong"],
        "seeds": 2,
    }
    data.update(extra)
    return parse_config(data)


def _assert_same(a, b):
    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=True)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The small experiment run sequentially once (the reference)."""
    out = tmp_path_factory.mktemp("sequential")
    tables, stats = run_experiment(_small(), out, progress=False)
    assert stats.n_computed == stats.n_cells == 12
    return out, tables


def test_same_seed_same_result():
    """A cell computed twice gives identical trace rows; another seed gives another run."""
    cell = _small().cells()[0]
    a, b = compute_cell(cell), compute_cell(cell)
    pd.testing.assert_frame_equal(a.tasks, b.tasks, check_exact=True)
    other = compute_cell(_small(seeds=[5]).cells()[0])
    assert other.runs["makespan_ms"].iloc[0] != a.runs["makespan_ms"].iloc[0]


def test_merged_tables_follow_the_trace_schema(sequential):
    """The results folder is a readable trace folder with one run per cell."""
    from traces import TraceSet

    out, tables = sequential
    traces = TraceSet.read(out)
    assert len(traces.runs) == 12 and set(traces.runs["backend"]) == {"sim"}
    assert traces.runs["predicted_makespan_ms"].notna().all()
    assert (tables["cells"]["lower_bound_ms"] > 0).all()


def test_jobs_equal_sequential(sequential, tmp_path):
    """--jobs 2 (worker processes) gives tables identical to the sequential run."""
    tables, stats = run_experiment(_small(), tmp_path, jobs=2, progress=False)
    assert stats.n_computed == 12
    _assert_same(sequential[1], tables)


def test_dask_local_cluster_equals_sequential(sequential, tmp_path):
    """Cells sent to a Dask LocalCluster give tables identical to the sequential run."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address  # in-process transport: no socket is opened
        tables, stats = run_experiment(_small(), tmp_path, dask=address, progress=False)
        assert stats.n_computed == 12
    _assert_same(sequential[1], tables)


def test_rerun_skips_finished_cells(sequential, tmp_path):
    """With one cell's files gone, a re-run computes that cell only; results are unchanged."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(sequential[0], out)
    store = CellStore(out)
    victim = _small().cells()[4].cell_id
    (store.folder / f"{victim}.parquet").unlink()
    shutil.rmtree(store.folder / victim)
    before = {p.name: p.stat().st_mtime_ns for p in store.folder.glob("*.parquet")}
    tables, stats = run_experiment(_small(), out, progress=False)
    assert (stats.n_skipped, stats.n_computed) == (11, 1)
    after = {p.name: p.stat().st_mtime_ns for p in store.folder.glob("*.parquet")}
    assert {k: v for k, v in after.items() if k in before} == before
    _assert_same(sequential[1], tables)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder, cell_id: (folder / cell_id / "tasks.parquet").write_bytes(b"garbage"),
        lambda folder, cell_id: (folder / f"{cell_id}.parquet").write_bytes(
            (folder / f"{cell_id}.parquet").read_bytes()[:50]
        ),
    ],
    ids=["garbage-trace-table", "truncated-label-row"],
)
def test_corrupt_cell_is_named_and_computed_again(sequential, tmp_path, damage):
    """A stored cell whose file cannot be read back is named in `corrupt`, left out of a load,
    and computed again by a re-run; the results equal an undamaged run's."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(sequential[0], out)
    victim = _small().cells()[4].cell_id
    damage(out / "cells", victim)
    store = CellStore(out)
    assert not store.finished(victim)
    assert victim in store.corrupt and str(out / "cells") in store.corrupt[victim]
    assert "\n" not in store.corrupt[victim]
    assert len(store.load([c.cell_id for c in _small().cells()])["runs"]) == 11
    tables, stats = run_experiment(_small(), out, progress=False)
    assert (stats.n_skipped, stats.n_computed) == (11, 1)
    assert list(stats.corrupt) == [victim]
    _assert_same(sequential[1], tables)
    assert CellStore(out).finished(victim)


def _kill_config(tmp_path):
    path = tmp_path / "kill.toml"
    path.write_text(
        'workflows = ["layered:n=200,seed=1"]\n'
        'planners = ["uniform", "heft", "dask", "wukong"]\n'
        "seeds = 6\n"
    )
    return path


def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path, capsys):
    """Kill `faasdag run` mid-way: finished cells stay readable (report works), the re-run
    computes only the missing cells, and the final tables equal an uninterrupted run's."""
    from experiments.cli import main
    from experiments.config import load_config

    config = _kill_config(tmp_path)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "run", str(config), "--out", str(out),
         "--no-plots"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )  # fmt: skip
    cells = out / "cells"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if cells.is_dir() and len(list(cells.glob("*.parquet"))) >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_total = len(load_config(config).cells())
    finished = sorted(p.name for p in cells.glob("*.parquet"))
    if len(finished) >= n_total:
        pytest.skip("the run finished before it could be killed")
    assert len(finished) >= 3
    assert not (out / "runs.parquet").exists()

    assert main(["report", str(out), "--no-plots"]) == 0
    assert f"{n_total - len(finished)} cell(s) unfinished" in capsys.readouterr().out

    mtimes = {name: (cells / name).stat().st_mtime_ns for name in finished}
    assert main(["run", str(config), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(finished)} finished cell(s) skipped, {n_total - len(finished)} run" in printed
    assert {name: (cells / name).stat().st_mtime_ns for name in finished} == mtimes

    fresh = tmp_path / "fresh"
    assert main(["run", str(config), "--out", str(fresh), "--no-plots"]) == 0
    for table in ("runs", "tasks", "workers", "cells"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / f"{table}.parquet"),
            pd.read_parquet(fresh / f"{table}.parquet"),
            check_exact=True,
        )


def test_sample_profiles_vary_with_the_seed(sequential, tmp_path):
    """In sample mode the seed drives the profiles: two seeds, two sets of exec times."""
    from traces import TraceSet

    tables = sequential[1]
    TraceSet(tables["tasks"], tables["workers"], tables["runs"]).write(tmp_path / "traces")
    experiment = parse_config(
        {
            "workflows": ["gemm:n=256,blocks=2"],
            "planners": ["uniform"],
            "traces": str(tmp_path / "traces"),
            "profiles": "sample",
            "seeds": 2,
        }
    )
    result, _ = run_experiment(experiment, tmp_path / "b", progress=False)
    seeds = result["runs"].set_index("run_id")["seed"]
    tasks = result["tasks"].assign(seed=result["tasks"]["run_id"].map(seeds))
    exec_ms = tasks.pivot_table(index="task_id", columns="seed", values="exec_ms")
    assert exec_ms.shape[1] == 2
    assert not exec_ms[0].equals(exec_ms[1])


def test_a_failing_cell_does_not_stop_the_sweep(tmp_path, monkeypatch):
    """A cell that raises is reported and not stored; the others finish; a re-run retries it."""
    import experiments.sweep as sweep

    real = sweep.compute_cell

    def broken(cell):
        if cell.planner == "heft" and cell.seed == 1:
            raise RuntimeError("planner exploded")
        return real(cell)

    monkeypatch.setattr(sweep, "compute_cell", broken)
    tables, stats = run_experiment(_small(), tmp_path, progress=False)
    assert stats.n_computed == 10 and len(stats.failures) == 2
    assert "RuntimeError: planner exploded" in str(stats.failures[0])
    assert "heft" in (tmp_path / "failures.txt").read_text()
    assert len(tables["runs"]) == 10

    monkeypatch.setattr(sweep, "compute_cell", real)
    tables, stats = run_experiment(_small(), tmp_path, progress=False)
    assert (stats.n_skipped, stats.n_computed, stats.failures) == (10, 2, [])
    assert not (tmp_path / "failures.txt").exists() and len(tables["runs"]) == 12
