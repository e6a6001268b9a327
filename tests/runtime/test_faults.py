"""Fault injection on both real backends (local threads and the Lambda emulator).

Each case checks, with the server's own command feed (MONITOR) rather than the trace, that
every task output of the run was written at most once (exactly once when the run succeeds),
that the run gives the right result or a clear error, that no key of the run lives without a
ttl, and that nothing is left after the run's cleanup.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis
import runtime_tasks as rt
from redis_monitor import CommandCounter
from redis_server import RedisServer, find_redis_server

from dag import Placement, Plan, ResourceConfig
from dag.lang import build
from experiments.cli import main
from runtime.client import run
from runtime.errors import RemoteTaskError, StoreError
from runtime.lambda_local import LambdaEmulator
from runtime.redis_driver import REDIS_URL_ENV
from worker.schedule import output_key

SUPPORT = str(Path(__file__).resolve().parents[1] / "support")
ROOT = Path(__file__).resolve().parents[2]
CFG = ResourceConfig(1024)
FAST_LIVENESS = {"heartbeat_ttl_s": 1.0, "check_interval_s": 0.2, "timeout_s": 60}
BACKENDS = ["local", "emulator"]


@contextlib.contextmanager
def emulator_for(redis_url: str):
    """An emulator whose faasdag-1024 function's environment names `redis_url`."""
    with LambdaEmulator(max_concurrency=8, keep_alive_s=60) as emu:
        emu.add_function(
            "faasdag-1024", 1024, extra_paths=(SUPPORT,), environment={REDIS_URL_ENV: redis_url}
        )
        yield emu


@pytest.fixture(scope="module")
def shared_emulator(redis_server):
    with emulator_for(redis_server.url) as emu:
        yield emu


class Backend:
    """Runs a plan on one backend against one Redis, and knows how to kill a worker there."""

    def __init__(self, kind: str, redis_url: str, emulator: LambdaEmulator | None):
        self.kind, self.redis_url, self.emulator = kind, redis_url, emulator

    def run(self, target, plan, **options):
        backend = {"backend": "local"}
        if self.kind == "emulator":
            backend = {"backend": "lambda", "endpoint_url": self.emulator.endpoint_url}
        return run(target, plan, redis_url=self.redis_url, **backend, **options)

    def slow_task(self, tmp_path, seconds=3.0):
        """A task whose worker dies mid-task: killed (emulator) or silenced (local)."""
        if self.kind == "local":
            return rt.freeze_once(1, str(tmp_path / "frozen"), seconds)
        return rt.slow(1, seconds)

    def kill_soon(self, payload_has: bytes) -> threading.Thread | None:
        if self.kind == "local":
            return None
        killer = threading.Thread(target=lambda: _busy(self.emulator, payload_has).process.kill())
        killer.start()
        return killer


def _busy(emulator, payload_has, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for env in emulator.environments():
            current = env.current
            if current is not None and not current.done.is_set() and payload_has in current.payload:
                return env
        time.sleep(0.02)
    raise AssertionError(f"no busy environment running {payload_has!r}")


@pytest.fixture(params=BACKENDS)
def backend(request, redis_server):
    emulator = request.getfixturevalue("shared_emulator") if request.param == "emulator" else None
    return Backend(request.param, redis_server.url, emulator)


def fixed_plan(workflow, worker_of=lambda t: "w-" + t.split("-")[0]):
    return Plan({t: Placement(worker_of(t), CFG) for t in workflow.dag})


def run_keys(url, run_id):
    return redis.Redis.from_url(url).keys(f"faasdag:{run_id}:*")


def assert_every_key_expires(url, run_id):
    client = redis.Redis.from_url(url)
    keys = client.keys(f"faasdag:{run_id}:*")
    assert keys, "the run left no keys to look at"
    without_ttl = [k for k in keys if client.pttl(k) < 0]
    assert without_ttl == []


def output_writes(counter, run_id, workflow):
    return {t: counter.writes(f"faasdag:{run_id}:{output_key(t)}") for t in workflow.dag}


def wait_until(predicate, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_a_task_that_raises(backend):
    """A task that raises fails the run with its error; a worker still running when the run
    fails writes nothing after it, and no key is left."""
    workflow = build(rt.add(rt.explode(rt.number(7)), rt.slow(1, 1.5)))
    plan = fixed_plan(workflow, lambda t: "w-slow" if t.startswith("slow") else "w-main")
    with CommandCounter(backend.redis_url) as counter:
        with pytest.raises(RemoteTaskError, match="ZeroDivisionError: boom on 7"):
            backend.run(workflow, plan, run_id="raises-" + backend.kind, **FAST_LIVENESS)
        time.sleep(2.0)  # the slow worker ends meanwhile: cancelled, its upload refused
    writes = output_writes(counter, "raises-" + backend.kind, workflow)
    assert max(writes.values()) <= 1
    assert writes[next(t for t in workflow.dag if t.startswith("slow"))] == 0
    assert run_keys(backend.redis_url, "raises-" + backend.kind) == []


def test_a_worker_that_dies_mid_task(backend, tmp_path):
    """A worker that dies mid-task (killed; on threads, silenced) loses its heartbeat and is
    re-invoked as attempt 1; the old attempt's late writes, made while the run is still live,
    are refused, so every output is written exactly once and the result is right."""
    # The second task keeps the run live after the silenced attempt wakes up (at 2 s).
    workflow = build(rt.add(backend.slow_task(tmp_path, seconds=2.0), rt.slow(2, 4.0)))
    dying = next(iter(workflow.dag))
    plan = fixed_plan(workflow, lambda t: "w-" + t)
    killer = backend.kill_soon(f'"w-{dying}"'.encode())
    run_id = "dies-" + backend.kind
    with CommandCounter(backend.redis_url) as counter:
        result = backend.run(workflow, plan, run_id=run_id, keep=True, **FAST_LIVENESS)
        if killer is not None:
            killer.join()
    assert result.value == 3
    assert set(output_writes(counter, run_id, workflow).values()) == {1}
    tasks = result.tasks.set_index("task_id")
    assert tasks.loc[dying, "attempt"] == 1 and tasks["attempt"].sum() == 1
    assert_every_key_expires(backend.redis_url, run_id)
    main(["cleanup", run_id, "--redis-url", backend.redis_url])
    assert run_keys(backend.redis_url, run_id) == []


def test_a_worker_slower_than_the_clients_patience(backend):
    """A worker busy far longer than the heartbeat's ttl and the client's checks keeps its
    heartbeat: it is never re-invoked, and every output is written once."""
    workflow = build(rt.add(rt.slow(1, 3.0), rt.number(2)))
    run_id = "slow-" + backend.kind
    with CommandCounter(backend.redis_url) as counter:
        result = backend.run(
            workflow, fixed_plan(workflow), run_id=run_id, keep=True, **FAST_LIVENESS
        )
    assert result.value == 3
    assert set(output_writes(counter, run_id, workflow).values()) == {1}
    assert result.tasks["attempt"].tolist() == [0] * len(workflow.dag)
    workers = {p.worker_id for p in fixed_plan(workflow).placements.values()}
    assert sorted(i.worker_id for i in result.invocations) == sorted(workers)
    assert_every_key_expires(backend.redis_url, run_id)
    main(["cleanup", run_id, "--redis-url", backend.redis_url])
    assert run_keys(backend.redis_url, run_id) == []


@pytest.mark.parametrize("kind", BACKENDS)
def test_redis_restarted_mid_run(kind):
    """Redis restarted mid-run fails the run clearly, and the worker still running writes
    nothing into the fresh Redis."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server")
    with RedisServer(binary) as server, contextlib.ExitStack() as stack:
        emulator = stack.enter_context(emulator_for(server.url)) if kind == "emulator" else None
        backend = Backend(kind, server.url, emulator)
        workflow = build(rt.add(rt.slow(1, 2.0), rt.number(2)))
        restarter = threading.Timer(1.0, server.restart)
        restarter.start()
        with pytest.raises(StoreError, match="Redis"):
            backend.run(workflow, fixed_plan(workflow), run_id="restart-" + kind, **FAST_LIVENESS)
        restarter.join()
        time.sleep(2.5)  # the slow worker ends on the fresh Redis meanwhile
        assert redis.Redis.from_url(server.url).keys("*") == []


CLIENT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {support!r})
    import runtime_tasks as rt
    from dag import Placement, Plan, ResourceConfig
    from dag.lang import build
    from runtime.client import run
    workflow = build(rt.add(rt.slow(1, 1.5), rt.slow(2, 1.5)))
    plan = Plan({{t: Placement("w-" + t, ResourceConfig(1024)) for t in workflow.dag}})
    options = {options!r}
    print("started", flush=True)
    run(workflow, plan, run_id={run_id!r}, redis_url={url!r}, **options)
    """
)


def test_the_client_killed_mid_run(backend):
    """A client killed mid-run leaves only keys that expire, and `faasdag cleanup` removes
    them all; workers still running never write twice."""
    run_id = "killed-" + backend.kind
    options = {}
    if backend.kind == "emulator":
        options = {"backend": "lambda", "endpoint_url": backend.emulator.endpoint_url}
    script = CLIENT.format(support=SUPPORT, options=options, run_id=run_id, url=backend.redis_url)
    with CommandCounter(backend.redis_url) as counter:
        client = subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert client.stdout.readline().strip() == "started"
        wait_until(lambda: any(b":started:" in k for k in run_keys(backend.redis_url, run_id)))
        time.sleep(0.3)
        client.kill()
        client.wait(10)
        time.sleep(2.0)  # Lambda workers go on without their client; threads died with it
    out_writes = [
        n for (command, key), n in counter.counts.items() if ":out:" in key and command == "SET"
    ]
    assert max(out_writes, default=0) <= 1
    assert_every_key_expires(backend.redis_url, run_id)
    assert main(["cleanup", "--older-than", "0s", "--redis-url", backend.redis_url]) == 0
    assert run_keys(backend.redis_url, run_id) == []


def test_two_identical_runs_at_once(backend):
    """The same workflow and plan run twice at once on one Redis: separate ids, both right."""
    workflow = build(rt.add(rt.slow(20, 0.5), rt.number(22)))
    results, errors = [], []

    def one():
        try:
            results.append(backend.run(workflow, fixed_plan(workflow), **FAST_LIVENESS))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert [r.value for r in results] == [42, 42]
    assert len({r.run_id for r in results}) == 2
    assert all(len(r.tasks) == len(workflow.dag) for r in results)
