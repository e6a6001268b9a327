"""What-if: planners' simulated runs of a recorded run's workflow, beside the recorded run.

For a run of a trace folder whose DAG is known (`Replay.dag`), each planner chosen in the page
plans that DAG with a predictor fitted on the folder's runs (`traces.BaselinePredictor`), and
the simulator runs the plan on the recorded run's own task times (``replay`` profiles of that
run) on the chosen platform preset. Each simulated run is drawn as its task stream, under the
recorded one and on the same time axis, with its makespan and cost. Nothing here models
anything: planning and simulation are the planners' and the simulator's.

Limits: a preset with a shared host (``local``) simulates the recorded exec times as times
alone, though they were measured under contention (`experiments` turns them back first).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

from bokeh.layouts import column, row
from bokeh.models import Button, Div, MultiChoice, Range1d, Select
from bokeh.plotting import figure

from dashboard.replay import Replay, events_of
from dashboard.state import RunState
from dashboard.views import PHASE_COLORS, _bar_data, _cmap

log = logging.getLogger(__name__)

DEFAULT_PLANNERS = ("heft", "wukong")


@dataclass
class WhatIfRun:
    """One planner's simulated run: its state (bars) and its totals."""

    planner: str
    makespan_ms: float
    cost_usd: float
    n_workers: int
    state: RunState


def simulate_planner(
    replay: Replay, run_id: str, planner: str, platform: str, seed: int = 0
) -> WhatIfRun:
    """Plan the DAG of run `run_id` with `planner` and simulate it on its recorded times.

    Raises
    ------
    ValueError
        If the run's DAG is unknown, or planning or simulating fails (the message says why).
    """
    from planners import get_planner
    from sim.simulate import simulate
    from traces import BaselinePredictor
    from traces.profiles import make_profiles

    dag = replay.dag(run_id)
    if dag is None:
        raise ValueError(f"the DAG of run {run_id!r} is unknown: no what-if")
    tasks = replay.traces.tasks
    configs = sorted({int(m) for m in tasks.loc[tasks["run_id"] == run_id, "memory_mb"]})
    predictor = BaselinePredictor().fit(replay.traces)
    truth = make_profiles(dag, "replay", traces=replay.traces, predictor=predictor, run_id=run_id)
    plan = get_planner(planner).plan(dag, predictor, platform, configs, seed=seed)
    result = simulate(dag, plan, truth, platform, seed, run_id=f"what-if-{planner}")
    state = RunState({"tasks": []})
    state.apply(events_of(result.tasks, result.workers, result.makespan_ms))
    return WhatIfRun(
        planner, float(result.makespan_ms), float(result.cost["total_usd"]),
        len(result.workers), state,
    )  # fmt: skip


def _stream_figure(title: str, state: RunState, x_range: Any) -> Any:
    fig = figure(
        height=min(max(110, 7 * len(state.rows) + 60), 320), sizing_mode="stretch_width", title=title,
        x_range=x_range, y_range=Range1d(-0.6, max(len(state.rows), 1) - 0.4), tools="xpan,reset",
        toolbar_location=None, output_backend="webgl",
    )  # fmt: skip
    fig.yaxis.visible = False
    fig.ygrid.grid_line_color = None
    fig.hbar(
        y="row", left="start", right="end", height=0.8, line_color=None,
        fill_color=_cmap("phase", PHASE_COLORS), source=_bar_data(state.bars, state),
    )  # fmt: skip
    return fig


class WhatIfPanel:
    """The what-if controls and the task streams of the chosen planners' simulated runs."""

    def __init__(self, doc: Any, replay: Replay):
        from planners.registry import PLANNERS
        from sim.platform import Platform

        self.doc = doc
        self.replay = replay
        self.run_id: str | None = None
        self.recorded: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
        self.planners = MultiChoice(
            title="what-if: planners", options=sorted(PLANNERS), width=420, name="whatif_planners",
            value=[p for p in DEFAULT_PLANNERS if p in PLANNERS],
        )  # fmt: skip
        presets = Platform.preset_names()
        self.platform = Select(
            title="platform", options=presets, width=160, name="whatif_platform",
            value="aws-lambda" if "aws-lambda" in presets else presets[0],
        )  # fmt: skip
        self.button = Button(label="simulate", width=100, name="whatif_simulate")
        self.button.on_click(self._start)
        self.summary = Div(text="", name="whatif_summary", sizing_mode="stretch_width")
        self.streams = column(Div(text=""), sizing_mode="stretch_width")
        self.layout = column(
            row(self.planners, self.platform, self.button),
            self.summary, self.streams, sizing_mode="stretch_width",
        )  # fmt: skip

    def show_run(
        self, run_id: str, description: dict[str, Any], events: list[dict[str, Any]]
    ) -> None:
        """The recorded run the planners are compared with (its description and events)."""
        self.run_id, self.recorded = run_id, (description, events)
        self.streams.children = [Div(text="")]
        known = self.replay.dag(run_id) is not None
        self.button.disabled = not known
        self.summary.text = "" if known else "<i>what-if needs the run's DAG: unknown here</i>"

    def _start(self) -> None:
        self.summary.text = "<i>simulating…</i>"
        self.doc.add_next_tick_callback(self.simulate)

    def simulate(self) -> None:
        """Simulate every chosen planner and draw each run under the recorded one."""
        if self.run_id is None or self.recorded is None:
            return
        runs, errors = [], []
        for planner in self.planners.value:
            try:
                runs.append(
                    simulate_planner(self.replay, self.run_id, planner, self.platform.value)
                )
            except Exception as err:  # shown in the page, one line per planner
                log.info("what-if %s failed", planner, exc_info=True)
                errors.append(f"{planner}: {type(err).__name__}: {err}")
        recorded = self.replay.runs.set_index("run_id").loc[self.run_id]
        state = RunState(self.recorded[0])
        state.apply(self.recorded[1])
        end = max([state.last_ms, *(r.makespan_ms for r in runs)], default=1.0)
        x_range = Range1d(0, end * 1.02)
        figures = [_stream_figure(
            f"recorded: {recorded['makespan_ms']:,.1f} ms, ${recorded['cost_usd']:.7f}",
            state, x_range)]  # fmt: skip
        figures += [
            _stream_figure(f"{r.planner} (simulated): {r.makespan_ms:,.1f} ms, ${r.cost_usd:.7f}",
                           r.state, x_range)
            for r in runs
        ]  # fmt: skip
        self.streams.children = figures
        rows = "".join(
            f"<tr><td>{html.escape(r.planner)}</td><td>{r.makespan_ms:,.1f}</td>"
            f"<td>{r.cost_usd:.7f}</td><td>{r.n_workers}</td></tr>"
            for r in runs
        )
        text = (
            "<table class='whatif'><tr><th>planner</th><th>makespan ms</th><th>cost USD</th>"
            f"<th>workers</th></tr><tr><td>recorded</td><td>{recorded['makespan_ms']:,.1f}</td>"
            f"<td>{recorded['cost_usd']:.7f}</td><td>{recorded['n_workers']}</td></tr>{rows}"
            "</table>"
        )
        if errors:
            text += "".join(f"<p style='color:#e45756'>{html.escape(e)}</p>" for e in errors)
        self.summary.text = text
