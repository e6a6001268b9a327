"""The trace schema, version 1: the tasks, workers and runs tables, in one place.

Every column is declared once here with its dtype, unit, whether a value is required, its
default (used by `make_frame` when a row leaves it out) and its bounds. Drivers (the simulator,
the real executor, importers) build their tables with `make_frame`; readers check them with
`coerce_frame` / `validate_frame`. Adding a column is a schema version bump.

Conventions: times in ms (float) from run start, sizes in bytes (int64), memory in MB, money in
USD. Strings are pandas ``string`` dtype, optional integers are nullable ``Int64``, optional
floats are ``float64`` with NaN for "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
TABLES = ("tasks", "workers", "runs")
STARTUP_KINDS = ("none", "warm", "cold", "prewarmed")  # prewarmed: warm, owed to a pre-warm

_MISSING: Any = object()

#: pandas dtype for each schema dtype name.
PANDAS_DTYPES: Mapping[str, Any] = {
    "string": pd.StringDtype(),
    "int64": np.dtype("int64"),
    "Int64": pd.Int64Dtype(),
    "float64": np.dtype("float64"),
    "bool": np.dtype("bool"),
}


class TraceSchemaError(ValueError):
    """A trace table breaks the schema; names the file, the column and the first bad row.

    Attributes
    ----------
    source : str
        The file (or ``"<rows>"`` for in-memory rows) the table came from.
    column : str or None
        The offending column.
    row : int or None
        Position (0-based, header excluded) of the first bad row.
    """

    def __init__(
        self, source: str, message: str, column: str | None = None, row: int | None = None
    ):
        self.source = source
        self.column = column
        self.row = row
        where = f"column {column!r}" if column is not None else ""
        if row is not None:
            where += f", row {row}"
        super().__init__(f"{source}: {where}: {message}" if where else f"{source}: {message}")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a trace table.

    Parameters
    ----------
    dtype : str
        One of ``string``, ``int64``, ``Int64`` (nullable), ``float64``, ``bool``.
    unit : str
        ``ms``, ``bytes``, ``MB``, ``vCPU``, ``USD`` or ``""``.
    required : bool
        When True a missing value (NaN / NA) is an error.
    description : str
        What the column records.
    default : object
        Value `make_frame` fills in when a row omits the column; absent means the row must give it.
    min : float, optional
        Smallest allowed value (inclusive) unless `positive`.
    positive : bool
        Values must be > 0.
    choices : tuple of str, optional
        Allowed values of a string column.
    """

    dtype: str
    unit: str
    required: bool
    description: str
    default: Any = _MISSING
    min: float | None = None
    positive: bool = False
    choices: tuple[str, ...] | None = None


def _s(desc: str, **kw: Any) -> Column:
    return Column("string", "", True, desc, **kw)


def _ms(desc: str, **kw: Any) -> Column:
    return Column("float64", "ms", True, desc, min=0.0, **kw)


def _bytes(desc: str, **kw: Any) -> Column:
    return Column("int64", "bytes", True, desc, min=0, **kw)


def _usd(desc: str) -> Column:
    return Column("float64", "USD", True, desc, default=0.0, min=0.0)


TASK_COLUMNS: Mapping[str, Column] = {
    "run_id": _s("run this execution belongs to"),
    "workflow": _s("workflow name"),
    "dag_hash": _s("DAG.dag_hash of the workflow ('' when there is no DAG)"),
    "task_id": _s("task id within the DAG"),
    "function": _s("function the task runs"),
    "worker_id": _s("worker instance that ran the task"),
    "memory_mb": Column(
        "int64", "MB", True, "memory of the worker's resource config", positive=True
    ),
    "cpus": Column("float64", "vCPU", True, "vCPUs of the worker's resource config", positive=True),
    "planner": _s("planner that made the plan", default=""),
    "backend": _s("where it ran: sim, lambda, local, ...", default=""),
    "attempt": Column("int64", "", True, "0 for the first try, +1 per retry", default=0, min=0),
    "ready_ms": _ms("all dependencies completed"),
    "start_ms": _ms("the worker started handling the task"),
    "inputs_done_ms": _ms("all inputs downloaded"),
    "exec_done_ms": _ms("the function returned"),
    "end_ms": _ms("output uploaded and bookkeeping done"),
    "startup": _s(
        "container start of the worker for this task", default="none", choices=STARTUP_KINDS
    ),
    "startup_ms": _ms("container start time charged to this task", default=0.0),
    "input_bytes": _bytes("bytes of all inputs the function received"),
    "download_bytes": _bytes("bytes fetched from the store (inputs not local)", default=0),
    "download_ms": _ms("time downloading inputs", default=0.0),
    "exec_ms": _ms("time running the function"),
    "output_bytes": _bytes("size of the function's output"),
    "upload_ms": _ms("time uploading the output (0 when kept local)", default=0.0),
    "dc_ms": _ms("dependency-counter / fan-in bookkeeping time", default=0.0),
    "duplicated": Column("bool", "", True, "run as a duplicate (task-dup)", default=False),
    "streamed": Column("bool", "", True, "output was streamed to a consumer", default=False),
}

WORKER_COLUMNS: Mapping[str, Column] = {
    "run_id": _s("run this worker belongs to"),
    "worker_id": _s("worker instance id"),
    "memory_mb": Column("int64", "MB", True, "memory of the resource config", positive=True),
    "cpus": Column("float64", "vCPU", True, "vCPUs of the resource config", positive=True),
    "startup": _s("how the container started", choices=STARTUP_KINDS),
    "invoked_ms": _ms("invocation sent"),
    "ready_ms": _ms("container ready to run tasks"),
    "end_ms": _ms("worker returned"),
    "billed_ms": _ms("billed duration"),
}

RUN_COLUMNS: Mapping[str, Column] = {
    "run_id": _s("unique run id"),
    "workflow": _s("workflow name"),
    "dag_hash": _s("DAG.dag_hash ('' when there is no DAG)"),
    "planner": _s("planner that made the plan", default=""),
    "backend": _s("sim, lambda, local, ...", default=""),
    "seed": Column(
        "Int64", "", False, "random seed of a simulated run (NA for real runs)", default=None
    ),
    "makespan_ms": _ms("first ready to last end"),
    "cost_compute_usd": _usd("billed GB-seconds"),
    "cost_requests_usd": _usd("per-invocation charges"),
    "cost_store_usd": _usd("intermediate store charges"),
    "cost_usd": _usd("total cost"),
    "n_workers": Column("int64", "", True, "worker instances", min=0),
    "n_cold": Column("int64", "", True, "cold starts", default=0, min=0),
    "bytes_up": _bytes("bytes uploaded to the store", default=0),
    "bytes_down": _bytes("bytes downloaded from the store", default=0),
    "predicted_makespan_ms": Column(
        "float64",
        "ms",
        False,
        "the plan's predicted makespan (NaN when none)",
        default=np.nan,
        min=0.0,
    ),
    "config": _s("experiment config as JSON", default="{}"),
}

COLUMNS: Mapping[str, Mapping[str, Column]] = {
    "tasks": TASK_COLUMNS,
    "workers": WORKER_COLUMNS,
    "runs": RUN_COLUMNS,
}

#: (earlier, later) column pairs that must satisfy earlier <= later in each row.
ORDERED: Mapping[str, tuple[tuple[str, str], ...]] = {
    "tasks": (
        ("start_ms", "end_ms"),
        ("ready_ms", "end_ms"),
        ("inputs_done_ms", "end_ms"),
        ("exec_done_ms", "end_ms"),
    ),
    "workers": (("invoked_ms", "ready_ms"), ("ready_ms", "end_ms")),
    "runs": (),
}


def columns(table: str) -> Mapping[str, Column]:
    """The column specs of `table` ('tasks', 'workers' or 'runs'), in file order.

    Raises
    ------
    ValueError
        If `table` is not a schema table.
    """
    try:
        return COLUMNS[table]
    except KeyError:
        raise ValueError(f"unknown trace table {table!r}; expected one of {TABLES}") from None


def empty_frame(table: str) -> pd.DataFrame:
    """An empty, typed DataFrame of `table`, columns in schema order."""
    specs = columns(table)
    return pd.DataFrame(
        {name: pd.Series([], dtype=PANDAS_DTYPES[c.dtype]) for name, c in specs.items()}
    )


def make_frame(table: str, rows: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> pd.DataFrame:
    """Build a typed, validated table from rows (or from a mapping of column -> values).

    Columns a row leaves out take the column's default; a required column without a default
    must be given.

    Raises
    ------
    TraceSchemaError
        Naming the column (and row) of an unknown column, a missing required value, a value of
        the wrong type or out of bounds.
    """
    specs = columns(table)
    if isinstance(rows, Mapping):
        data = dict(rows)
        lengths = {len(np.atleast_1d(v)) for v in data.values()} or {0}
        n = max(lengths)
    else:
        rows = list(rows)
        n = len(rows)
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        data = {k: [row.get(k, _MISSING) for row in rows] for k in keys}
    extra = [k for k in data if k not in specs]
    if extra:
        raise TraceSchemaError("<rows>", f"not a column of the {table} table", column=extra[0])
    full: dict[str, Any] = {}
    for name, spec in specs.items():
        values = data.get(name, _MISSING)
        if values is _MISSING:
            if spec.default is _MISSING:
                row = 0 if n else None
                raise TraceSchemaError("<rows>", "required column not given", column=name, row=row)
            full[name] = [spec.default] * n
            continue
        if isinstance(values, list) and any(v is _MISSING for v in values):
            if spec.default is _MISSING:
                row = next(i for i, v in enumerate(values) if v is _MISSING)
                raise TraceSchemaError("<rows>", "required column not given", column=name, row=row)
            values = [spec.default if v is _MISSING else v for v in values]
        full[name] = values
    frame = pd.DataFrame(
        {k: pd.Series(v, dtype=object) if isinstance(v, list) else v for k, v in full.items()}
    )
    return coerce_frame(table, frame, source="<rows>")


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _isna(series: pd.Series) -> np.ndarray:
    return np.asarray(pd.isna(series), dtype=bool)


def _coerce_column(series: pd.Series, name: str, spec: Column, source: str) -> pd.Series:
    """Convert one column to its schema dtype or raise naming the first unconvertible row."""
    target = PANDAS_DTYPES[spec.dtype]
    values = series.reset_index(drop=True)
    missing = _isna(values)
    if spec.dtype == "string":
        if isinstance(values.dtype, pd.StringDtype):
            return values.astype(target)  # strings or missing by construction
        if values.dtype == object:
            bad = ~missing & ~np.fromiter((isinstance(v, str) for v in values), bool, len(values))
        else:
            bad = ~missing
        row = _first(bad)
        if row is not None:
            raise TraceSchemaError(
                source, f"expected a string, got {values.iloc[row]!r}", name, row
            )
        return values.astype(target)
    if spec.dtype == "bool":
        if values.dtype == bool:
            return values.astype(target)
        words = {"true": True, "false": False, "1": True, "0": False}
        mapped = []
        for i, v in enumerate(values):
            if isinstance(v, bool | np.bool_):
                mapped.append(bool(v))
            elif isinstance(v, str) and v.strip().lower() in words:
                mapped.append(words[v.strip().lower()])
            elif isinstance(v, int | float | np.integer | np.floating) and v in (0, 1):
                mapped.append(bool(v))
            else:
                raise TraceSchemaError(source, f"expected a bool, got {v!r}", name, i)
        return pd.Series(mapped, dtype=target)
    # numeric
    if values.dtype == bool or isinstance(values.dtype, pd.BooleanDtype):
        row = 0 if len(values) else None
        raise TraceSchemaError(source, f"expected {spec.dtype}, got bool values", name, row)
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        values = _parse_numbers(values.astype(object), name, spec, source)
    if spec.dtype == "float64":
        return values.astype("float64")
    if values.dtype.kind == "f":
        arr = values.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isnan(arr) & (
            ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) >= 2.0**63)
        )
        row = _first(bad)
        if row is not None:
            raise TraceSchemaError(
                source, f"expected an integer, got {float(arr[row])!r}", name, row
            )
        values = pd.Series(pd.array(arr, dtype="Int64"))
    if spec.dtype == "int64":
        row = _first(_isna(values))
        if row is not None:
            raise TraceSchemaError(source, "missing value (NaN/NA) in a required column", name, row)
    return values.astype(target)


def _parse_numbers(raw: pd.Series, name: str, spec: Column, source: str) -> pd.Series:
    """Parse an object column (Python numbers or text, as from CSV) to numbers, or raise."""
    integer = spec.dtype != "float64"
    out: list[Any] = []
    for i, v in enumerate(raw):
        if v is None or v is pd.NA or (isinstance(v, float | np.floating) and np.isnan(v)):
            out.append(None)
            continue
        if isinstance(v, str) and not v.strip():
            out.append(None)
            continue
        value: Any = None
        if not isinstance(v, bool | np.bool_):
            try:
                if integer:
                    value = int(v) if isinstance(v, int | np.integer) else int(str(v).strip())
                else:
                    value = float(v)
            except (TypeError, ValueError, OverflowError):
                try:
                    f = float(v)
                    value = int(f) if integer and np.isfinite(f) and f == round(f) else None
                except (TypeError, ValueError, OverflowError):
                    value = None
        if value is None or (integer and not -(2**63) <= value < 2**63):
            raise TraceSchemaError(source, f"expected {spec.dtype}, got {v!r}", name, i)
        out.append(value)
    if integer:
        return pd.Series(pd.array(out, dtype="Int64"))
    return pd.Series(np.array([np.nan if x is None else x for x in out], dtype="float64"))


def coerce_frame(
    table: str, df: pd.DataFrame, source: str = "<frame>", *, strict: bool = False
) -> pd.DataFrame:
    """Convert `df` to the typed schema of `table` (columns in order), then validate it.

    Parameters
    ----------
    strict : bool
        When True (Parquet), a column stored with the wrong kind of dtype (e.g. strings for an
        integer column) is an error even if its values could be parsed.

    Raises
    ------
    TraceSchemaError
        On a missing or extra column, a wrong dtype, or a bad value (see `validate_frame`).
    """
    specs = columns(table)
    _check_names(table, df, source)
    out = {}
    for name, spec in specs.items():
        series = df[name]
        if strict and not _kind_ok(series.dtype, spec.dtype):
            row = 0 if len(series) else None
            try:
                _coerce_column(series, name, spec, source)
            except TraceSchemaError as exc:
                row = exc.row
            raise TraceSchemaError(
                source, f"has dtype {series.dtype}, expected {spec.dtype}", name, row
            )
        out[name] = _coerce_column(series, name, spec, source)
    frame = pd.DataFrame(out)
    validate_frame(table, frame, source)
    return frame


def _kind_ok(dtype: Any, expected: str) -> bool:
    kind = getattr(dtype, "kind", "")
    if expected == "string":
        return isinstance(dtype, pd.StringDtype) or kind == "O"
    if expected == "bool":
        return kind == "b"
    if expected in ("int64", "Int64"):
        return kind in ("i", "u")
    return kind in ("i", "u", "f")


def _check_names(table: str, df: pd.DataFrame, source: str) -> None:
    specs = columns(table)
    missing = [c for c in specs if c not in df.columns]
    if missing:
        raise TraceSchemaError(source, f"missing from the {table} table", column=missing[0])
    extra = [str(c) for c in df.columns if c not in specs]
    if extra:
        raise TraceSchemaError(source, f"not a column of the {table} table", column=extra[0])
    if df.columns.duplicated().any():
        dup = str(df.columns[df.columns.duplicated()][0])
        raise TraceSchemaError(source, "column appears twice", column=dup)


def validate_frame(table: str, df: pd.DataFrame, source: str = "<frame>") -> None:
    """Check a typed table against the schema: names, order, dtypes and values.

    Raises
    ------
    TraceSchemaError
        Naming `source`, the column and the first bad row, for: a missing or extra column, a
        wrong dtype, a missing value in a required column, a negative duration or size (or a
        non-positive memory / cpus), an unknown startup kind, or an end before its start.
    """
    specs = columns(table)
    _check_names(table, df, source)
    for name, spec in specs.items():
        series = df[name]
        if series.dtype != PANDAS_DTYPES[spec.dtype]:
            raise TraceSchemaError(source, f"has dtype {series.dtype}, expected {spec.dtype}", name)
        missing = _isna(series)
        if spec.required:
            row = _first(missing)
            if row is not None:
                raise TraceSchemaError(
                    source, "missing value (NaN/NA) in a required column", name, row
                )
        if spec.dtype in ("int64", "Int64", "float64"):
            arr = series.to_numpy(dtype="float64", na_value=np.nan)
            if spec.dtype == "float64":
                row = _first(np.isinf(arr))
                if row is not None:
                    raise TraceSchemaError(source, f"infinite value {float(arr[row])!r}", name, row)
            if spec.positive:
                row = _first(~missing & ~(arr > 0))
                if row is not None:
                    raise TraceSchemaError(
                        source, f"must be > 0, got {float(arr[row])!r}", name, row
                    )
            elif spec.min is not None:
                row = _first(~missing & (arr < spec.min))
                if row is not None:
                    raise TraceSchemaError(source, f"negative value {float(arr[row])!r}", name, row)
        if spec.choices is not None:
            row = _first(~missing & ~np.asarray(series.isin(spec.choices), dtype=bool))
            if row is not None:
                raise TraceSchemaError(
                    source, f"value {series.iloc[row]!r} not one of {spec.choices}", name, row
                )
    for earlier, later in ORDERED[table]:
        row = _first(df[later].to_numpy() < df[earlier].to_numpy())
        if row is not None:
            raise TraceSchemaError(
                source,
                f"{later}={float(df[later].iloc[row])!r} is before {earlier}={float(df[earlier].iloc[row])!r}",
                later,
                row,
            )


def frame_from_rows(
    table: str, rows: list[Mapping[str, Any]], labels: Mapping[str, Any], source: str
) -> pd.DataFrame:
    """A typed table from recorder rows plus constant per-run labels (run_id, planner, ...).

    Faster than `make_frame` for large runs: columns are built whole, strings typed up front.
    Labels that are not columns of `table` are ignored.

    Raises
    ------
    TraceSchemaError
        As `coerce_frame`, naming `source`.
    """
    if not rows:
        return empty_frame(table)
    specs = columns(table)
    frame = pd.DataFrame(rows)
    for name in frame.columns:
        if name in specs and specs[name].dtype == "string":
            frame[name] = frame[name].astype("string")
    for name, value in labels.items():
        if name in specs:
            frame[name] = pd.array([value] * len(frame), dtype=PANDAS_DTYPES[specs[name].dtype])
    return coerce_frame(table, frame, source=source)
