"""The dashboard's Bokeh views of one `RunState`: task stream, DAG, progress, counters, details.

Every view reads the state only; none computes what the events or the trace tables already
hold. `Views.reset` fills every data source from a state (a new run, or a replay moved back);
`Views.update` sends only what changed since (new bars streamed, task colours patched, the bars
still open redrawn up to now), which is what keeps a live page cheap.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    Div,
    HoverTool,
    Range1d,
    Span,
    TapTool,
)
from bokeh.plotting import figure
from bokeh.transform import factor_cmap

from dashboard.state import TASK_STATES, Bar, RunState, TaskInfo

PHASE_COLORS = {
    "startup": "#9d9d9d",
    "download": "#4c78a8",
    "exec": "#54a24b",
    "upload": "#f58518",
    "failed": "#e45756",
}
STATE_COLORS = {"waiting": "#d0d0d0", "running": "#f2b701", "done": "#54a24b", "failed": "#e45756"}
_BAR_COLUMNS = ("row", "task", "phase", "start", "end", "worker")
# Colours map from the phase and state columns in the browser (`factor_cmap`): a patch or a
# stream sends the factor only. Numbers travel as numpy arrays (binary, not JSON lists).


def _cmap(column_name: str, colors: dict[str, str]) -> Any:
    """A colour mapper of one document (a Bokeh model belongs to one document only)."""
    return factor_cmap(column_name, list(colors.values()), list(colors))


def _bar_data(bars: list[Bar], state: RunState) -> dict[str, Any]:
    return {
        "row": np.array([b.row for b in bars], dtype=np.int32),
        "task": [b.task_id for b in bars],
        "phase": [b.phase for b in bars],
        "start": np.array([b.start_ms for b in bars], dtype=np.float64),
        "end": np.array([b.end_ms for b in bars], dtype=np.float64),
        "worker": [state.rows[b.row].label for b in bars],
    }


def dag_layout(state: RunState) -> dict[str, tuple[float, float]]:
    """Task id -> (level, position in level): levels from the dependencies; tasks without
    known dependencies in columns by function."""
    level: dict[str, int] = {}
    has_deps = any(state.tasks[t].deps for t in state.order)
    functions: dict[str, int] = {}
    for task_id in state.order:
        info = state.tasks[task_id]
        if has_deps:
            level[task_id] = 1 + max((level.get(d, 0) for d in info.deps), default=-1)
        else:
            level[task_id] = functions.setdefault(info.function, len(functions))
    width: dict[int, int] = {}
    for lvl in level.values():
        width[lvl] = width.get(lvl, 0) + 1
    seen: dict[int, int] = {}
    where = {}
    for task_id in state.order:
        lvl = level[task_id]
        i = seen.get(lvl, 0)
        seen[lvl] = i + 1
        where[task_id] = (float(lvl), i - (width[lvl] - 1) / 2)
    return where


def _fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _span(start: float | None, end: float | None) -> str:
    if start is None and end is None:
        return "–"
    return f"{_fmt_ms(start)} → {_fmt_ms(end)} ms"


def _fmt_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{int(value)} B"


def details_html(state: RunState, info: TaskInfo | None) -> str:
    """The details panel of one task."""
    if info is None:
        return "<h3>Task details</h3><p>Tap a task bar or a DAG node.</p>"
    worker = state.workers.get((info.worker, info.attempt)) if info.worker else None
    config = "–"
    memory = worker.memory_mb if worker is not None else info.memory_mb
    cpus = worker.cpus if worker is not None else info.cpus
    if memory is not None:
        config = f"{memory} MB / {cpus:g} vCPU" if cpus else f"{memory} MB"
    startup = "–"
    if worker is not None and worker.startup is not None:
        startup = f"{worker.startup} ({worker.startup_ms:,.1f} ms)"
    exec_ms = None
    if info.exec_start_ms is not None and info.exec_end_ms is not None:
        exec_ms = info.exec_end_ms - info.exec_start_ms
    start = info.download_start_ms if info.download_start_ms is not None else info.exec_start_ms
    end = max((v for v in (info.exec_end_ms, info.upload_end_ms) if v is not None), default=None)
    rows = [
        ("task", info.task_id),
        ("function", info.function),
        ("state", info.state),
        ("worker", info.worker or "–"),
        ("attempt", str(info.attempt)),
        ("config", config),
        ("start-up", startup),
        ("download", _span(info.download_start_ms, info.download_end_ms)),
        ("exec", _span(info.exec_start_ms, info.exec_end_ms)),
        ("exec ms", _fmt_ms(exec_ms)),
        ("upload", _span(info.upload_start_ms, info.upload_end_ms)),
        ("bytes in", _fmt_bytes(info.download_bytes)),
        ("bytes out", _fmt_bytes(info.output_bytes)),
        ("start: predicted / actual", f"{_fmt_ms(info.pred_start_ms)} / {_fmt_ms(start)} ms"),
        ("end: predicted / actual", f"{_fmt_ms(info.pred_end_ms)} / {_fmt_ms(end)} ms"),
    ]
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:8px'>{html.escape(k)}</th>"
        f"<td class='detail-{k.split()[0].replace(':', '')}'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    text = f"<h3>Task details</h3><table>{cells}</table>"
    if info.state == "failed":
        text += (
            f"<p style='color:{STATE_COLORS['failed']}'><b>{html.escape(str(info.error))}</b>: "
            f"{html.escape(str(info.message))}</p><pre style='font-size:10px;max-height:260px;"
            f"overflow:auto;white-space:pre-wrap'>{html.escape(str(info.traceback or ''))}</pre>"
        )
    return text


class Views:
    """The figures and panels of one page, and how a `RunState` fills them."""

    def __init__(self) -> None:
        self.bars = ColumnDataSource(dict.fromkeys(_BAR_COLUMNS, []), name="bars")
        self.open = ColumnDataSource(dict.fromkeys(_BAR_COLUMNS, []), name="open_bars")
        self.nodes = ColumnDataSource(
            {"x": [], "y": [], "task": [], "function": [], "state": []},
            name="dag_nodes",
        )
        self.edges = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []}, name="dag_edges")
        self.progress = ColumnDataSource(
            {"function": [], **{s: [] for s in TASK_STATES}}, name="progress"
        )
        self.header = Div(text="", name="header", sizing_mode="stretch_width")
        self.counters = Div(text="", name="counters", width=380)
        self.details = Div(text=details_html(RunState(), None), name="details", width=380)
        self.now_line = Span(location=0, dimension="height", line_color="#d62728", line_width=2)
        self.stream_fig = self._task_stream()
        self.dag_fig = self._dag()
        self.progress_fig = self._progress()
        self.selected: str | None = None
        self._state = RunState()
        self.index: dict[str, int] = {}  # task id -> row of `nodes`
        self.n_bars = 0
        for source in (self.bars, self.open, self.nodes):
            source.selected.on_change("indices", self._tapped(source))

    # -- figures ----------------------------------------------------------------------------

    def _task_stream(self) -> Any:
        fig = figure(
            height=360, sizing_mode="stretch_width", title="Task stream (one row per worker)",
            x_axis_label="ms from run start", tools="xpan,xwheel_zoom,box_zoom,tap,reset",
            name="task_stream", y_range=Range1d(-0.6, 0.6), output_backend="webgl",
        )  # fmt: skip
        fig.yaxis.axis_label = "worker"
        fig.ygrid.grid_line_color = None
        style = {"y": "row", "left": "start", "right": "end", "height": 0.8, "line_color": None,
                 "nonselection_fill_alpha": 0.6}  # fmt: skip
        done = fig.hbar(
            fill_color=_cmap("phase", PHASE_COLORS), source=self.bars, name="task_bars", **style
        )
        running = fig.hbar(
            fill_color=_cmap("phase", PHASE_COLORS),
            fill_alpha=0.55,
            source=self.open,
            name="open_task_bars",
            **style,
        )
        fig.add_layout(self.now_line)
        fig.add_tools(
            HoverTool(
                renderers=[done, running],
                tooltips=[
                    ("task", "@task"),
                    ("phase", "@phase"),
                    ("worker", "@worker"),
                    ("ms", "@start{0.0} – @end{0.0}"),
                ],
            )  # fmt: skip
        )
        fig.select_one(TapTool).behavior = "select"
        return fig

    def _dag(self) -> Any:
        fig = figure(
            height=320, sizing_mode="stretch_width", title="DAG (by level)",
            tools="pan,wheel_zoom,tap,reset", name="dag", output_backend="webgl",
        )  # fmt: skip
        fig.axis.visible = False
        fig.grid.visible = False
        fig.segment("x0", "y0", "x1", "y1", source=self.edges, line_alpha=0.25, color="#777")
        nodes = fig.scatter(
            "x", "y", source=self.nodes, size=11, fill_color=_cmap("state", STATE_COLORS), line_color="#555",
            name="dag_node_glyphs", nonselection_fill_alpha=0.6, nonselection_line_alpha=0.6,
        )  # fmt: skip
        fig.add_tools(
            HoverTool(renderers=[nodes], tooltips=[("task", "@task"), ("state", "@state")])
        )
        return fig

    def _progress(self) -> Any:
        fig = figure(
            height=320, width=420, title="Progress per function", y_range=[],
            tools="", toolbar_location=None, name="progress",
        )  # fmt: skip
        fig.hbar_stack(
            list(TASK_STATES), y="function", height=0.7, source=self.progress,
            color=[STATE_COLORS[s] for s in TASK_STATES], legend_label=list(TASK_STATES),
            line_color=None,
        )  # fmt: skip
        fig.legend.orientation = "horizontal"
        fig.add_layout(fig.legend[0], "below")
        fig.x_range.start = 0
        return fig

    def layout(self, controls: Any = None) -> Any:
        side = column(self.counters, self.details, width=400)
        main = column(
            self.stream_fig, row(self.dag_fig, self.progress_fig, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )  # fmt: skip
        parts = [self.header] + ([controls] if controls is not None else [])
        return column(*parts, row(main, side, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")  # fmt: skip

    # -- filling ----------------------------------------------------------------------------

    def _tapped(self, source: ColumnDataSource):
        def callback(attr: str, old: Any, new: list[int]) -> None:
            if new:
                task = source.data["task"][new[0]]
                if task:
                    self.selected = task
                    self._show_details(self._state)

        return callback

    def _show_details(self, state: RunState) -> None:
        info = state.tasks.get(self.selected) if self.selected else None
        text = details_html(state, info)
        if self.details.text != text:
            self.details.text = text

    def reset(self, state: RunState, now_ms: float) -> None:
        """Fill every source from `state` (a new run, or a replay moved back)."""
        self._state = state
        self.bars.data = _bar_data(state.bars, state)
        self.n_bars = len(state.bars)
        where = dag_layout(state)
        order = state.order
        self.index = {t: i for i, t in enumerate(order)}
        self.nodes.data = {
            "x": np.array([where[t][0] for t in order], dtype=np.float64),
            "y": np.array([where[t][1] for t in order], dtype=np.float64),
            "task": list(order),
            "function": [state.tasks[t].function for t in order],
            "state": [state.tasks[t].state for t in order],
        }
        edges = [(where[d], where[t]) for t in order for d in state.tasks[t].deps if d in where]
        ends = np.array(edges, dtype=np.float64).reshape(-1, 4)
        self.edges.data = {"x0": ends[:, 0], "y0": ends[:, 1], "x1": ends[:, 2], "y1": ends[:, 3]}
        state.take_changed()
        self._refresh(state, now_ms)

    def update(self, state: RunState, now_ms: float) -> None:
        """Send what changed in `state` since the last `reset` or `update`."""
        self._state = state
        if len(state.bars) > self.n_bars:
            self.bars.stream(_bar_data(state.bars[self.n_bars :], state))
            self.n_bars = len(state.bars)
        if len(state.order) > len(self.index):
            self.reset(state, now_ms)  # tasks no description named: lay the DAG out again
            return
        changed = state.take_changed()
        if changed:
            rows = sorted(self.index[t] for t in changed)
            states = [state.tasks[state.order[i]].state for i in rows]
            self.nodes.patch({"state": list(zip(rows, states, strict=True))})
        self._refresh(state, now_ms)

    def _refresh(self, state: RunState, now_ms: float) -> None:
        self.open.data = _bar_data(state.open_bars(now_ms), state)
        self.now_line.location = now_ms
        y_range = self.stream_fig.y_range
        n_rows = max(len(state.rows), 1)
        if (y_range.start, y_range.end) != (-0.6, n_rows - 0.4):
            y_range.start, y_range.end = -0.6, n_rows - 0.4
        if len(state.rows) <= 40:
            labels = {i: w.label for i, w in enumerate(state.rows)}
            self.stream_fig.yaxis.major_label_overrides = labels
            self.stream_fig.yaxis.ticker = list(labels)
        progress = state.progress()
        functions = sorted(progress)
        if list(self.progress_fig.y_range.factors) != functions:
            self.progress_fig.y_range.factors = functions
        self.progress.data = {
            "function": functions,
            **{s: [progress[f][s] for f in functions] for s in TASK_STATES},
        }
        self.counters.text = counters_html(state, now_ms)
        self.header.text = header_html(state, now_ms)
        self._show_details(state)


def counters_html(state: RunState, now_ms: float) -> str:
    counts = state.counts()
    bill = state.bill(now_ms)
    n_workers = len(state.rows)
    items = [
        *(
            (s, f"<span style='color:{STATE_COLORS[s]}'>■</span> {counts[s]}", f"n-{s}")
            for s in TASK_STATES
        ),
        ("workers", str(n_workers), "n-workers"),
        ("cold starts", str(bill["n_cold"]), "n-cold"),
        ("bytes moved", _fmt_bytes(bill["bytes_moved"]), "bytes-moved"),
        ("billed GB-s", f"{bill['gb_s']:.3f}", "gb-s"),
        ("cost so far", f"${bill['total_usd']:.7f}", "cost"),
    ]
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:10px'>{k}</th>"
        f"<td class='{css}'>{v}</td></tr>"
        for k, v, css in items
    )
    return f"<h3>Counters</h3><table>{cells}</table>"


def header_html(state: RunState, now_ms: float) -> str:
    d = state.description
    status = {"waiting": "waiting for events", "running": "running", "ok": "finished",
              "failed": "failed"}[state.status]  # fmt: skip
    title = " · ".join(
        html.escape(str(x)) for x in (d.get("workflow"), d.get("planner"), d.get("backend")) if x
    )
    text = (
        f"<h2 style='margin:4px 0'>faasdag · run {html.escape(str(d.get('run_id', '–')))}"
        f"{' · ' + title if title else ''}</h2>"
        f"<p style='margin:2px 0'>status: <b class='run-status'>{status}</b> · "
        f"makespan so far: <b class='makespan'>{now_ms:,.1f} ms</b>"
    )
    if d.get("predicted_makespan_ms") is not None:
        text += f" · predicted: {d['predicted_makespan_ms']:,.1f} ms"
    if state.error:
        text += f" · <span style='color:{STATE_COLORS['failed']}'>{html.escape(state.error)}</span>"
    return text + "</p>"
