"""A researcher's own workflow, end to end, through the CLI alone: compare, deploy to the local
Lambda emulator, execute on both backends with results checked, redeploy unchanged, destroy."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
from lambda_local_cli import lambda_local

from experiments.cli import main
from traces.io import TraceSet

ROOT = Path(__file__).resolve().parents[2]

FLOW = textwrap.dedent(
    """
    from dag.lang import task


    @task
    def split(n):
        return list(range(n))


    @task
    def square(values, i):
        return values[i] * values[i]


    @task
    def nothing(x):
        return None


    @task
    def combine(parts, extra):
        assert extra["marker"] is None
        return {"total": sum(parts["squares"]), "n": len(parts["squares"])}


    def make(n: int = 4):
        values = split(n)
        squares = [square(values, i) for i in range(n)]
        return combine({"squares": squares}, {"marker": nothing(squares[0]), "n": [n]})


    def check_make(outputs):
        assert outputs["total"] == sum(i * i for i in range(outputs["n"])), outputs
    """
)


@pytest.fixture
def flow_spec(tmp_path, monkeypatch):
    """flow.py in a folder of its own; loading it puts that folder on the paths: undone."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "e2e_flow.py").write_text(FLOW)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.delitem(sys.modules, "e2e_flow", raising=False)
    return f"{folder / 'e2e_flow.py'}:make:n=5"


@pytest.fixture
def emulator_url(redis_url, monkeypatch):
    """`faasdag lambda-local` in a subprocess (the project only on its path); yields its URL."""
    monkeypatch.setenv("FAASDAG_REDIS_URL", redis_url)
    with lambda_local() as endpoint:
        yield endpoint


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_own_workflow_from_compare_to_destroy(flow_spec, emulator_url, tmp_path, capsys):
    """Every step a new user takes with their own module works from the command line."""
    status, out, err = cli(
        capsys, "compare", flow_spec, "--planners", "heft,wukong", "--seeds", "1"
    )
    assert status == 0, err
    assert "heft" in out and "wukong" in out

    status, out, err = cli(
        capsys, "deploy", flow_spec, "--memory", "1024", "--endpoint-url", emulator_url
    )
    assert status == 0, err
    assert re.search(r"faasdag-1024: (created|code updated)", out)

    for backend in ("local", "lambda"):
        results = tmp_path / backend
        status, out, err = cli(
            capsys, "execute", flow_spec, "--backend", backend, "--endpoint-url", emulator_url,
            "--configs", "1024", "--planners", "wukong,heft", "--out", str(results), "--no-plots",
        )  # fmt: skip
        assert status == 0, err
        assert "not checked" not in out + err  # check_make ran on every real run
        traces = TraceSet.read(results)
        assert set(traces.runs["backend"]) == {backend}
        assert (traces.runs["cost_usd"] > 0).all()
        assert len(traces.tasks) == 2 * (5 + 3)

    status, out, err = cli(
        capsys, "deploy", flow_spec, "--memory", "1024", "--endpoint-url", emulator_url
    )
    assert status == 0, err
    assert "faasdag-1024: code unchanged" in out

    status, out, err = cli(capsys, "destroy", "--memory", "1024", "--endpoint-url", emulator_url)
    assert status == 0, err
    status, out, err = cli(capsys, "destroy", "--memory", "1024", "--endpoint-url", emulator_url)
    assert "not found" in out
