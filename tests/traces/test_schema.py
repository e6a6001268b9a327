"""Schema: typed frames, defaults, and the errors make_frame / validate_frame raise."""

import numpy as np
import pandas as pd
import pytest

from traces.schema import (
    RUN_COLUMNS,
    SCHEMA_VERSION,
    TASK_COLUMNS,
    WORKER_COLUMNS,
    TraceSchemaError,
    empty_frame,
    make_frame,
    validate_frame,
)


def task_row(**kw):
    row = dict(
        run_id="r1",
        workflow="wf",
        dag_hash="h",
        task_id="a",
        function="f",
        worker_id="w1",
        memory_mb=1024,
        cpus=0.58,
        ready_ms=0.0,
        start_ms=1.0,
        inputs_done_ms=2.0,
        exec_done_ms=5.0,
        end_ms=6.0,
        input_bytes=10,
        exec_ms=3.0,
        output_bytes=4,
    )
    row.update(kw)
    return row


def test_version_and_tables():
    """Schema version 1 declares the three tables of DESIGN.md with unit-named timestamps."""
    assert SCHEMA_VERSION == 1
    assert {"ready_ms", "start_ms", "inputs_done_ms", "exec_done_ms", "end_ms"} <= set(TASK_COLUMNS)
    assert {"invoked_ms", "ready_ms", "end_ms", "billed_ms"} <= set(WORKER_COLUMNS)
    assert {"cost_usd", "cost_compute_usd", "predicted_makespan_ms", "config"} <= set(RUN_COLUMNS)


def test_empty_frame_is_typed():
    """An empty frame has every column in schema order with its dtype."""
    frame = empty_frame("tasks")
    assert list(frame.columns) == list(TASK_COLUMNS)
    assert frame["memory_mb"].dtype == np.int64
    assert frame["task_id"].dtype == pd.StringDtype()
    assert frame["duplicated"].dtype == bool


def test_make_frame_fills_defaults():
    """Omitted columns with defaults are filled: attempt 0, startup 'none', duplicated False."""
    frame = make_frame("tasks", [task_row()])
    assert frame.loc[0, "attempt"] == 0
    assert frame.loc[0, "startup"] == "none"
    assert not frame.loc[0, "duplicated"]
    validate_frame("tasks", frame)


def test_make_frame_missing_required_column():
    """A required column without a default must be given; the error names it."""
    row = task_row()
    del row["exec_ms"]
    with pytest.raises(TraceSchemaError, match="exec_ms"):
        make_frame("tasks", [row])


def test_make_frame_unknown_column():
    """A key that is not a column raises naming it."""
    with pytest.raises(TraceSchemaError, match="colour"):
        make_frame("tasks", [task_row(colour="red")])


def test_make_frame_bad_value_names_column_and_row():
    """A value of the wrong type names the column and the row."""
    with pytest.raises(TraceSchemaError) as info:
        make_frame("tasks", [task_row(), task_row(memory_mb="lots")])
    assert info.value.column == "memory_mb" and info.value.row == 1


def test_negative_size_rejected():
    """A negative size is an error naming the column."""
    with pytest.raises(TraceSchemaError, match="output_bytes"):
        make_frame("tasks", [task_row(output_bytes=-1)])


def test_end_before_start_rejected():
    """end_ms before start_ms is an error naming end_ms and the row."""
    with pytest.raises(TraceSchemaError) as info:
        make_frame("tasks", [task_row(), task_row(start_ms=9.0)])
    assert info.value.column == "end_ms" and info.value.row == 1


def test_nan_in_required_column_rejected():
    """NaN in a required float column is an error."""
    with pytest.raises(TraceSchemaError, match="exec_ms"):
        make_frame("tasks", [task_row(exec_ms=float("nan"))])


def test_unknown_startup_kind_rejected():
    """startup must be none, warm or cold."""
    with pytest.raises(TraceSchemaError, match="startup"):
        make_frame("tasks", [task_row(startup="tepid")])


def test_optional_columns_accept_missing():
    """Runs may leave seed and predicted_makespan_ms unknown (NA / NaN)."""
    frame = make_frame(
        "runs", [dict(run_id="r", workflow="w", dag_hash="h", makespan_ms=1.0, n_workers=1)]
    )
    assert pd.isna(frame.loc[0, "seed"]) and np.isnan(frame.loc[0, "predicted_makespan_ms"])
    assert frame["seed"].dtype == pd.Int64Dtype()


def test_validate_frame_wrong_dtype():
    """validate_frame rejects a column of the wrong dtype, naming it and the source."""
    frame = make_frame("tasks", [task_row()])
    frame["memory_mb"] = frame["memory_mb"].astype(float)
    with pytest.raises(TraceSchemaError, match="x.parquet.*memory_mb"):
        validate_frame("tasks", frame, source="x.parquet")
