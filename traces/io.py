"""A set of trace tables (tasks, workers, runs) and its files: Parquet or CSV folders.

On disk a `TraceSet` is a folder holding ``tasks.parquet``, ``workers.parquet`` and
``runs.parquet``; each file carries the schema version and its table name in the Parquet
key-value metadata. The CSV form is a folder of ``tasks.csv``, ``workers.csv``, ``runs.csv`` plus
``meta.json`` with the schema version. Writes are atomic: everything goes to a hidden temporary
folder next to the target, which is renamed into place only when complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dag.limits import MAX_BYTES, MAX_DURATION_MS, bytes_limit_text, duration_limit_text
from traces.schema import (
    SCHEMA_VERSION,
    TABLES,
    TraceSchemaError,
    coerce_frame,
    empty_frame,
    validate_frame,
)

logger = logging.getLogger(__name__)

VERSION_KEY = b"faasdag.schema_version"
TABLE_KEY = b"faasdag.table"

#: Columns of the tasks table a simulator replays or predicts from, with their bounds
#: (`dag.limits`): checked (`check_limits`) where a trace folder becomes a simulation's input,
#: not on every read, so that any recorded run can be written and read back.
REPLAYED_LIMITS = {
    **{
        column: (MAX_DURATION_MS, duration_limit_text())
        for column in ("startup_ms", "download_ms", "exec_ms", "upload_ms", "dc_ms")
    },
    **{
        column: (MAX_BYTES, bytes_limit_text())
        for column in ("input_bytes", "download_bytes", "output_bytes")
    },
}


def read_parquet_file(file: Path) -> pa.Table:
    """One Parquet file as an Arrow table.

    Raises
    ------
    TraceSchemaError
        Naming the file, if it is not a readable Parquet file (truncated, garbage, not Parquet).
    """
    try:
        return pq.read_table(file)
    except (pa.ArrowException, OSError, ValueError) as error:
        problem = " ".join(str(error).split())  # pyarrow's messages may span lines
        problem = problem.replace(f"Could not open Parquet input source '{file}': ", "")
        raise TraceSchemaError(str(file), f"not a readable Parquet file ({problem})") from None


def check_limits(tasks: pd.DataFrame, source: str) -> None:
    """Check the replayed columns of a tasks table against `REPLAYED_LIMITS`.

    Raises
    ------
    TraceSchemaError
        Naming `source`, the column and the first row above its limit.
    """
    for column, (highest, text) in REPLAYED_LIMITS.items():
        values = tasks[column].to_numpy()
        rows = np.flatnonzero(values > highest)
        if rows.size:
            row = int(rows[0])
            raise TraceSchemaError(source, f"{values[row]!r} is above {text}", column, row)


class TraceSet:
    """The three trace tables of one or more runs, typed and checked against the schema.

    Parameters
    ----------
    tasks, workers, runs : DataFrame, optional
        The tables; missing ones are empty. They are converted to the schema dtypes.
    source : str
        Name used in error messages (a folder path when read from disk).

    Raises
    ------
    TraceSchemaError
        If a table breaks the schema, or a task or worker row names a run that is not in
        ``runs``, or a run id appears twice.
    """

    __slots__ = ("tasks", "workers", "runs")

    def __init__(
        self,
        tasks: pd.DataFrame | None = None,
        workers: pd.DataFrame | None = None,
        runs: pd.DataFrame | None = None,
        *,
        source: str = "<TraceSet>",
        _files: dict[str, str] | None = None,
    ):
        files = _files or {t: f"{source}:{t}" for t in TABLES}
        frames = {"tasks": tasks, "workers": workers, "runs": runs}
        for table, frame in frames.items():
            frames[table] = (
                empty_frame(table) if frame is None else coerce_frame(table, frame, files[table])
            )
        self.tasks: pd.DataFrame = frames["tasks"]
        self.workers: pd.DataFrame = frames["workers"]
        self.runs: pd.DataFrame = frames["runs"]
        self._check_links(files)

    # -- checks ---------------------------------------------------------------------------

    def _check_links(self, files: dict[str, str]) -> None:
        run_ids = self.runs["run_id"]
        dup = np.flatnonzero(run_ids.duplicated().to_numpy())
        if dup.size:
            raise TraceSchemaError(
                files["runs"],
                f"run id {run_ids.iloc[dup[0]]!r} appears twice",
                "run_id",
                int(dup[0]),
            )
        known = set(run_ids)
        for table in ("tasks", "workers"):
            frame = getattr(self, table)
            bad = np.flatnonzero(~frame["run_id"].isin(known).to_numpy(dtype=bool))
            if bad.size:
                row = int(bad[0])
                raise TraceSchemaError(
                    files[table],
                    f"run id {frame['run_id'].iloc[row]!r} is not in the runs table",
                    "run_id",
                    row,
                )

    def validate(self, source: str = "<TraceSet>") -> None:
        """Re-check the tables (they are mutable DataFrames); raises TraceSchemaError."""
        files = {t: f"{source}:{t}" for t in TABLES}
        for table in TABLES:
            validate_frame(table, getattr(self, table), files[table])
        self._check_links(files)

    # -- queries --------------------------------------------------------------------------

    @property
    def run_ids(self) -> tuple[str, ...]:
        """Run ids in table order (the order runs were recorded)."""
        return tuple(self.runs["run_id"])

    def select_runs(self, run_ids: Iterable[str]) -> TraceSet:
        """The rows of the given runs only (e.g. a train/test split)."""
        keep = set(run_ids)
        return TraceSet(
            *(
                getattr(self, t)[getattr(self, t)["run_id"].isin(keep)].reset_index(drop=True)
                for t in TABLES
            )
        )

    @classmethod
    def concat(cls, sets: Sequence[TraceSet]) -> TraceSet:
        """One TraceSet holding the runs of all `sets`, in order; run ids must not repeat."""
        if not sets:
            return cls()
        return cls(*(pd.concat([getattr(s, t) for s in sets], ignore_index=True) for t in TABLES))

    def equals(self, other: TraceSet) -> bool:
        """True if all three tables are equal, dtypes included."""
        return all(getattr(self, t).equals(getattr(other, t)) for t in TABLES) and all(
            (getattr(self, t).dtypes == getattr(other, t).dtypes).all() for t in TABLES
        )

    def __repr__(self) -> str:
        return (
            f"<TraceSet: {len(self.runs)} runs, {len(self.tasks)} task rows, "
            f"{len(self.workers)} worker rows>"
        )

    # -- Parquet ----------------------------------------------------------------------------

    def write(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the folder `path` of Parquet files, atomically.

        Raises
        ------
        FileExistsError
            If `path` exists and `overwrite` is False.
        FileNotFoundError
            If the parent folder does not exist.
        TraceSchemaError
            If a table no longer matches the schema; nothing is written.
        """
        self.validate(str(path))

        def write_files(folder: Path) -> None:
            for table in TABLES:
                frame = getattr(self, table)
                arrow = pa.Table.from_pandas(frame, preserve_index=False)
                meta = dict(arrow.schema.metadata or {})
                meta[VERSION_KEY] = str(SCHEMA_VERSION).encode()
                meta[TABLE_KEY] = table.encode()
                pq.write_table(arrow.replace_schema_metadata(meta), folder / f"{table}.parquet")

        return _atomic_folder(Path(path), overwrite, write_files)

    @classmethod
    def read(cls, path: str | os.PathLike) -> TraceSet:
        """Read a Parquet folder written by `write`.

        Raises
        ------
        FileNotFoundError
            If the folder or one of its three files is missing.
        TraceSchemaError
            Naming the file, column and first bad row: a file that is not readable Parquet
            (truncated, corrupt), wrong schema version, missing or extra columns, wrong dtypes,
            missing required values, negative durations or sizes, an end before its start, or
            rows naming an unknown run. (Bounds for replay are checked by `check_limits`.)
        """
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"trace folder {str(folder)!r} does not exist")
        frames = {}
        files = {}
        for table in TABLES:
            file = folder / f"{table}.parquet"
            files[table] = str(file)
            if not file.exists():
                raise FileNotFoundError(f"trace folder {str(folder)!r} has no {file.name}")
            arrow = read_parquet_file(file)
            meta = arrow.schema.metadata or {}
            version = meta.get(VERSION_KEY)
            if version is None:
                raise TraceSchemaError(str(file), "no faasdag schema version in the file metadata")
            if version != str(SCHEMA_VERSION).encode():
                shown = version.decode(errors="replace")
                raise TraceSchemaError(
                    str(file), f"schema version {shown}, this reader knows {SCHEMA_VERSION}"
                )
            try:
                frame = arrow.to_pandas()
            except (pa.ArrowException, ValueError, TypeError) as error:
                problem = " ".join(str(error).split())
                raise TraceSchemaError(str(file), f"unreadable table ({problem})") from None
            frames[table] = coerce_frame(table, frame, str(file), strict=True)
        return cls(**frames, _files=files)

    # -- CSV ------------------------------------------------------------------------------

    def write_csv(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the folder `path` of CSV files plus ``meta.json``, atomically (as `write`)."""
        self.validate(str(path))

        def write_files(folder: Path) -> None:
            for table in TABLES:
                getattr(self, table).to_csv(folder / f"{table}.csv", index=False)
            meta = {"schema_version": SCHEMA_VERSION, "tables": list(TABLES)}
            (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")

        return _atomic_folder(Path(path), overwrite, write_files)

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> TraceSet:
        """Read a CSV folder written by `write_csv` (``meta.json`` optional: version 1 assumed).

        Raises
        ------
        FileNotFoundError, TraceSchemaError
            As `read`; also a ``meta.json`` or CSV file that cannot be parsed.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"trace folder {str(folder)!r} does not exist")
        meta_file = folder / "meta.json"
        if meta_file.exists():
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except (ValueError, OSError) as error:  # JSONDecodeError, UnicodeDecodeError
                problem = " ".join(str(error).split())
                raise TraceSchemaError(
                    str(meta_file), f"not a readable JSON file ({problem})"
                ) from None
            version = meta.get("schema_version") if isinstance(meta, dict) else None
            if version != SCHEMA_VERSION:
                raise TraceSchemaError(
                    str(meta_file),
                    f"schema version {version!r}, this reader knows {SCHEMA_VERSION}",
                )
        frames = {}
        files = {}
        for table in TABLES:
            file = folder / f"{table}.csv"
            files[table] = str(file)
            if not file.exists():
                raise FileNotFoundError(f"trace folder {str(folder)!r} has no {file.name}")
            try:
                text = read_csv_text(file)
            except (ValueError, OSError) as error:  # pandas' ParserError, UnicodeDecodeError
                problem = " ".join(str(error).split())
                raise TraceSchemaError(str(file), f"not a readable CSV file ({problem})") from None
            frames[table] = coerce_frame(table, text, str(file))
        return cls(**frames, _files=files)


def read_csv_text(file: str | os.PathLike) -> pd.DataFrame:
    """A CSV file as a frame of strings (no type guessing; empty fields stay '')."""
    return pd.read_csv(file, dtype=object, keep_default_na=False, na_filter=False)


def _atomic_folder(path: Path, overwrite: bool, write_files: Callable[[Path], None]) -> Path:
    """Run `write_files` on a temporary sibling folder, then rename it to `path`."""
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"parent folder {str(parent)!r} of {str(path)!r} does not exist")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    try:
        write_files(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.debug("wrote trace folder %s", path)
    return path
