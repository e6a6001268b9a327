"""The dashboard's pages: one Bokeh document per browser tab, live or replay.

A live page folds the server's `Feed` into its own `RunState` on a periodic callback (every
`UPDATE_MS`) and sends the views what changed. A replay page holds one recorded run's events
(from `dashboard.replay`) and shows the run as it was at the slider's time: moving forward folds
in the next events, moving back folds again from the start; play advances the slider.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from bokeh.layouts import column, row
from bokeh.models import Button, Select, Slider

from dashboard.feed import Feed
from dashboard.replay import Replay
from dashboard.state import RunState
from dashboard.views import Views
from dashboard.whatif import WhatIfPanel

UPDATE_MS = 250
PLAY_FRAMES = 150  # a replay plays in this many steps of `UPDATE_MS`


class LivePage:
    """A page that follows the server's feed (a run as it happens)."""

    def __init__(self, doc: Any, feed: Feed):
        self.feed = feed
        self.views = Views()
        self.generation = -1
        self.cursor = 0
        self.state = RunState()
        doc.title = "faasdag dashboard"
        doc.add_root(self.views.layout())
        self.tick()
        doc.add_periodic_callback(self.tick, UPDATE_MS)

    def now_ms(self, finished: bool) -> float:
        """Makespan so far: the run's clock while it runs, its last event once it ended."""
        t0 = self.state.description.get("t0_epoch")
        if finished or self.state.status in ("ok", "failed") or t0 is None:
            return self.state.last_ms
        return max(self.state.last_ms, (time.time() - float(t0)) * 1000.0)

    def tick(self) -> None:
        snap = self.feed.read(self.generation, self.cursor)
        described = snap.description is not None and not self.state.description
        if snap.generation != self.generation or described:
            if described and snap.generation == self.generation:
                snap = self.feed.read(-1, 0)  # every event again, over the description
            self.generation, self.cursor = snap.generation, 0
            self.state = RunState(snap.description)
            if snap.description is None:
                self.state.description = {"run_id": snap.label.removeprefix("run ")}
            self.state.apply(snap.events)
            self.state.error = snap.error or self.state.error
            self.cursor = len(snap.events)
            self.views.reset(self.state, self.now_ms(snap.finished))
            return
        self.state.apply(snap.events)
        self.cursor += len(snap.events)
        if snap.error:
            self.state.error = snap.error
        self.views.update(self.state, self.now_ms(snap.finished))


class ReplayPage:
    """A page that replays one run of a trace folder, with a time slider and play/pause."""

    def __init__(self, doc: Any, replay: Replay, run_id: str | None = None):
        self.doc = doc
        self.replay = replay
        self.views = Views()
        labels = replay.labels()
        run_id = run_id if run_id in labels else next(iter(labels))
        self.select = Select(
            title="run", value=run_id, options=list(labels.items()), width=480, name="run_select"
        )
        self.slider = Slider(
            start=0, end=1, value=1, step=1, title="time (ms)", name="time_slider",
            sizing_mode="stretch_width",
        )  # fmt: skip
        self.button = Button(label="▶ play", width=90, name="play")
        self.select.on_change("value", lambda attr, old, new: self.load(new))
        self.slider.on_change("value_throttled", lambda attr, old, new: self.show(new))
        self.button.on_click(self.toggle)
        self.playing: Any = None
        controls = row(self.select, self.button, self.slider, sizing_mode="stretch_width")
        self.whatif = WhatIfPanel(doc, replay)
        doc.title = "faasdag dashboard (replay)"
        doc.add_root(column(self.views.layout(controls), self.whatif.layout,
                            sizing_mode="stretch_width"))  # fmt: skip
        self.load(run_id)

    def load(self, run_id: str) -> None:
        """Show run `run_id` as it ended."""
        self.stop()
        description, self.events = self.replay.load(run_id)
        self.times = [e["t_ms"] for e in self.events]
        end = max(self.times[-1] if self.times else 0.0, 1.0)
        self.slider.update(start=0, end=end, step=max(end / 1000, 0.001), value=end)
        self.description = description
        self.state = RunState(description)
        self.applied = 0
        self.show(end, reset=True)
        self.whatif.show_run(run_id, description, self.events)

    def show(self, t_ms: float, *, reset: bool = False) -> None:
        """The run as it was at `t_ms`."""
        upto = bisect.bisect_right(self.times, t_ms)
        if upto < self.applied or reset:
            self.state = RunState(self.description)
            self.state.apply(self.events[:upto])
            self.applied = upto
            self._finish_status(t_ms)
            self.views.reset(self.state, t_ms)
            return
        self.state.apply(self.events[self.applied : upto])
        self.applied = upto
        self._finish_status(t_ms)
        self.views.update(self.state, t_ms)

    def _finish_status(self, t_ms: float) -> None:
        if self.applied < len(self.events) and self.state.status in ("ok", "failed"):
            self.state.status = "running"

    def toggle(self) -> None:
        if self.playing is not None:
            self.stop()
            return
        if self.slider.value >= self.slider.end:
            self.slider.value = 0
            self.show(0)
        self.button.label = "❚❚ pause"
        self.playing = self.doc.add_periodic_callback(self._step, UPDATE_MS)

    def stop(self) -> None:
        if self.playing is not None:
            self.doc.remove_periodic_callback(self.playing)
            self.playing = None
        self.button.label = "▶ play"

    def _step(self) -> None:
        value = min(self.slider.value + self.slider.end / PLAY_FRAMES, self.slider.end)
        self.slider.value = value
        self.show(value)
        if value >= self.slider.end:
            self.stop()
