"""The comparison table of an experiment and its reports: text, Markdown and a static HTML page.

One row per workflow, platform/profile variant and planner, over the seeds of that group:

- ``makespan_ms`` (mean) and ``makespan_ci_ms``: half-width of the 95% confidence interval of
  the mean (Student t; 0 with one seed);
- ``cost_usd`` (mean) and ``cost_ci_usd``; ``n_cold`` (mean cold starts); ``mb_moved`` (mean MB,
  10**6 bytes, uploaded plus downloaded through the store);
- ``vs_bound``: mean makespan over the critical-path lower bound (the longest chain of exec
  times at the fastest candidate config, no start-ups or transfers), so 1.0 is unreachable ideal;
- ``predicted_ms``: the plan's own predicted makespan (mean).

Within each workflow group the best value of every column is the *winner* (lowest wins).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns compared between planners, lowest wins: column -> header in reports.
SCORED = {
    "makespan_ms": "makespan ms",
    "cost_usd": "cost USD",
    "n_cold": "cold starts",
    "mb_moved": "MB moved",
    "vs_bound": "x bound",
}
#: Labels that split results into groups compared separately (besides the workflow).
VARIANTS = ("platform", "configs", "profiles", "predictor")


def _t95(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) if n > 1 else 0.0


def _ci(values: pd.Series) -> float:
    n = int(values.count())
    if n < 2:
        return 0.0
    return _t95(n) * float(values.std(ddof=1)) / np.sqrt(n)


def joined(runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Runs with their cell labels (platform, profiles, lower bound, ...), one row per run."""
    extra = [c for c in cells.columns if c not in runs.columns or c == "run_id"]
    frame = runs.merge(cells[extra], on="run_id", how="left", validate="one_to_one")
    frame["mb_moved"] = (frame["bytes_up"] + frame["bytes_down"]) / 1e6
    frame["vs_bound"] = frame["makespan_ms"] / frame["lower_bound_ms"].where(
        frame["lower_bound_ms"] > 0
    )
    return frame


def group_keys(frame: pd.DataFrame) -> list[str]:
    """The workflow plus every variant label that takes more than one value."""
    return ["workflow"] + [v for v in VARIANTS if v in frame and frame[v].nunique() > 1]


def comparison_table(runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, planner): means and 95% CIs over seeds, and ``winner`` flags.

    Returns
    -------
    DataFrame
        Columns: the group keys, ``planner``, ``n_seeds``, ``makespan_ms``, ``makespan_ci_ms``,
        ``cost_usd``, ``cost_ci_usd``, ``n_cold``, ``mb_moved``, ``lower_bound_ms``,
        ``vs_bound``, ``predicted_ms`` and one bool ``best_<column>`` per `SCORED` column.
        Rows keep the order of first appearance (the experiment's order).
    """
    frame = joined(runs, cells)
    keys = group_keys(frame)
    by = [*keys, "planner"]
    grouped = frame.groupby(by, sort=False)
    table = grouped.agg(
        n_seeds=("seed", "count"),
        makespan_ms=("makespan_ms", "mean"),
        makespan_ci_ms=("makespan_ms", _ci),
        cost_usd=("cost_usd", "mean"),
        cost_ci_usd=("cost_usd", _ci),
        n_cold=("n_cold", "mean"),
        mb_moved=("mb_moved", "mean"),
        lower_bound_ms=("lower_bound_ms", "mean"),
        vs_bound=("vs_bound", "mean"),
        predicted_ms=("predicted_makespan_ms", "mean"),
    ).reset_index()
    for column in SCORED:
        best = table.groupby(keys, sort=False)[column].transform("min")
        table[f"best_{column}"] = np.isclose(table[column], best, rtol=1e-12, atol=0.0)
    return table


def winners(table: pd.DataFrame) -> pd.DataFrame:
    """Per group, the planner(s) winning each scored column (ties joined by '/')."""
    keys = [c for c in table.columns if c in ("workflow", *VARIANTS)]
    rows = []
    for group, part in table.groupby(keys, sort=False):
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        for column in SCORED:
            row[column] = "/".join(part.loc[part[f"best_{column}"], "planner"])
        rows.append(row)
    return pd.DataFrame(rows)


# -- formatting -------------------------------------------------------------------------------


def _cells_text(row: pd.Series) -> list[str]:
    def star(column: str) -> str:
        return "*" if row[f"best_{column}"] else " "

    cost = f"{row['cost_usd']:.3e}"
    if row["cost_ci_usd"] > 0:
        cost += f" ± {row['cost_ci_usd']:.1e}"
    ratio = "-" if np.isnan(row["vs_bound"]) else f"{row['vs_bound']:.2f}"
    return [
        str(row["planner"]),
        f"{row['makespan_ms']:,.1f} ± {row['makespan_ci_ms']:,.1f}" + star("makespan_ms"),
        cost + star("cost_usd"),
        f"{row['n_cold']:.1f}" + star("n_cold"),
        f"{row['mb_moved']:,.2f}" + star("mb_moved"),
        ratio + star("vs_bound"),
        f"{row['predicted_ms']:,.1f}",
    ]


HEADERS = (
    "planner",
    "makespan ms (95% CI)",
    "cost USD (95% CI)",
    "cold",
    "MB moved",
    "x bound",
    "predicted ms",
)


def _groups(table: pd.DataFrame):
    keys = [c for c in table.columns if c in ("workflow", *VARIANTS)]
    for group, part in table.groupby(keys, sort=False):
        values = group if isinstance(group, tuple) else (group,)
        title = " | ".join(
            str(v) if k == "workflow" else f"{k}={v}" for k, v in zip(keys, values, strict=True)
        )
        yield title, part


def format_table(table: pd.DataFrame) -> str:
    """The comparison table as aligned text, one block per workflow group; '*' marks winners."""
    blocks = []
    for title, part in _groups(table):
        rows = [list(HEADERS)] + [_cells_text(r) for _, r in part.iterrows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
        lines = [
            f"== {title}  (seeds: {int(part['n_seeds'].max())}, "
            f"critical-path bound {part['lower_bound_ms'].mean():,.1f} ms)"
        ]
        for i, r in enumerate(rows):
            cells = [r[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        blocks.append("\n".join(lines))
    legend = (
        "* best in column (lowest). makespan: mean over seeds ± 95% CI half-width; "
        "cold: mean cold starts;\nMB moved: store uploads + downloads; x bound: makespan / "
        "critical-path lower bound; predicted: the plan's own simulated prediction."
    )
    return "\n\n".join(blocks + [legend])


def markdown_table(table: pd.DataFrame) -> str:
    """The comparison table as Markdown, one table per workflow group; winners in bold."""
    out = []
    for title, part in _groups(table):
        out.append(f"### {title}\n")
        out.append("| " + " | ".join(HEADERS) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * (len(HEADERS) - 1)) + "|")
        for _, row in part.iterrows():
            texts = _cells_text(row)
            texts = [f"**{t[:-1]}**" if t.endswith("*") else t.rstrip() for t in texts]
            out.append("| " + " | ".join(texts) + " |")
        out.append("")
    return "\n".join(out)


def summary_markdown(
    table: pd.DataFrame, experiment: dict, plots: Sequence[Path], out: Path, n_missing: int = 0
) -> str:
    """``summary.md``: what was run, the comparison table, the winners and the plots."""
    lines = [f"# Experiment {experiment.get('name', '')}", ""]
    if experiment.get("description"):
        lines += [experiment["description"], ""]
    lines += [
        f"- workflows: {', '.join(experiment.get('workflows', []))}",
        f"- planners: {', '.join(experiment.get('planners', []))}",
        f"- platforms: {', '.join(experiment.get('platforms', []))}",
        f"- profiles: {', '.join(experiment.get('profiles', []))}",
        f"- seeds: {', '.join(map(str, experiment.get('seeds', [])))}",
    ]
    if n_missing:
        lines.append(f"- **incomplete**: {n_missing} cell(s) not finished yet")
    lines += ["", "## Comparison", "", markdown_table(table), "## Winners", ""]
    win = winners(table)
    lines.append("| " + " | ".join(win.columns) + " |")
    lines.append("|" + "|".join("---" for _ in win.columns) + "|")
    for _, row in win.iterrows():
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "## Plots", ""]
    for plot in plots:
        if plot.suffix == ".png":
            rel = plot.relative_to(out)
            lines.append(f"![{plot.stem}]({rel.as_posix()})")
    return "\n".join(lines) + "\n"


def html_page(
    table: pd.DataFrame, experiment: dict, plots: Sequence[Path], n_missing: int = 0
) -> str:
    """A self-contained HTML report (plots embedded as PNG data), viewable with no server."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>faasdag: {esc(str(experiment.get('name', '')))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.best{font-weight:bold;background:#e6f4e6}"
        "img{max-width:100%;border:1px solid #eee;margin:1em 0}</style></head><body>",
        f"<h1>Experiment {esc(str(experiment.get('name', '')))}</h1>",
    ]
    if experiment.get("description"):
        parts.append(f"<p>{esc(experiment['description'])}</p>")
    config = {
        k: experiment.get(k) for k in ("workflows", "planners", "platforms", "profiles", "seeds")
    }
    parts.append(f"<pre>{esc(json.dumps(config, indent=1))}</pre>")
    if n_missing:
        parts.append(f"<p><b>Incomplete:</b> {n_missing} cell(s) not finished yet.</p>")
    parts.append("<h2>Comparison</h2><p>Mean over seeds ± 95% CI; highlighted: best in column.</p>")
    for title, part in _groups(table):
        parts.append(f"<h3>{esc(title)}</h3><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in HEADERS]
        parts.append("</tr>")
        for _, row in part.iterrows():
            parts.append("<tr>")
            for text in _cells_text(row):
                best = text.endswith("*")
                cls = " class='best'" if best else ""
                parts.append(f"<td{cls}>{esc(text.rstrip('* '))}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for plot in plots:
        if plot.suffix == ".png":
            data = base64.b64encode(plot.read_bytes()).decode()
            parts.append(
                f"<h3>{esc(plot.stem)}</h3><img alt='{esc(plot.stem)}' src='data:image/png;base64,{data}'>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
