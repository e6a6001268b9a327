"""TraceSet: Parquet and CSV round trips, validation on read, atomic writes."""

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traces.io import TraceSet
from traces.schema import TraceSchemaError, make_frame

SAFE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r", exclude_categories=("Cs",)),
    max_size=8,
)
MS = st.floats(0, 1e9, allow_nan=False)
BYTES = st.integers(0, 2**62)


@st.composite
def trace_sets(draw, text=SAFE_TEXT):
    run_ids = draw(st.lists(text, min_size=1, max_size=3, unique=True))
    runs = [
        dict(
            run_id=r,
            workflow=draw(text),
            dag_hash=draw(text),
            planner=draw(text),
            backend=draw(text),
            seed=draw(st.none() | st.integers(-(2**62), 2**62)),
            makespan_ms=draw(MS),
            cost_compute_usd=draw(MS),
            cost_usd=draw(MS),
            n_workers=draw(st.integers(0, 10**6)),
            bytes_up=draw(BYTES),
            predicted_makespan_ms=draw(st.just(float("nan")) | MS),
            config=draw(text),
        )
        for r in run_ids
    ]
    tasks = []
    for _ in range(draw(st.integers(0, 6))):
        t = sorted(draw(st.lists(MS, min_size=5, max_size=5)))
        tasks.append(
            dict(
                run_id=draw(st.sampled_from(run_ids)),
                workflow=draw(text),
                dag_hash=draw(text),
                task_id=draw(text),
                function=draw(text),
                worker_id=draw(text),
                memory_mb=draw(st.integers(1, 10240)),
                cpus=draw(st.floats(0.01, 6)),
                attempt=draw(st.integers(0, 3)),
                ready_ms=t[0],
                start_ms=t[1],
                inputs_done_ms=t[2],
                exec_done_ms=t[3],
                end_ms=t[4],
                startup=draw(st.sampled_from(["none", "warm", "cold"])),
                startup_ms=draw(MS),
                input_bytes=draw(BYTES),
                exec_ms=draw(MS),
                output_bytes=draw(BYTES),
                duplicated=draw(st.booleans()),
                streamed=draw(st.booleans()),
            )
        )
    workers = []
    for _ in range(draw(st.integers(0, 3))):
        t = sorted(draw(st.lists(MS, min_size=3, max_size=3)))
        workers.append(
            dict(
                run_id=draw(st.sampled_from(run_ids)),
                worker_id=draw(text),
                memory_mb=draw(st.integers(128, 10240)),
                cpus=draw(st.floats(0.1, 6)),
                startup=draw(st.sampled_from(["warm", "cold"])),
                invoked_ms=t[0],
                ready_ms=t[1],
                end_ms=t[2],
                billed_ms=draw(MS),
            )
        )
    return TraceSet(
        make_frame("tasks", tasks) if tasks else None,
        make_frame("workers", workers) if workers else None,
        make_frame("runs", runs),
    )


def assert_same(a: TraceSet, b: TraceSet) -> None:
    for table in ("tasks", "workers", "runs"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table), check_exact=True)


def small_set() -> TraceSet:
    runs = make_frame(
        "runs", [dict(run_id="r1", workflow="w", dag_hash="h", makespan_ms=6.0, n_workers=1)]
    )
    tasks = make_frame(
        "tasks",
        [
            dict(
                run_id="r1",
                workflow="w",
                dag_hash="h",
                task_id=f"t{i}",
                function="f",
                worker_id="w1",
                memory_mb=1024,
                cpus=0.5,
                ready_ms=0.0,
                start_ms=0.0,
                inputs_done_ms=1.0,
                exec_done_ms=5.0,
                end_ms=6.0,
                input_bytes=10,
                exec_ms=4.0,
                output_bytes=3,
            )
            for i in range(3)
        ],
    )
    return TraceSet(tasks, None, runs)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ts=trace_sets(text=st.text(max_size=8)))
def test_parquet_round_trip(tmp_path_factory, ts):
    """Any valid TraceSet written to Parquet reads back identical, dtypes included."""
    path = tmp_path_factory.mktemp("pq") / "traces"
    ts.write(path)
    assert_same(TraceSet.read(path), ts)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ts=trace_sets())
def test_csv_round_trip(tmp_path_factory, ts):
    """Any valid TraceSet written to CSV reads back identical, dtypes included."""
    path = tmp_path_factory.mktemp("csv") / "traces"
    ts.write_csv(path)
    assert_same(TraceSet.read_csv(path), ts)


def test_schema_version_in_metadata(tmp_path):
    """Each Parquet file carries the schema version and its table name."""
    small_set().write(tmp_path / "t")
    meta = pq.read_schema(tmp_path / "t" / "tasks.parquet").metadata
    assert meta[b"faasdag.schema_version"] == b"1" and meta[b"faasdag.table"] == b"tasks"


def rewrite(path, table, mutate):
    file = path / f"{table}.parquet"
    arrow = pq.read_table(file)
    frame = mutate(arrow.to_pandas())
    new = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(
        new.replace_schema_metadata(
            {
                **(new.schema.metadata or {}),
                **{k: v for k, v in arrow.schema.metadata.items() if k.startswith(b"faasdag")},
            }
        ),
        file,
    )


@pytest.mark.parametrize(
    ("mutate", "column", "row"),
    [
        (lambda f: f.drop(columns=["exec_ms"]), "exec_ms", None),
        (lambda f: f.assign(extra=1), "extra", None),
        (lambda f: f.assign(memory_mb=["1024", "x", "7"]), "memory_mb", 1),
        (lambda f: f.assign(exec_ms=[1.0, -2.0, 1.0]), "exec_ms", 1),
        (lambda f: f.assign(output_bytes=[1, 2, -3]), "output_bytes", 2),
        (lambda f: f.assign(exec_ms=[1.0, 1.0, np.nan]), "exec_ms", 2),
        (lambda f: f.assign(end_ms=[6.0, 0.5, 6.0]), "end_ms", 1),
        (lambda f: f.assign(run_id=["r1", "r1", "ghost"]), "run_id", 2),
    ],
    ids=[
        "missing",
        "extra",
        "dtype",
        "negative-ms",
        "negative-bytes",
        "nan",
        "end-before-start",
        "unknown-run",
    ],
)
def test_read_rejects_bad_tasks(tmp_path, mutate, column, row):
    """Each class of bad input raises TraceSchemaError naming the file, column and first bad row."""
    path = tmp_path / "t"
    small_set().write(path)
    rewrite(path, "tasks", mutate)
    with pytest.raises(TraceSchemaError) as info:
        TraceSet.read(path)
    assert info.value.source.endswith("tasks.parquet")
    assert info.value.column == column and info.value.row == row
    assert "tasks.parquet" in str(info.value) and column in str(info.value)


def test_read_rejects_other_version(tmp_path):
    """A file of another schema version is refused."""
    path = tmp_path / "t"
    small_set().write(path)
    file = path / "runs.parquet"
    arrow = pq.read_table(file)
    pq.write_table(
        arrow.replace_schema_metadata({**arrow.schema.metadata, b"faasdag.schema_version": b"2"}),
        file,
    )
    with pytest.raises(TraceSchemaError, match="version 2"):
        TraceSet.read(path)


def test_invalid_write_leaves_nothing(tmp_path):
    """Writing a TraceSet whose frame was broken after construction raises and writes nothing."""
    ts = small_set()
    ts.tasks.loc[1, "exec_ms"] = -1.0
    for write in (ts.write, ts.write_csv):
        with pytest.raises(TraceSchemaError, match="exec_ms"):
            write(tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_partial_folder(tmp_path, monkeypatch):
    """A write failing midway removes its temporary folder and creates no target."""
    calls = []

    def failing(table, where, **kw):
        calls.append(where)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(table, where, **kw)

    original = pq.write_table
    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        small_set().write(tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_existing(tmp_path):
    """Without overwrite an existing folder is an error; with it, the new tables replace it."""
    small_set().write(tmp_path / "t")
    with pytest.raises(FileExistsError):
        small_set().write(tmp_path / "t")
    empty = TraceSet()
    empty.write(tmp_path / "t", overwrite=True)
    assert len(TraceSet.read(tmp_path / "t").tasks) == 0
    assert os.listdir(tmp_path) == ["t"]


def test_csv_reports_bad_row(tmp_path):
    """A malformed CSV value is reported with its file, column and row."""
    small_set().write_csv(tmp_path / "c")
    file = tmp_path / "c" / "tasks.csv"
    lines = file.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("input_bytes")] = "ten"
    lines[2] = ",".join(cells)
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceSchemaError) as info:
        TraceSet.read_csv(tmp_path / "c")
    assert info.value.column == "input_bytes" and info.value.row == 1
    assert str(file) in str(info.value)


def test_select_runs_and_concat():
    """select_runs keeps only the named runs; concat puts them back together."""
    a = small_set()
    assert len(a.select_runs([]).tasks) == 0
    assert len(TraceSet.concat([a.select_runs(["r1"])]).tasks) == 3


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda data: data[: len(data) // 2], "not a readable Parquet file"),
        (lambda data: b"garbage\n", "not a readable Parquet file"),
        (lambda data: b"", "not a readable Parquet file"),
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_read_names_an_unreadable_parquet_file(tmp_path, damage, expected):
    """A truncated, garbage or empty Parquet file raises TraceSchemaError naming it, one line."""
    path = tmp_path / "t"
    small_set().write(path)
    file = path / "workers.parquet"
    file.write_bytes(damage(file.read_bytes()))
    with pytest.raises(TraceSchemaError) as info:
        TraceSet.read(path)
    assert info.value.source == str(file)
    assert str(info.value).startswith(f"{file}: {expected}") and "\n" not in str(info.value)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_csv_folder_raises_only_schema_errors(tmp_path, data):
    """A CSV folder with a file truncated or bytes changed reads, or raises TraceSchemaError
    naming one of its files; never another exception."""
    from corrupt_inputs import damaged_bytes

    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "csv"
    small_set().write_csv(path)
    file = path / data.draw(st.sampled_from(["tasks.csv", "workers.csv", "runs.csv", "meta.json"]))
    file.write_bytes(data.draw(damaged_bytes(file.read_bytes())).data)
    try:
        TraceSet.read_csv(path)
    except TraceSchemaError as error:
        assert error.source.startswith(str(path)) and "\n" not in str(error)


def test_check_limits_names_the_column_above_one_day():
    """A recorded exec time above one day (the simulator's limit) is named by check_limits."""
    from traces.io import check_limits

    tasks = small_set().tasks.copy()
    tasks.loc[1, "exec_ms"] = 1e10
    with pytest.raises(TraceSchemaError, match="column 'exec_ms', row 1: .*above the limit"):
        check_limits(tasks, "traces/tasks.parquet")
    check_limits(small_set().tasks, "traces/tasks.parquet")  # within the limits: no error
