"""Live events of real runs (`runtime.live`): what reaches the run's stream, how it is bounded,
fenced and expired, and that a reader never gets anything but checked JSON."""

from __future__ import annotations

import json

import pytest
import redis
import runtime_tasks as rt

from dag import Placement, Plan, ResourceConfig
from dag.lang import build
from runtime.client import run
from runtime.errors import RemoteTaskError, WriteRefused
from runtime.live import EVENT_FIELDS, LivePublisher, coalesce, decode
from runtime.live_source import StreamSource, UnknownRun
from runtime.store import RedisStore, connect


def read_all(url: str, run_id: str) -> list[dict]:
    source = StreamSource(connect(url), run_id, block_ms=10)
    events, batch = [], source.poll()
    while batch:
        events += batch
        batch = source.poll()
    assert source.n_bad == 0
    return events


def test_a_run_publishes_every_state_change(redis_url):
    """A run's stream holds its start, every worker's invocation, start and end, each task's
    exec and upload (with bytes and start), and its end; its description names the tasks."""
    workflow = build(rt.add(rt.number(1), rt.number(2)))
    result = run(workflow, redis_url=redis_url, run_id="live-all", keep=True)
    events = read_all(redis_url, "live-all")
    kinds = [e["kind"] for e in events]
    assert kinds.count("run_started") == 1 and kinds[-1] == "run_ended"
    workers = set(result.workers["worker_id"])
    for kind in ("worker_invoked", "worker_started", "worker_ended"):
        assert {e["worker"] for e in events if e["kind"] == kind} == workers
    ends = {e["task"]: e for e in events if e["kind"] == "exec_end"}
    assert set(ends) == set(workflow.dag)
    tasks = result.tasks.set_index("task_id")
    for task_id, event in ends.items():
        assert event["bytes"] == tasks.loc[task_id, "output_bytes"]
        assert event["t_ms"] == pytest.approx(tasks.loc[task_id, "exec_done_ms"], abs=0.01)
    source = StreamSource(connect(redis_url), "live-all")
    assert [t["id"] for t in source.read_description()["tasks"]] == list(workflow.dag)


def test_the_stream_has_the_runs_ttl_and_goes_with_its_cleanup(redis_url):
    """The stream and the description expire with the run's ttl, and its cleanup deletes them."""
    workflow = build(rt.number(3))
    run(workflow, redis_url=redis_url, run_id="live-ttl", keep=True, ttl_s=600)
    client = redis.Redis.from_url(redis_url)
    for name in ("_events", "_live"):
        assert 0 < client.pttl(f"faasdag:live-ttl:{name}") <= 600_000
    run(workflow, redis_url=redis_url, run_id="live-gone")
    assert client.keys("faasdag:live-gone:*") == []


def test_events_off_publish_nothing(redis_url):
    """With events=False the run has no stream and no description."""
    run(build(rt.number(3)), redis_url=redis_url, run_id="live-off", keep=True, events=False)
    with pytest.raises(UnknownRun):
        StreamSource(connect(redis_url), "live-off").check()


def test_a_failed_task_sends_its_traceback(redis_url):
    """A task that raises sends task_failed with its error, message and remote traceback, and
    the run's end says it failed."""
    workflow = build(rt.explode(rt.number(7)))
    with pytest.raises(RemoteTaskError):
        run(workflow, redis_url=redis_url, run_id="live-fails", keep=True)
    events = read_all(redis_url, "live-fails")
    (failed,) = [e for e in events if e["kind"] == "task_failed"]
    assert failed["task"] == "explode-0" and failed["error"] == "ZeroDivisionError"
    assert "boom on 7" in failed["message"] and "Traceback" in failed["traceback"]
    assert failed["start_ms"] is not None
    assert events[-1]["kind"] == "run_ended" and events[-1]["status"] == "failed"


def test_a_superseded_or_cancelled_worker_cannot_add_events(redis_url):
    """Events go through the fenced write: a superseded attempt's and a cancelled run's are
    refused."""
    client = connect(redis_url)
    RedisStore(client, "live-fence").begin()
    store = RedisStore(client, "live-fence", writer=("w", 0))
    live = LivePublisher(store, "w", 0, maxlen=10, clock=lambda: 1.0)
    live.emit("exec_start", task="t")
    live.flush()
    RedisStore(client, "live-fence").next_attempt("w")
    live.emit("exec_start", task="u")
    with pytest.raises(WriteRefused, match="a retry of this worker"):
        live.flush()
    fresh = RedisStore(client, "live-fence", writer=("w", 1))
    RedisStore(client, "live-fence").cancel()
    again = LivePublisher(fresh, "w", 1, maxlen=10, clock=lambda: 2.0)
    again.emit("exec_start", task="v")
    with pytest.raises(WriteRefused, match="cancelled"):
        again.flush()
    assert [e["task"] for e in read_all(redis_url, "live-fence")] == ["t"]


def test_the_stream_is_bounded(redis_url):
    """The stream keeps about `maxlen` entries however many batches are sent."""
    client = connect(redis_url)
    store = RedisStore(client, "live-bound")
    store.begin()
    live = LivePublisher(store, "w", 0, maxlen=100, clock=lambda: 1.0)
    for i in range(2000):
        live.emit("exec_start", task=f"t{i}")
        live.flush()
    assert client.xlen("faasdag:live-bound:_events") < 300


def test_a_transient_state_superseded_in_a_batch_is_left_out():
    """exec_start followed by its exec_end in one batch is sent as the exec_end alone; the
    exec_start of another task stays."""
    events = [
        {"kind": "exec_start", "t_ms": 1.0, "worker": "w", "task": "a"},
        {"kind": "exec_start", "t_ms": 2.0, "worker": "w", "task": "b"},
        {"kind": "exec_end", "t_ms": 3.0, "worker": "w", "task": "a", "start_ms": 1.0},
    ]
    assert [(e["kind"], e["task"]) for e in coalesce(events)] == [
        ("exec_start", "b"),
        ("exec_end", "a"),
    ]


@pytest.mark.parametrize(
    "data, culprit",
    [
        (b"\x80\x04pickle", "not JSON"),
        (b'{"kind": "exec_end"}', "not an array"),
        (b'[{"kind": "boom", "t_ms": 1}]', "unknown kind"),
        (b'[{"kind": "exec_end", "t_ms": "soon"}]', "no finite t_ms"),
        (b'[{"kind": "exec_end", "t_ms": 1, "worker": "w", "attempt": 0}]', "'task'"),
    ],
)
def test_decode_refuses_anything_but_valid_events(data, culprit):
    """A stream entry that is not a JSON array of valid events is refused, naming why."""
    with pytest.raises(ValueError, match=culprit):
        decode(data)


def test_every_kind_the_dashboard_needs_is_in_the_vocabulary():
    """Every kind has its fields listed (the dashboard folds them by name)."""
    state = pytest.importorskip("dashboard.state")
    assert set(state._HANDLERS) | {"run_started"} == set(EVENT_FIELDS)
    assert json.loads(json.dumps(EVENT_FIELDS))


def test_a_plan_with_predictions_describes_them(redis_url):
    """A planner's plan carries its predicted start and end of each task into the description."""
    from planners import get_planner
    from planners.base import ProfilesPredictor
    from traces.profiles import FixedProfiles

    workflow = build(rt.add(rt.number(1), rt.number(2)))
    profiles = FixedProfiles(
        workflow.dag, dict.fromkeys(workflow.dag, 5.0), dict.fromkeys(workflow.dag, 10)
    )
    plan = get_planner("heft").plan(
        workflow.dag, ProfilesPredictor(profiles), "aws-lambda", [ResourceConfig(1024)]
    )
    assert isinstance(plan, Plan) and all(isinstance(plan[t], Placement) for t in workflow.dag)
    run(workflow, plan, redis_url=redis_url, run_id="live-pred", keep=True)
    tasks = StreamSource(connect(redis_url), "live-pred").read_description()["tasks"]
    assert all(t["pred_end_ms"] >= t["pred_start_ms"] >= 0 for t in tasks)


def test_workers_on_the_lambda_emulator_publish_too(redis_url):
    """On the Lambda backend (the local emulator: worker processes of their own) every worker's
    start, tasks and end reach the stream, with its container's start-up kind."""
    from pathlib import Path

    from runtime.lambda_local import LambdaEmulator
    from runtime.redis_driver import REDIS_URL_ENV

    support = str(Path(__file__).resolve().parents[1] / "support")
    workflow = build(rt.add(rt.number(1), rt.number(2)))
    plan = Plan({t: Placement("w-" + t, ResourceConfig(1024)) for t in workflow.dag})
    with LambdaEmulator(max_concurrency=4, keep_alive_s=30) as emulator:
        emulator.add_function(
            "faasdag-1024", 1024, extra_paths=(support,), environment={REDIS_URL_ENV: redis_url}
        )
        result = run(
            workflow, plan, redis_url=redis_url, backend="lambda", run_id="live-lambda",
            endpoint_url=emulator.endpoint_url, keep=True,
        )  # fmt: skip
    assert result.value == 3
    events = read_all(redis_url, "live-lambda")
    started = {e["worker"]: e["startup"] for e in events if e["kind"] == "worker_started"}
    assert set(started) == {"w-" + t for t in workflow.dag}
    assert set(started.values()) <= {"cold", "warm"}
    assert {e["task"] for e in events if e["kind"] == "exec_end"} == set(workflow.dag)
    assert {e["worker"] for e in events if e["kind"] == "worker_ended"} == set(started)
