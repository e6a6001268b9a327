"""The dashboard's state (`dashboard.state`) and replay (`dashboard.replay`): events folded
into tasks, worker rows, bars and the bill; trace tables turned back into events."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.replay import NotATraceFolder, Replay, events_of, load_traces
from dashboard.state import RunState

pytest.importorskip("bokeh")
ROOT = Path(__file__).resolve().parents[2]
DESCRIPTION = {
    "run_id": "r",
    "tasks": [
        {"id": "a", "function": "f", "deps": []},
        {"id": "b", "function": "g", "deps": ["a"]},
    ],
    "prices": {"price_per_gb_s": 1.0, "price_per_request": 0.0},
}


def ev(kind, t_ms, **fields):
    return {"kind": kind, "t_ms": t_ms, "worker": "w", "attempt": 0, **fields}


def test_a_task_never_goes_back():
    """An exec_end that arrives before its exec_start leaves the task done, with one bar."""
    state = RunState(DESCRIPTION)
    state.apply([ev("exec_end", 9.0, task="a", start_ms=2.0, bytes=5)])
    state.apply([ev("exec_start", 2.0, task="a")])
    assert state.tasks["a"].state == "done"
    assert state.tasks["a"].exec_start_ms == 2.0 and state.tasks["a"].output_bytes == 5
    assert [(b.phase, b.start_ms, b.end_ms) for b in state.bars] == [("exec", 2.0, 9.0)]


def test_open_phases_grow_until_they_end():
    """A started phase is an open bar up to now; its end makes it a bar of its own."""
    state = RunState(DESCRIPTION)
    state.apply([ev("worker_started", 1.0, memory_mb=1024, cpus=1.0, startup="none",
                    startup_ms=0.0), ev("exec_start", 2.0, task="a")])  # fmt: skip
    assert [(b.task_id, b.end_ms) for b in state.open_bars(7.0)] == [("a", 7.0)]
    assert state.counts() == {"waiting": 1, "running": 1, "done": 0, "failed": 0}
    state.apply([ev("exec_end", 8.0, task="a", start_ms=2.0, bytes=1)])
    assert state.open_bars(9.0) == [] and state.tasks["a"].state == "done"


def test_a_retry_is_a_row_of_its_own():
    """Attempt 1 of a worker gets its own row labelled #1; the lost attempt's open phase ends
    where it was lost; the task shows attempt 1 and the lost attempt's late news is ignored."""
    state = RunState(DESCRIPTION)
    state.apply([ev("exec_start", 1.0, task="a"), ev("worker_lost", 50.0)])
    retry = {"worker": "w", "attempt": 1}
    state.apply(
        [
            {**ev("exec_start", 60.0, task="a"), **retry},
            {**ev("exec_end", 70.0, task="a", start_ms=60.0, bytes=1), **retry},
            ev("exec_end", 80.0, task="a", start_ms=1.0, bytes=1),
        ]
    )
    assert [w.label for w in state.rows] == ["w", "w #1"]
    assert state.tasks["a"].attempt == 1 and state.tasks["a"].exec_start_ms == 60.0
    assert (0, "a", "exec", 1.0, 50.0) in [
        (b.row, b.task_id, b.phase, b.start_ms, b.end_ms) for b in state.bars
    ]


def test_a_failure_keeps_its_traceback():
    """task_failed marks the task failed with its error, message and traceback, and draws a
    failed bar from its function's start."""
    state = RunState(DESCRIPTION)
    state.apply([ev("exec_start", 3.0, task="b"), ev("task_failed", 5.0, task="b", start_ms=3.0,
                 error="ValueError", message="bad", traceback="Traceback ...")])  # fmt: skip
    info = state.tasks["b"]
    assert (info.state, info.error, info.traceback) == ("failed", "ValueError", "Traceback ...")
    assert [(b.phase, b.start_ms) for b in state.bars] == [("failed", 3.0)]


def test_the_bill_so_far_uses_the_platforms_prices():
    """A cold 1024 MB worker started 100 ms before ready and running 900 ms after: 1 GB-s,
    billed at the description's price, and one cold start."""
    state = RunState(DESCRIPTION)
    state.apply([ev("worker_started", 100.0, memory_mb=1024, cpus=1.0, startup="cold",
                    startup_ms=100.0), ev("worker_ended", 1000.0, ok=True)])  # fmt: skip
    bill = state.bill(now_ms=5000.0)
    assert bill["gb_s"] == pytest.approx(1.0) and bill["compute_usd"] == pytest.approx(1.0)
    assert bill["n_cold"] == 1


def test_a_replayed_run_folds_into_its_tables():
    """The events of a recorded run's tables fold into every task done, one exec bar per task
    row, at the table's times."""
    replay = Replay(load_traces(ROOT / "traces" / "data" / "gemm"))
    run_id = next(iter(replay.labels()))
    description, events = replay.load(run_id)
    state = RunState(description)
    state.apply(events)
    tasks = replay.traces.tasks[replay.traces.tasks["run_id"] == run_id]
    assert set(state.tasks) == set(tasks["task_id"])
    assert {t.state for t in state.tasks.values()} == {"done"}
    execs = sorted((b.task_id, round(b.end_ms, 6)) for b in state.bars if b.phase == "exec")
    assert execs == sorted(zip(tasks["task_id"], tasks["exec_done_ms"].round(6), strict=True))
    assert state.status == "ok"


def test_events_of_empty_tables_are_a_start_and_an_end():
    """A run without rows replays as its start and end only."""
    traces = load_traces(ROOT / "traces" / "data" / "gemm")
    events = events_of(traces.tasks.iloc[:0], traces.workers.iloc[:0], 0.0)
    assert [e["kind"] for e in events] == ["run_started", "run_ended"]


def test_a_folder_without_tables_is_named(tmp_path):
    """A folder without trace tables, or no folder at all, is refused naming it."""
    with pytest.raises(NotATraceFolder, match="has no trace tables"):
        load_traces(tmp_path)
    with pytest.raises(NotATraceFolder, match="is not a folder"):
        load_traces(tmp_path / "nope")


def test_a_replay_page_moves_with_its_slider():
    """A replay page shows the run as it ended; moved back it shows fewer tasks done, moved
    forward again all of them; play steps it from the start to the end."""
    from bokeh.document import Document

    from dashboard.app import ReplayPage

    doc = Document()
    page = ReplayPage(doc, Replay(load_traces(ROOT / "traces" / "data" / "gemm")))
    n_tasks = len(page.state.tasks)
    assert page.state.counts()["done"] == n_tasks and page.state.status == "ok"
    page.show(page.slider.end / 2)
    halfway = page.state.counts()["done"]
    assert 0 < halfway < n_tasks and page.state.status == "running"
    assert len(page.views.bars.data["task"]) == len(page.state.bars)
    page.show(page.slider.end)
    assert page.state.counts()["done"] == n_tasks
    page.toggle()
    assert page.slider.value == 0 and page.playing is not None
    while page.playing is not None:
        page._step()
    assert page.state.counts()["done"] == n_tasks


def test_what_if_draws_each_planners_simulated_run_beside_the_recorded_one():
    """With the run's DAG known, the chosen planners' simulated runs (on the recorded task
    times) are drawn under the recorded one and listed with their makespan and cost; without
    it, what-if is off and says why."""
    from bokeh.document import Document

    from dag.examples.gemm import gemm
    from dashboard.app import ReplayPage
    from dashboard.whatif import simulate_planner

    traces = load_traces(ROOT / "traces" / "data" / "gemm")
    spec = str(traces.runs["workflow"].iloc[0])

    def dag_of(workflow):
        params = dict(p.split("=") for p in workflow.split(":", 1)[1].split(","))
        return gemm(**{k: int(v) for k, v in params.items()}).dag

    replay = Replay(traces, dag_of)
    page = ReplayPage(Document(), replay)
    page.whatif.planners.value = ["heft"]
    page.whatif.simulate()
    assert "heft" in page.whatif.summary.text and "recorded" in page.whatif.summary.text
    assert len(page.whatif.streams.children) == 2
    run = simulate_planner(replay, page.select.value, "heft", "aws-lambda")
    assert run.makespan_ms > 0 and {t.state for t in run.state.tasks.values()} == {"done"}
    assert spec.startswith("gemm:")

    blind = ReplayPage(Document(), Replay(traces))
    assert blind.whatif.button.disabled and "unknown" in blind.whatif.summary.text
