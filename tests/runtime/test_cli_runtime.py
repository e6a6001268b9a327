"""`faasdag execute` and `faasdag lambda-local` as a person would run them."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from experiments.cli import main
from traces.io import TraceSet

ROOT = Path(__file__).resolve().parents[2]


def test_execute_local_writes_what_run_writes(redis_url, tmp_path, capsys):
    """`faasdag execute EXAMPLE --backend local` runs each planner's plan for real, checks the
    results and writes the files `faasdag run` writes, with the comparison table."""
    out = tmp_path / "run"
    code = main([
        "execute", "svd", "--backend", "local", "--planners", "uniform,wukong",
        "--redis-url", redis_url, "--out", str(out), "--no-plots",
    ])  # fmt: skip
    assert code == 0
    traces = TraceSet.read(out)
    assert len(traces.runs) == 2 and set(traces.runs["backend"]) == {"local"}
    assert len(traces.tasks) == 2 * 24
    assert (out / "summary.md").is_file() and (out / "cells.parquet").is_file()
    printed = capsys.readouterr().out
    assert "uniform" in printed and "wukong" in printed


def test_execute_rejects_an_unknown_workflow(capsys):
    """A bad workflow spec exits 2 with one line naming it."""
    assert main(["execute", "nope", "--out", "x"]) == 2
    assert "nope" in capsys.readouterr().err


def test_lambda_local_serves_and_execute_runs_on_it(redis_url, tmp_path, monkeypatch):
    """`faasdag lambda-local` in a subprocess serves the functions `execute` invokes; both
    take the Redis URL from FAASDAG_REDIS_URL (never from a payload or the process list)."""
    monkeypatch.setenv("FAASDAG_REDIS_URL", redis_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "lambda-local", "--port", "0", "--memory", "1024"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        endpoint = None
        deadline = time.monotonic() + 20
        while endpoint is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            found = re.search(r"(http://\S+)", line)
            endpoint = found.group(1) if found else None
        assert endpoint, "the emulator did not print its endpoint"
        out = tmp_path / "run"
        code = main([
            "execute", "tree_reduction", "--backend", "lambda", "--endpoint-url", endpoint,
            "--configs", "1024", "--out", str(out), "--no-plots",
        ])  # fmt: skip
        assert code == 0
        traces = TraceSet.read(out)
        assert set(traces.workers["startup"]) <= {"cold", "warm"}
        assert traces.runs["backend"].tolist() == ["lambda"]
    finally:
        server.terminate()
        server.wait(10)
