"""The dashboard in a real browser (headless Chromium) during real local runs: bars appear and
change state while the run goes on, a tapped task shows its details, a failed task its
traceback, a retried worker its second attempt, and a run without events an empty page that
fills in."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import runtime_tasks as rt
from browser import model, source_data, tap, wait_for

from dag import Placement, Plan, ResourceConfig
from dag.lang import build
from runtime.client import run
from runtime.errors import RemoteTaskError
from runtime.live import LivePublisher
from runtime.live_source import StreamSource, describe_run, store_description
from runtime.store import RedisStore, connect
from sim.platform import Platform

pytest.importorskip("bokeh")
Dashboard = pytest.importorskip("dashboard.server").Dashboard

FAST_LIVENESS = {"heartbeat_ttl_s": 1.0, "check_interval_s": 0.2, "timeout_s": 60}


@pytest.fixture
def dashboard():
    board = Dashboard(port=0)
    try:
        yield board
    finally:
        board.stop()


def open_page(browser, dashboard) -> None:
    browser.get(dashboard.url)
    wait_for(lambda: model(browser, "header", "text"), what="the page")


def status(browser) -> str:
    return model(browser, "header", "text") or ""


def node_states(browser) -> dict[str, str]:
    data = source_data(browser, "dag_nodes")
    return dict(zip(data.get("task", []), data.get("state", []), strict=True))


def tap_node(browser, task_id: str) -> None:
    data = source_data(browser, "dag_nodes")
    i = data["task"].index(task_id)
    tap(browser, "dag", data["x"][i], data["y"][i])


def in_background(target) -> threading.Thread:
    outcome: dict = {}

    def body():
        try:
            outcome["value"] = target()
        except Exception as err:  # noqa: BLE001 - the test looks at it
            outcome["error"] = err

    thread = threading.Thread(target=body, daemon=True)
    thread.outcome = outcome  # type: ignore[attr-defined]
    thread.start()
    return thread


def sleepy_workflow():
    """Two chains of tasks that sleep 0.5 s each, joined: about 1.6 s."""
    return build(
        rt.add(rt.slow(rt.slow(1, 0.5), 0.5), rt.slow(rt.slow(2, 0.5), 0.6)),
    )


def test_a_live_run_in_the_browser(browser, dashboard, redis_url, tmp_path):
    """During a real local run the task bars appear and change state while it still runs; a
    tapped task shows its worker, config and exec ms; the page is saved as a screenshot."""
    open_page(browser, dashboard)
    workflow = sleepy_workflow()
    runner = in_background(
        lambda: run(workflow, redis_url=redis_url, run_id="browser-live", dashboard=dashboard)
    )
    running = wait_for(
        lambda: source_data(browser, "open_bars").get("task"), what="a bar of a running task"
    )
    assert runner.is_alive(), "the run ended before the page showed it running"
    assert "running" in node_states(browser).values()
    done = wait_for(
        lambda: [t for t, s in node_states(browser).items() if s == "done"], what="a done task"
    )
    assert runner.is_alive(), "the run ended before a task was seen done"
    assert set(done) & set(running), "a task seen running was later seen done"
    assert source_data(browser, "bars")["phase"].count("exec") >= 1
    runner.join(30)
    assert runner.outcome.get("value") is not None and runner.outcome["value"].value == 3
    wait_for(lambda: "finished" in status(browser), what="the finished status")
    assert set(node_states(browser).values()) == {"done"}

    tap_node(browser, "slow-0")
    details = wait_for(
        lambda: (t := model(browser, "details", "text")) and "slow-0" in t and t, what="details"
    )
    tasks = runner.outcome["value"].tasks.set_index("task_id")
    assert tasks.loc["slow-0", "worker_id"] in details
    assert "1769 MB / 1 vCPU" in details
    exec_ms = details.split("detail-exec'>", 2)[2].split("<", 1)[0]  # the "exec ms" row
    assert abs(float(exec_ms.replace(",", "")) - tasks.loc["slow-0", "exec_ms"]) < 1.0
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    if os.environ.get("FAASDAG_SCREENSHOT"):  # how docs/dashboard.png is made
        shutil.copy(shot, Path(os.environ["FAASDAG_SCREENSHOT"]))


def test_a_failed_task_shows_its_traceback(browser, dashboard, redis_url):
    """A task that raises shows as failed; tapped, it shows its error and remote traceback."""
    open_page(browser, dashboard)
    workflow = build(rt.add(rt.explode(rt.number(7)), rt.slow(1, 0.3)))
    with pytest.raises(RemoteTaskError):
        run(workflow, redis_url=redis_url, run_id="browser-fails", dashboard=dashboard)
    wait_for(lambda: "failed" in status(browser), what="the failed status")
    wait_for(lambda: node_states(browser).get("explode-0") == "failed", what="a failed node")
    tap_node(browser, "explode-0")
    details = wait_for(
        lambda: (t := model(browser, "details", "text")) and "Traceback" in t and t,
        what="the traceback",
    )
    assert "ZeroDivisionError" in details and "boom on 7" in details


def test_a_retried_worker_shows_its_second_attempt(browser, dashboard, redis_url, tmp_path):
    """A worker that goes silent mid-task is re-invoked: its retry gets a row of its own
    (``#1``) and the task shows attempt 1."""
    open_page(browser, dashboard)
    workflow = build(rt.add(rt.freeze_once(1, str(tmp_path / "frozen"), 2.0), rt.slow(2, 4.0)))
    dying = next(t for t in workflow.dag if t.startswith("freeze"))
    plan = Plan({t: Placement("w-" + t, ResourceConfig(1024)) for t in workflow.dag})
    result = run(
        workflow, plan, redis_url=redis_url, run_id="browser-retry", dashboard=dashboard,
        **FAST_LIVENESS,
    )  # fmt: skip
    assert result.value == 3
    wait_for(lambda: "finished" in status(browser), what="the finished status")
    workers = set(source_data(browser, "bars")["worker"])
    assert f"w-{dying} #1" in workers
    tap_node(browser, dying)
    details = wait_for(
        lambda: (t := model(browser, "details", "text")) and dying in t and t, what="details"
    )
    assert "detail-attempt'>1<" in details


def test_a_run_without_events_shows_an_empty_page_that_fills_in(browser, dashboard, redis_url):
    """Attached to a run that has begun but sent no event yet, the page shows its tasks
    waiting (no error); the events that come then fill it in."""
    workflow = sleepy_workflow()
    client = connect(redis_url)
    store = RedisStore(client, "browser-empty", ttl_s=600)
    store.begin()
    plan = Plan({t: Placement(None, ResourceConfig(1024)) for t in workflow.dag})
    labels = {"workflow": "sleepy", "planner": "by hand", "backend": "local"}
    description = describe_run("browser-empty", workflow.dag, plan, labels, Platform(), time.time())
    store_description(store, description)
    dashboard.follow(StreamSource(client, "browser-empty"))
    open_page(browser, dashboard)
    wait_for(lambda: len(node_states(browser)) == len(workflow.dag), what="the waiting tasks")
    assert set(node_states(browser).values()) == {"waiting"}
    assert "waiting for events" in status(browser)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

    live = LivePublisher(store, "w-0", 0, maxlen=100, clock=lambda: 5.0)
    live.emit("worker_started", memory_mb=1024, cpus=1.0, startup="cold", startup_ms=3.0)
    live.emit("exec_start", task="slow-0")
    live.flush()
    wait_for(lambda: node_states(browser).get("slow-0") == "running", what="a running task")
    assert "running" in status(browser)
    store.cleanup()


def test_a_replay_renders_in_the_browser(browser):
    """A trace folder's run opens in the browser with every task bar and a slider."""
    from dashboard.replay import Replay, load_traces

    replay = Replay(load_traces(Path(__file__).resolve().parents[2] / "traces" / "data" / "gemm"))
    board = Dashboard(port=0, replay=replay)
    try:
        open_page(browser, board)
        description, events = replay.load(next(iter(replay.labels())))
        n_exec = sum(e["kind"] == "exec_end" for e in events)
        wait_for(
            lambda: source_data(browser, "bars").get("phase", []).count("exec") == n_exec,
            what="every exec bar",
        )
        assert set(node_states(browser).values()) == {"done"}
        assert model(browser, "time_slider", "end") > 0
        assert "finished" in status(browser)
    finally:
        board.stop()
