"""Plots of an experiment (matplotlib; each saved as PNG and/or SVG).

The figure functions return figures and leave the backend alone, so they show inline in a
notebook; the CLI selects the Agg backend (`use_agg`) before drawing.

- ``makespan_cost``: per workflow group, mean makespan and cost per planner with 95% CI bars, the
  makespan written on each bar;
- ``pareto``: cost against makespan per planner, the Pareto front (nothing both faster and
  cheaper) joined by a line;
- ``gantt_<workflow>``: one simulated run per planner, one row per worker, bars coloured by phase
  (start-up, download, exec, upload, store bookkeeping), the makespan as a red line;
- ``predicted_vs_simulated``: each run's simulated makespan against its plan's prediction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch

from experiments.report import VARIANTS, _groups

#: Phase -> colour of Gantt bars.
PHASE_COLORS = {
    "startup": "#f28e2b",
    "download": "#4e79a7",
    "exec": "#59a14f",
    "upload": "#b07aa1",
    "bookkeeping": "#bab0ac",
}


def use_agg() -> None:
    """Select matplotlib's non-interactive Agg backend (files only; for the CLI)."""
    import matplotlib

    matplotlib.use("Agg")


def slug(text: str) -> str:
    """A file-name-safe version of a workflow spec."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "workflow"


def save(fig: plt.Figure, stem: Path, formats: Iterable[str]) -> list[Path]:
    """Save `fig` as ``stem.<format>`` for each format; close it; return the paths."""
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _planner_colors(planners: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(planners) <= 10 else "tab20")
    return {p: cmap(i % cmap.N) for i, p in enumerate(planners)}


def makespan_cost_figure(table: pd.DataFrame) -> plt.Figure:
    """Mean makespan (ms) and cost (USD) per planner with 95% CIs, one row per workflow group."""
    groups = list(_groups(table))
    colors = _planner_colors(list(dict.fromkeys(table["planner"])))
    n_planners = max(len(part) for _, part in groups)
    height = max(2.2, 0.32 * n_planners + 1.2)
    fig, axes = plt.subplots(
        len(groups), 2, figsize=(13, height * len(groups)), squeeze=False, layout="constrained"
    )
    for (title, part), (ax_m, ax_c) in zip(groups, axes, strict=True):
        y = np.arange(len(part))[::-1]
        bar_colors = [colors[p] for p in part["planner"]]
        ax_m.barh(y, part["makespan_ms"], xerr=part["makespan_ci_ms"], color=bar_colors, capsize=3)
        top = float((part["makespan_ms"] + part["makespan_ci_ms"]).max())
        for yi, value, ci, best in zip(
            y, part["makespan_ms"], part["makespan_ci_ms"], part["best_makespan_ms"], strict=True
        ):
            label = f"{value:,.0f} ms" + (" (best)" if best else "")
            ax_m.text(
                value + ci + top * 0.01,
                yi,
                label,
                va="center",
                fontsize=8,
                fontweight="bold" if best else "normal",
            )
        ax_m.set_xlim(0, top * 1.25)
        ax_m.set_yticks(y, part["planner"])
        ax_m.set_xlabel("makespan (ms), mean ± 95% CI")
        ax_m.set_title(f"{title}: makespan")
        ax_c.barh(
            y, part["cost_usd"] * 1e3, xerr=part["cost_ci_usd"] * 1e3, color=bar_colors, capsize=3
        )
        ctop = float(((part["cost_usd"] + part["cost_ci_usd"]) * 1e3).max())
        for yi, value in zip(y, part["cost_usd"] * 1e3, strict=True):
            ax_c.text(value + ctop * 0.01, yi, f"{value:.3g}", va="center", fontsize=8)
        ax_c.set_xlim(0, ctop * 1.2 if ctop > 0 else 1)
        ax_c.set_yticks(y, part["planner"])
        ax_c.set_xlabel("cost per run (USD x 1e-3), mean ± 95% CI")
        ax_c.set_title(f"{title}: cost")
        for ax in (ax_m, ax_c):
            ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Makespan and cost per planner", fontsize=13)
    return fig


def pareto_front(makespan: Sequence[float], cost: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both makespan and cost, by makespan."""
    points = sorted(range(len(makespan)), key=lambda i: (makespan[i], cost[i]))
    front, best_cost = [], math.inf
    for i in points:
        if cost[i] < best_cost:
            front.append(i)
            best_cost = cost[i]
    return front


def pareto_figure(table: pd.DataFrame) -> plt.Figure:
    """Cost against makespan per planner (with CIs), one panel per workflow group."""
    groups = list(_groups(table))
    colors = _planner_colors(list(dict.fromkeys(table["planner"])))
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.5 * ncols, 4.5 * nrows), squeeze=False, layout="constrained"
    )
    for ax, (title, part) in zip(axes.flat, groups, strict=False):
        ms = part["makespan_ms"].to_numpy()
        usd = part["cost_usd"].to_numpy() * 1e3
        for i, planner in enumerate(part["planner"]):
            ax.errorbar(
                ms[i],
                usd[i],
                xerr=part["makespan_ci_ms"].iloc[i],
                yerr=part["cost_ci_usd"].iloc[i] * 1e3,
                fmt="o",
                color=colors[planner],
                label=planner,
                capsize=2,
                markersize=6,
            )
        labels: dict[tuple[float, float], list[str]] = {}
        for i, planner in enumerate(part["planner"]):
            labels.setdefault((round(ms[i], 6), round(usd[i], 9)), []).append(planner)
        for (x, y), names in labels.items():
            ax.annotate(
                "/".join(names), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
        front = pareto_front(list(ms), list(usd))
        ax.plot(ms[front], usd[front], "--", color="black", lw=1, label="Pareto front")
        ax.set_xlabel("makespan (ms), mean")
        ax.set_ylabel("cost per run (USD x 1e-3), mean")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=color, label=planner)
        for planner, color in colors.items()
    ]
    handles.append(plt.Line2D([], [], ls="--", color="black", lw=1, label="Pareto front"))
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    fig.suptitle("Cost vs makespan (lower-left is better)", fontsize=13)
    return fig


def gantt_axes(
    ax: plt.Axes, tasks: pd.DataFrame, workers: pd.DataFrame, makespan_ms: float
) -> float:
    """Draw one run's Gantt chart on `ax`: a row per worker, a bar per phase; returns the
    latest time drawn (ms), for the caller's x limits."""
    order = workers.sort_values(["invoked_ms", "worker_id"])["worker_id"].tolist()
    order += sorted(set(tasks["worker_id"]) - set(order))
    row = {w: i for i, w in enumerate(order)}
    spans: dict[str, list[tuple[float, float]]] = {p: [] for p in PHASE_COLORS}
    rows: dict[str, list[int]] = {p: [] for p in PHASE_COLORS}

    def add(phase: str, worker: str, start: float, end: float) -> None:
        if end > start:
            spans[phase].append((start, end - start))
            rows[phase].append(row[worker])

    for w in workers.itertuples():
        add("startup", w.worker_id, w.invoked_ms, w.ready_ms)
    for t in tasks.itertuples():
        add("download", t.worker_id, t.start_ms, t.inputs_done_ms)
        add("exec", t.worker_id, t.inputs_done_ms, t.exec_done_ms)
        upload_end = t.exec_done_ms + t.upload_ms
        add("upload", t.worker_id, t.exec_done_ms, upload_end)
        add("bookkeeping", t.worker_id, upload_end, t.end_ms)
    for phase, color in PHASE_COLORS.items():
        if not spans[phase]:
            continue
        left, width = np.asarray(spans[phase], dtype=float).T
        bottom = np.asarray(rows[phase], dtype=float) - 0.4
        verts = np.stack(
            [
                np.column_stack([left, bottom]),
                np.column_stack([left + width, bottom]),
                np.column_stack([left + width, bottom + 0.8]),
                np.column_stack([left, bottom + 0.8]),
            ],
            axis=1,
        )
        ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="none"))
    ax.axvline(makespan_ms, color="red", lw=1.2)
    ax.text(
        makespan_ms,
        len(order) - 0.5,
        f"makespan {makespan_ms:,.0f} ms ",
        color="red",
        fontsize=8,
        va="bottom",
        ha="right",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
    )
    ax.set_ylim(len(order) - 0.4, -1.0)
    step = max(1, len(order) // 12)
    ax.set_yticks(
        range(0, len(order), step), [order[i] for i in range(0, len(order), step)], fontsize=7
    )
    ax.set_ylabel(f"worker ({len(order)})")
    ax.set_xlabel("time since run start (ms)")
    ax.grid(axis="x", alpha=0.3)
    return max([makespan_ms, *(s + w for phase in spans.values() for s, w in phase)])


def gantt_figure(
    title: str, runs: pd.DataFrame, tasks: pd.DataFrame, workers: pd.DataFrame
) -> plt.Figure:
    """One Gantt panel per run in `runs` (one run per planner), sharing the time axis."""
    n = len(runs)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(6 * ncols, 3.6 * nrows),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    end = 0.0
    for ax, run in zip(axes.flat, runs.itertuples(), strict=False):
        drawn = gantt_axes(
            ax,
            tasks[tasks["run_id"] == run.run_id],
            workers[workers["run_id"] == run.run_id],
            run.makespan_ms,
        )
        end = max(end, drawn)
        ax.set_title(f"{run.planner}: {run.makespan_ms:,.0f} ms, seed {run.seed}", fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    for ax in axes.flat:
        ax.xaxis.set_tick_params(labelbottom=True)
    axes.flat[0].set_xlim(0, end * 1.02 if end > 0 else 1.0)
    handles = [Patch(color=c, label=p) for p, c in PHASE_COLORS.items()]
    handles.append(plt.Line2D([], [], color="red", label="makespan"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    fig.suptitle(f"Gantt: one run per planner — {title}", fontsize=13)
    return fig


def predicted_figure(frame: pd.DataFrame) -> plt.Figure:
    """Simulated against predicted makespan, one point per run, coloured by planner."""
    colors = _planner_colors(list(dict.fromkeys(frame["planner"])))
    markers = dict(zip(dict.fromkeys(frame["workflow"]), "osD^vP*Xh", strict=False))
    fig, ax = plt.subplots(figsize=(7.5, 6), layout="constrained")
    for (workflow, planner), part in frame.groupby(["workflow", "planner"], sort=False):
        ax.scatter(
            part["predicted_makespan_ms"],
            part["makespan_ms"],
            color=colors[planner],
            marker=markers.get(workflow, "o"),
            s=22,
            alpha=0.8,
        )
    low = float(np.nanmin([frame["predicted_makespan_ms"].min(), frame["makespan_ms"].min()]))
    high = float(np.nanmax([frame["predicted_makespan_ms"].max(), frame["makespan_ms"].max()]))
    ax.plot([low, high], [low, high], "--", color="grey", lw=1, label="simulated = predicted")
    handles = [Patch(color=c, label=p) for p, c in colors.items()]
    handles += [
        plt.Line2D([], [], marker=m, ls="", color="black", label=w) for w, m in markers.items()
    ]
    handles.append(plt.Line2D([], [], ls="--", color="grey", label="simulated = predicted"))
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    if high / max(low, 1e-9) > 20:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("predicted makespan (ms), the plan's simulation on predicted profiles")
    ax.set_ylabel("simulated makespan (ms)")
    ax.set_title("Predicted vs simulated makespan, one point per run")
    ax.grid(alpha=0.3)
    return fig


def make_plots(
    table: pd.DataFrame,
    frame: pd.DataFrame,
    tasks: pd.DataFrame,
    workers: pd.DataFrame,
    folder: Path,
    *,
    formats: Sequence[str] = ("png", "svg"),
    gantt_seed: int | None = None,
) -> list[Path]:
    """Write every plot of an experiment into `folder`; returns the files written.

    Parameters
    ----------
    table : DataFrame
        `report.comparison_table`.
    frame : DataFrame
        `report.joined` runs with cell labels.
    tasks, workers : DataFrame
        Trace rows of the runs.
    gantt_seed : int, optional
        Seed whose runs the Gantt charts show (default: the smallest seed present).
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = save(makespan_cost_figure(table), folder / "makespan_cost", formats)
    paths += save(pareto_figure(table), folder / "pareto", formats)
    seeds = sorted(frame["seed"].dropna().unique())
    seed = gantt_seed if gantt_seed in seeds else (seeds[0] if seeds else None)
    keys = ["workflow"] + [v for v in VARIANTS if v in frame and frame[v].nunique() > 1]
    for group, part in frame[frame["seed"] == seed].groupby(keys, sort=False):
        values = group if isinstance(group, tuple) else (group,)
        title = " | ".join(map(str, values))
        runs = part.drop_duplicates("planner")
        ids = set(runs["run_id"])
        fig = gantt_figure(
            title, runs, tasks[tasks["run_id"].isin(ids)], workers[workers["run_id"].isin(ids)]
        )
        paths += save(fig, folder / f"gantt_{slug(title)}", formats)
    if frame["predicted_makespan_ms"].notna().any():
        paths += save(predicted_figure(frame), folder / "predicted_vs_simulated", formats)
    return paths
