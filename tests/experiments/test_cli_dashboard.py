"""`faasdag dashboard` and `faasdag execute --dashboard` as a person runs them: the URL printed,
the page served, and bad input (unknown run, folder without trace tables, port in use) as one
line with exit status 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from experiments.cli import main

pytest.importorskip("bokeh")
ROOT = Path(__file__).resolve().parents[2]
GEMM_TRACES = ROOT / "traces" / "data" / "gemm"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_an_unknown_run_id_is_one_line(redis_url, capsys):
    """Attaching to a run that is not in Redis: one line naming it, exit 2."""
    assert main(["dashboard", "--run", "no-such-run", "--redis-url", redis_url]) == 2
    assert "no run 'no-such-run'" in one_error_line(capsys)


def test_a_folder_without_trace_tables_is_one_line(tmp_path, capsys):
    """A folder without trace tables: one line naming it, exit 2."""
    assert main(["dashboard", str(tmp_path)]) == 2
    assert "has no trace tables" in one_error_line(capsys)


def test_an_unknown_run_of_a_folder_is_one_line(capsys):
    """A --run the folder does not hold: one line, exit 2."""
    assert main(["dashboard", str(GEMM_TRACES), "--run", "nope"]) == 2
    assert "no run 'nope'" in one_error_line(capsys)


def test_a_port_in_use_is_one_line(capsys):
    """A port another server holds: one line saying so, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", str(GEMM_TRACES), "--port", str(port)]) == 2
    assert "port is in use" in one_error_line(capsys)


def test_nothing_to_show_is_one_line(capsys):
    """Neither a folder nor a run: one line, exit 2."""
    assert main(["dashboard"]) == 2
    assert "RESULTS_DIR" in one_error_line(capsys)


def test_a_replay_is_served_on_loopback_until_sigterm():
    """`faasdag dashboard FOLDER --port 0` prints a 127.0.0.1 URL that serves the page, and
    stops cleanly on SIGTERM (exit 143)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", "dashboard", str(GEMM_TRACES), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("dashboard at http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and "bokeh" in page.read().decode().lower()
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 143, err


def test_execute_with_a_dashboard_prints_its_url(redis_url, tmp_path, capsys):
    """`faasdag execute ... --dashboard` serves the dashboard while the runs go, and prints its
    URL before the results."""
    out = tmp_path / "out"
    args = ["execute", "svd", "--backend", "local", "--planners", "wukong", "--out", str(out),
            "--redis-url", redis_url, "--no-plots", "--dashboard", "--dashboard-port", "0"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("dashboard at http://127.0.0.1:")
    assert (out / "tasks.parquet").is_file()
