"""Importers: WfFormat instances and invocation CSVs become TraceSets."""

import pandas as pd
import pytest

from dag import DAG, Task
from traces import from_invocations, from_wfformat


def diamond() -> DAG:
    return DAG(
        [
            Task("a", "split"),
            Task("b", "work", ("a",)),
            Task("c", "work", ("a",)),
            Task("d", "join", ("b", "c")),
        ],
        {("a", "b"): 100, ("a", "c"): 100, ("b", "d"): 30, ("c", "d"): 20},
        name="diamond",
    )


def test_wfformat_file_rows(tmp_path):
    """A WfFormat file written by dag.wfformat imports as one run with ASAP timestamps."""
    wfformat = pytest.importorskip("dag.wfformat")
    path = tmp_path / "diamond.json"
    wfformat.write_wfformat(
        diamond(),
        path,
        runtime_ms={"a": 1000.0, "b": 2000.0, "c": 500.0, "d": 250.0},
        output_bytes={"a": 200, "b": 30, "c": 20, "d": 5},
    )
    ts = from_wfformat(path)
    tasks = ts.tasks.set_index("task_id")
    assert list(ts.runs["run_id"]) == ["diamond"] and len(ts.workers) == 4
    assert tasks.loc["d", "start_ms"] == 3000.0 and tasks.loc["d", "end_ms"] == 3250.0
    assert tasks.loc["d", "input_bytes"] == 50 and tasks.loc["a", "input_bytes"] == 0
    assert tasks.loc["b", "exec_ms"] == 2000.0 and tasks.loc["a", "output_bytes"] == 200
    assert tasks.loc["b", "function"] == "work"
    assert (tasks["dag_hash"] == diamond().dag_hash).all()
    assert ts.runs.loc[0, "makespan_ms"] == 3250.0


def invocations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "function": ["f", "f", "f", "f", "g"],
            "start": [0.0, 1.0, 2.0, 2.5, 0.5],
            "end": [1.5, 1.3, 2.3, 2.8, 0.9],
            "is_cold": [True, False, False, False, "true"],
            "container_id": ["c1", "c1", "c1", "c2", "c3"],
            "request_id": ["r1", "r2", "r3", "r4", "r5"],
            "memory": [1024, 1024, 1024, 1024, 512],
        }
    )


def test_invocations_cold_warm_mix(tmp_path):
    """A cold/warm mix yields startup rows: cold time = median cold - median warm duration."""
    path = tmp_path / "inv.csv"
    invocations().to_csv(path, index=False)
    with pytest.warns(UserWarning, match="'g'"):
        ts = from_invocations(path, time_unit="s")
    tasks = ts.tasks.set_index("task_id")
    assert tasks.loc["r1", "startup"] == "cold" and tasks.loc["r2", "startup"] == "warm"
    assert tasks.loc["r1", "startup_ms"] == pytest.approx(1500 - 300)
    assert tasks.loc["r1", "exec_ms"] == pytest.approx(300)
    assert tasks.loc["r2", "startup_ms"] == 0
    assert tasks.loc["r5", "startup_ms"] == 0  # no warm run of g to compare with
    workers = ts.workers.set_index("worker_id")
    assert workers.loc["c1", "startup"] == "cold" and workers.loc["c2", "startup"] == "warm"
    assert workers.loc["c1", "billed_ms"] == 1500 + 300 + 300
    assert ts.runs.loc[0, "n_cold"] == 2 and ts.runs.loc[0, "run_id"] == "inv"


def test_invocations_init_column():
    """An init column gives each cold start's time directly."""
    df = invocations().assign(init=[0.2, 0, 0, 0, 0.1])
    tasks = from_invocations(df, time_unit="s").tasks.set_index("task_id")
    assert tasks.loc["r1", "startup_ms"] == pytest.approx(200)
    assert tasks.loc["r5", "startup_ms"] == pytest.approx(100)


def test_invocations_bad_row():
    """An end before start names the column and the row."""
    df = invocations()
    df.loc[3, "end"] = 1.0
    with pytest.raises(ValueError, match="'end', row 3"):
        from_invocations(df)
