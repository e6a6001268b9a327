"""An experiment's results folder: loading it (complete or interrupted) and writing its report.

Layout of ``OUT/``::

    experiment.json        the validated experiment (written before any cell runs)
    cells/ID/, cells/ID.parquet   one finished cell each (see `experiments.sweep`)
    runs.parquet, tasks.parquet, workers.parquet   merged trace tables (a TraceSet folder)
    cells.parquet          one row of labels per run (platform, profiles, lower bound, ...)
    summary.md, index.html, plots/*.png|svg      the report
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments.cells import CellStore
from experiments.config import Experiment
from experiments.errors import UsageError

logger = logging.getLogger(__name__)


@dataclass
class Results:
    """Merged tables of an experiment and the experiment itself.

    Attributes
    ----------
    experiment : Experiment
    runs, tasks, workers : DataFrame
        Trace-schema tables of the finished runs.
    cells : DataFrame
        Labels per run (`experiments.cells.CELL_COLUMNS`).
    n_missing : int
        Cells of the experiment not finished (an interrupted run), the corrupt ones included.
    corrupt : dict of str to str
        Stored cells that could not be read back: cell id -> one line naming the file.
    """

    experiment: Experiment
    runs: pd.DataFrame
    tasks: pd.DataFrame
    workers: pd.DataFrame
    cells: pd.DataFrame
    n_missing: int = 0
    corrupt: dict[str, str] = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        """Runs joined with their cell labels (see `experiments.report.joined`)."""
        from experiments.report import joined

        return joined(self.runs, self.cells)

    def table(self) -> pd.DataFrame:
        """The comparison table (see `experiments.report.comparison_table`)."""
        from experiments.report import comparison_table

        return comparison_table(self.runs, self.cells)


def load_results(out: str | Path) -> Results:
    """Results of the folder `out`, from its finished cells (so an interrupted run loads too).

    A finished cell whose files cannot be read back is left out and named in ``corrupt``.

    Raises
    ------
    UsageError
        If `out` is not a results folder, its ``experiment.json`` is unreadable, or it has no
        readable finished cell (naming a corrupt cell file when that is why).
    """
    out = Path(out)
    meta = out / "experiment.json"
    if not meta.is_file():
        raise UsageError(f"{str(out)!r} is not a results folder (no experiment.json)")
    try:
        experiment = Experiment.from_json(meta.read_text(encoding="utf-8"))
        ids = [c.cell_id for c in experiment.cells()]
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # UnicodeDecodeError too
        problem = " ".join(str(error).split())
        raise UsageError(
            f"{meta}: not a readable experiment.json ({type(error).__name__}: {problem})"
        ) from None
    store = CellStore(out)
    tables = store.load(ids)
    if tables["runs"].empty:
        if store.corrupt:
            first = next(iter(store.corrupt.values()))
            raise UsageError(
                f"{str(out)!r} has no readable finished cell: {first}"
                + (
                    f" (and {len(store.corrupt) - 1} more corrupt cells)"
                    if len(store.corrupt) > 1
                    else ""
                )
            )
        raise UsageError(f"{str(out)!r} has no finished cell yet")
    n_missing = sum(not store.finished(c) for c in ids)
    return Results(experiment, n_missing=n_missing, corrupt=dict(store.corrupt), **tables)


def write_report(results: Results, out: str | Path, *, plots: bool | None = None) -> str:
    """Write ``summary.md``, ``index.html`` and the plots into `out`; return the table text.

    Parameters
    ----------
    plots : bool, optional
        Draw the plots (default: the experiment's ``outputs.plots``).
    """
    from experiments.report import format_table, html_page, summary_markdown

    out = Path(out)
    experiment = results.experiment
    table = results.table()
    paths: list[Path] = []
    if experiment.plots if plots is None else plots:
        from experiments.plots import make_plots

        paths = make_plots(
            table,
            results.frame,
            results.tasks,
            results.workers,
            out / "plots",
            formats=experiment.formats,
            gantt_seed=experiment.gantt,
        )
    info = {
        "name": experiment.name,
        "description": experiment.description,
        "workflows": list(experiment.workflows),
        "planners": list(experiment.planners),
        "platforms": list(experiment.platforms),
        "profiles": list(experiment.profiles),
        "seeds": list(experiment.seeds),
    }
    summary = summary_markdown(table, info, paths, out, results.n_missing)
    failures = out / "failures.txt"
    if failures.is_file():
        lines = failures.read_text(encoding="utf-8", errors="replace").splitlines()
        summary += "\n## Failed cells\n\n" + "".join(f"- {line}\n" for line in lines)
    (out / "summary.md").write_text(summary, encoding="utf-8")
    (out / "index.html").write_text(
        html_page(table, info, paths, results.n_missing), encoding="utf-8"
    )
    logger.info("report of %s written to %s (%d plot files)", experiment.name, out, len(paths))
    return format_table(table)
