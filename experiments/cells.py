"""The cells of a results folder: a cell's result, its label columns, and their storage.

`CellStore` keeps each finished cell under ``OUT/cells/``: its trace folder ``cells/ID/``
(written atomically), then its label row ``cells/ID.parquet``, whose presence marks the cell
finished. A cell whose files cannot be read back is reported (`CorruptCellError`) and counts as
unfinished, so a sweep computes it again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from experiments.config import Cell

#: Columns of the per-cell label table (``cells.parquet``).
CELL_COLUMNS = (
    "cell_id",
    "run_id",
    "workflow",
    "planner",
    "platform",
    "overrides",
    "configs",
    "profiles",
    "predictor",
    "seed",
    "plan_seed",
    "lower_bound_ms",
    "predicted_makespan_ms",
    "predicted_cost_usd",
)


@dataclass
class CellResult:
    """What one cell produced: trace rows (runs, tasks, workers) and its label row."""

    cell: Cell
    runs: pd.DataFrame
    tasks: pd.DataFrame
    workers: pd.DataFrame
    labels: pd.DataFrame


def write_parquet(
    frame: pd.DataFrame, path: Path, metadata: dict[bytes, bytes] | None = None
) -> None:
    """Write `frame` to `path` atomically (a temporary sibling file, then a rename)."""
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **metadata})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:  # from here on an interrupt (SIGTERM, Ctrl-C) removes the temporary file too
        os.close(fd)
        pq.write_table(arrow, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_trace_table(frame: pd.DataFrame, table: str, path: Path) -> None:
    """Write one trace table with the schema version in its metadata (readable by TraceSet)."""
    from traces.io import TABLE_KEY, VERSION_KEY
    from traces.schema import SCHEMA_VERSION

    write_parquet(
        frame, path, {VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table.encode()}
    )


class CellStore:
    """Finished cells of one output folder, under ``OUT/cells/``.

    Cell ``ID`` is finished when ``cells/ID.parquet`` (its label row) exists; its trace rows
    are in the folder ``cells/ID/``, written (atomically) before the label row. A stored cell
    whose files cannot be read back (truncated, damaged) is not finished: it is recorded in
    `corrupt`, skipped when loading, and a sweep computes it again.

    Attributes
    ----------
    corrupt : dict of str to str
        Cell id -> one line naming the unreadable file and the problem, for the cells seen so far.
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.folder = self.out / "cells"
        self.corrupt: dict[str, str] = {}
        self._checked: set[str] = set()  # cells read back once (or just written) by this store

    def _stored(self, cell_id: str) -> bool:
        return (self.folder / f"{cell_id}.parquet").is_file() and (self.folder / cell_id).is_dir()

    def finished(self, cell_id: str) -> bool:
        """Whether the cell is stored and readable (its files are read back once per store)."""
        if not self._stored(cell_id):
            return False
        if cell_id not in self._checked:
            self._checked.add(cell_id)
            try:
                self._read(cell_id)
            except CorruptCellError as error:
                self.corrupt[cell_id] = str(error)
        return cell_id not in self.corrupt

    def _read(self, cell_id: str) -> tuple[Any, pd.DataFrame]:
        """The cell's trace set and label row; CorruptCellError naming the file that fails."""
        from traces.io import TraceSet, read_parquet_file
        from traces.schema import TraceSchemaError

        files = {t: self.folder / cell_id / f"{t}.parquet" for t in ("tasks", "workers", "runs")}
        files["cells"] = self.folder / f"{cell_id}.parquet"
        frames = {}
        for table, file in files.items():
            try:
                frames[table] = read_parquet_file(file).to_pandas()
            except Exception as error:  # noqa: BLE001 - whatever a damaged file raises
                raise CorruptCellError(file, error) from None
        if list(frames["cells"].columns) != list(CELL_COLUMNS) or len(frames["cells"]) != 1:
            raise CorruptCellError(files["cells"], "not one row of the cell label columns")
        try:
            traces = TraceSet(
                frames["tasks"],
                frames["workers"],
                frames["runs"],
                _files={t: str(files[t]) for t in ("tasks", "workers", "runs")},
            )
        except (TraceSchemaError, ValueError, TypeError) as error:
            raise CorruptCellError(getattr(error, "source", files["runs"]), error) from None
        return traces, frames["cells"]

    def save(self, result: CellResult) -> None:
        """Store a finished cell: trace folder first, then the label row that marks it done."""
        from traces.io import TraceSet

        self.folder.mkdir(parents=True, exist_ok=True)
        cell_id = result.cell.cell_id
        TraceSet(result.tasks, result.workers, result.runs).write(
            self.folder / cell_id, overwrite=True
        )
        write_parquet(result.labels, self.folder / f"{cell_id}.parquet")
        self._checked.add(cell_id)
        self.corrupt.pop(cell_id, None)

    def load(self, cell_ids: Iterable[str]) -> dict[str, pd.DataFrame]:
        """Merged tables (runs, tasks, workers, cells) of the finished ones among `cell_ids`,
        in the given order; corrupt cells are left out (see `corrupt`)."""
        from traces.io import TraceSet

        read = []
        for cell_id in cell_ids:
            if cell_id in self.corrupt or not self._stored(cell_id):
                continue
            self._checked.add(cell_id)  # read here once, not again by `finished`
            try:
                read.append(self._read(cell_id))
            except CorruptCellError as error:
                self.corrupt[cell_id] = str(error)
        merged = TraceSet(
            *(
                pd.concat([getattr(traces, t) for traces, _ in read], ignore_index=True)
                if read
                else None
                for t in ("tasks", "workers", "runs")
            ),
            source=str(self.folder),
        )
        labels = [label for _, label in read]
        cells = (
            pd.concat(labels, ignore_index=True)
            if labels
            else pd.DataFrame(columns=list(CELL_COLUMNS))
        )
        return {
            "runs": merged.runs,
            "tasks": merged.tasks,
            "workers": merged.workers,
            "cells": cells,
        }

    def all_ids(self) -> list[str]:
        """Ids of every finished cell in the folder, sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.parquet") if self.finished(p.stem))


class CorruptCellError(Exception):
    """A stored cell file that cannot be read back; the message is one line naming the file."""

    def __init__(self, file: str | Path, problem: Any):
        text = " ".join(str(problem).split())  # pyarrow's and pandas' messages may span lines
        if isinstance(problem, Exception) and text.startswith(f"{file}: "):
            text = text.removeprefix(f"{file}: ")  # a TraceSchemaError names the file already
        elif isinstance(problem, Exception):
            text = f"{type(problem).__name__}: {text}" if text else type(problem).__name__
        super().__init__(f"{file}: {text}")
        self.file = str(file)
