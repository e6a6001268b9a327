"""`faasdag execute` and `faasdag lambda-local` as a person would run them."""

import threading
import time
from pathlib import Path

from lambda_local_cli import lambda_local

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
    with lambda_local() as endpoint:
        out = tmp_path / "run"
        code = main([
            "execute", "tree_reduction", "--backend", "lambda", "--endpoint-url", endpoint,
            "--configs", "1024", "--out", str(out), "--no-plots",
        ])  # fmt: skip
        assert code == 0
        traces = TraceSet.read(out)
        assert set(traces.workers["startup"]) <= {"cold", "warm"}
        assert traces.runs["backend"].tolist() == ["lambda"]


def test_two_identical_executes_at_once_on_one_redis(redis_url, tmp_path, monkeypatch):
    """The same `faasdag execute` twice at once against one Redis: each real run has its own
    id (the cell's id and a random suffix), both succeed with every task row."""
    monkeypatch.setenv("FAASDAG_REDIS_URL", redis_url)  # restored after both threads set it
    codes = {}

    def execute(name):
        out = tmp_path / name
        codes[name] = main([
            "execute", "tree_reduction", "--backend", "local", "--planners", "wukong",
            "--redis-url", redis_url, "--out", str(out), "--no-plots",
        ])  # fmt: skip

    threads = [threading.Thread(target=execute, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert codes == {"a": 0, "b": 0}
    runs = [TraceSet.read(tmp_path / n) for n in ("a", "b")]
    ids = {r.runs["run_id"].iloc[0] for r in runs}
    assert len(ids) == 2 and all(i.startswith("c") for i in ids)
    assert len(runs[0].tasks) == len(runs[1].tasks) > 0


def test_execute_refuses_a_redis_it_cannot_reach_without_showing_its_password(capsys):
    """An unreachable Redis is one line, exit 2, naming it with the password masked."""
    assert main(["execute", "svd", "--redis-url", "redis://u:s3cret@127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "127.0.0.1:1" in err and "s3cret" not in err


def test_cleanup_removes_one_run_or_runs_older_than_an_age(redis_url, capsys):
    """`faasdag cleanup RUN_ID` cancels and deletes one run's keys; `--older-than` every run
    started earlier (and dead leftovers without a marker); bad arguments are one line, exit 2."""
    import redis as redis_py

    from runtime.store import RedisStore, connect

    client = connect(redis_url)
    old, new = RedisStore(client, "cleanup-old"), RedisStore(client, "cleanup-new")
    for store in (old, new):
        store.begin()
        store.put("out:a", 1)
    client.set(old.key("_run"), repr(time.time() - 7200))
    client.set("faasdag:cleanup-dead:out:a", b"x", ex=60)  # a leftover without its marker
    assert main(["cleanup", "--older-than", "1h", "--redis-url", redis_url]) == 0
    printed = capsys.readouterr().out.split()
    assert "cleanup-old" in printed and "cleanup-dead" in printed and "cleanup-new" not in printed
    raw = redis_py.Redis.from_url(redis_url)
    assert raw.keys("faasdag:cleanup-old:*") == [] and raw.keys("faasdag:cleanup-dead:*") == []
    assert main(["cleanup", "cleanup-new", "--redis-url", redis_url]) == 0
    assert raw.keys("faasdag:cleanup-new:*") == []
    for bad in (["cleanup"], ["cleanup", "x", "--older-than", "1h"],
                ["cleanup", "--older-than", "soon", "--redis-url", redis_url],
                ["cleanup", "nope", "--redis-url", redis_url]):  # fmt: skip
        capsys.readouterr()
        assert main(bad) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
