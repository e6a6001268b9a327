"""Every CLI command given a damaged input exits 0 or 2 with one line, never a traceback or hang.

Valid inputs are made once per module with the project's own writers (a WfFormat file of a
generated DAG, a trace folder of simulated runs, an experiment TOML, a results folder of
``faasdag run``); hypothesis then damages a copy (truncation, flipped bytes, wrong types, huge
and non-finite numbers, deleted keys) and runs the commands that read that kind of input.
Most runs are in this process, with a time limit; one test runs a sample through the real
entry point in subprocesses.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from corrupt_inputs import (
    assert_clean_exit,
    damaged_bytes,
    damaged_json_file,
    damaged_parquet,
    damaged_toml_file,
    run_cli,
    toml_text,
    write_bytes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dag.generators import layered_dag
from dag.wfformat import write_wfformat
from experiments.config import parse_config
from experiments.sweep import compute_cell
from traces.io import TraceSet

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,  # the same damaged inputs every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TABLES = ("tasks", "workers", "runs")


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, Path]:
    """Valid inputs of every kind, made with the project's own writers."""
    root = tmp_path_factory.mktemp("valid")
    wf = write_wfformat(layered_dag(5, seed=3), root / "wf.json")
    cells = parse_config(
        {"workflows": [str(wf)], "planners": ["uniform"], "seeds": [0, 1]}, source="<test>"
    ).cells()
    results = [compute_cell(cell) for cell in cells]
    traces = TraceSet.concat([TraceSet(r.tasks, r.workers, r.runs) for r in results])
    traces.write(root / "traces")
    config = {
        "name": "tiny",
        "workflows": ["wf.json"],
        "planners": ["uniform"],
        "seeds": 2,
        "plan_seed": 0,
        "configs": [1024, 2048],
        "platform": {"preset": "aws-lambda", "cold_start_median_ms": 250.0, "keep_alive_ms": 6e5},
        "outputs": {"plots": False},
    }
    (root / "config.toml").write_text(toml_text(config))
    outcome = run_cli(["run", root / "config.toml", "--out", root / "results", "--no-plots"])
    assert outcome.status == 0, outcome.err
    return {
        "root": root,
        "wf": wf,
        "traces": root / "traces",
        "config": root / "config.toml",
        "config_doc": config,
        "results": root / "results",
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder for the damaged copies: one fresh sub-folder per example (so no cache keyed
    by a path can hand back an earlier example's input)."""
    return tmp_path_factory.mktemp("damaged")


def _fresh(scratch: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=scratch))


@SETTINGS
@given(data=st.data())
def test_damaged_wfformat(valid, scratch, data):
    """dag show, plan, simulate and compare on a damaged WfFormat file exit 0 or 2, one line."""
    doc = json.loads(valid["wf"].read_text())
    path = write_bytes(_fresh(scratch) / "wf.json", data.draw(damaged_json_file(doc)))
    for argv in (
        ["dag", "show", path],
        ["plan", path],
        ["simulate", path],
        ["compare", path, "--seeds", "1", "--planners", "uniform"],
    ):
        assert_clean_exit(run_cli(argv))


@SETTINGS
@given(data=st.data())
def test_damaged_trace_folder(valid, scratch, data):
    """plan, simulate (replay) and compare with a damaged Parquet trace folder exit 0 or 2."""
    folder = _fresh(scratch) / "traces"
    shutil.copytree(valid["traces"], folder)
    table = data.draw(st.sampled_from(TABLES))
    file = folder / f"{table}.parquet"
    write_bytes(file, data.draw(damaged_parquet(file)))
    wf = valid["wf"]
    for argv in (
        ["plan", wf, "--traces", folder],
        ["simulate", wf, "--traces", folder, "--profiles", "replay"],
        ["compare", wf, "--traces", folder, "--seeds", "1", "--planners", "uniform"],
    ):
        assert_clean_exit(run_cli(argv))


@SETTINGS
@given(data=st.data())
def test_damaged_experiment_toml(valid, scratch, data):
    """run on a damaged experiment TOML exits 0 or 2 with one line; refused, it writes nothing."""
    folder = _fresh(scratch)
    shutil.copy(valid["wf"], folder / "wf.json")
    config = write_bytes(folder / "config.toml", data.draw(damaged_toml_file(valid["config_doc"])))
    outcome = run_cli(["run", config, "--out", folder / "out", "--no-plots"])
    assert_clean_exit(outcome)
    if outcome.status == 2:
        assert not (folder / "out").exists()  # refused before anything is written


@SETTINGS
@given(data=st.data())
def test_damaged_results_folder(valid, scratch, data):
    """report, and run resuming into it, on a results folder with one damaged file exit 0 or 2."""
    folder = _fresh(scratch) / "results"
    shutil.copytree(valid["results"], folder)
    files = sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".parquet", ".json")
    )
    file = folder / data.draw(st.sampled_from(files))
    if file.suffix == ".json":
        damaged = data.draw(damaged_json_file(json.loads(file.read_text())))
    else:
        damaged = data.draw(damaged_bytes(file.read_bytes()))
    write_bytes(file, damaged)
    assert_clean_exit(run_cli(["report", folder, "--no-plots"]))
    resumed = run_cli(["run", valid["config"], "--out", folder, "--no-plots"])
    assert_clean_exit(resumed)
    assert resumed.status == 0  # the config is valid: a damaged cell is computed again
    assert_clean_exit(run_cli(["report", folder, "--no-plots"]))


def test_damaged_inputs_through_the_entry_point(valid, tmp_path):
    """A sample of damaged inputs through ``python -m experiments.cli`` in subprocesses: exit
    2 with one line on stderr, within the time limit."""
    wf_doc = json.loads(valid["wf"].read_text())
    wf_doc["workflow"]["execution"]["tasks"][0]["runtimeInSeconds"] = 1e7
    huge = write_bytes(tmp_path / "huge.json", json.dumps(wf_doc).encode())
    cut = write_bytes(tmp_path / "cut.json", valid["wf"].read_bytes()[:100])
    traces = tmp_path / "traces"
    shutil.copytree(valid["traces"], traces)
    (traces / "tasks.parquet").write_bytes((traces / "tasks.parquet").read_bytes()[:200])
    config = dict(valid["config_doc"], platform={"cold_start_median_ms": 1e8})
    (tmp_path / "wf.json").write_bytes(valid["wf"].read_bytes())
    (tmp_path / "cold.toml").write_text(toml_text(config))
    for argv in (
        ["simulate", huge],
        ["dag", "show", cut],
        ["plan", valid["wf"], "--traces", traces],
        ["run", tmp_path / "cold.toml", "--out", tmp_path / "out"],
    ):
        outcome = run_cli(argv, subprocess_=True)
        assert_clean_exit(outcome)
        assert outcome.status == 2, outcome.err
