"""The Redis driver with the local (thread) backend: real Redis, real task functions."""

import threading
import time

import numpy as np
import pytest
import runtime_tasks as rt
from plans import plans_for

from dag import DAG, Placement, Plan, ResourceConfig, Task
from dag.examples import EXAMPLES, build_example
from runtime.client import run
from runtime.errors import RemoteTaskError, StoreLost, WorkerLost
from runtime.inprocess import run_in_process
from runtime.redis_driver import HANDLERS, RedisDriver, RunContext, RunRef
from runtime.store import RedisStore, connect
from sim.simulate import simulate
from traces.io import TraceSet
from traces.profiles import FixedProfiles
from worker.schedule import Schedule

CFG = ResourceConfig(1024)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("plan_kind", ["single", "flexible", "mixed"])
def test_examples_match_direct_computation(name, plan_kind, redis_url, tmp_path):
    """Every example under every plan shape gives the direct result and writes valid traces."""
    example = build_example(name)
    result = run(example, plans_for(example.dag)[plan_kind], redis_url=redis_url, timeout_s=60)
    example.check(result.results)
    assert sorted(result.tasks["task_id"]) == sorted(example.dag)
    result.traces().write(tmp_path / "traces")
    assert TraceSet.read(tmp_path / "traces").tasks.shape[0] == len(example.dag)
    assert result.runs["backend"].tolist() == ["local"]


@pytest.mark.parametrize("name", ["gemm", "montage_like"])
def test_same_structure_as_in_process(name, redis_url):
    """A fixed plan runs the same tasks on the same workers, with the same uploads and
    invocations, in the in-process driver and over Redis."""
    example = build_example(name)
    plan = plans_for(example.dag)["mixed"]
    fixed = Plan(
        {t: Placement(p.worker_id or "w-flex", p.config) for t, p in plan.placements.items()}
    )
    local = run_in_process(
        example.dag, fixed, lambda t, inputs: example.workflow.specs[t].call(inputs)
    )
    real = run(example, fixed, redis_url=redis_url, timeout_s=60)
    assert dict(zip(real.tasks["task_id"], real.tasks["worker_id"], strict=True)) == {
        row["task_id"]: row["worker_id"] for row in local.task_rows
    }
    assert sorted(real.uploads) == sorted(local.uploads)
    assert sorted(i.worker_id for i in real.invocations) == sorted(
        i.worker_id for i in local.invocations
    )


@pytest.mark.parametrize("name", ["gemm", "tree_reduction"])
def test_real_run_performs_the_store_commands_the_simulation_counts(name, redis_url):
    """On a fixed plan the Redis run and the simulation perform the same number of store
    commands and publishes (calibration fits the CPU per command on this count)."""
    example = build_example(name)
    plan = plans_for(example.dag)["mixed"]
    fixed = Plan(
        {t: Placement(p.worker_id or "w-flex", p.config) for t, p in plan.placements.items()}
    )
    real = run(example, fixed, redis_url=redis_url, timeout_s=60)
    profiles = FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    simulated = simulate(example.dag, fixed, profiles, "aws-lambda", seed=1)
    assert real.n_store_commands > len(example.dag) and real.n_publishes > 0
    assert (real.n_store_commands, real.n_publishes) == (
        simulated.n_store_commands,
        simulated.n_publishes,
    )


def test_keys_are_deleted_after_the_run(redis_url):
    """A finished run leaves no key of its own in Redis (unless keep=True)."""
    example = build_example("tree_reduction")
    client = connect(redis_url)
    result = run(example, redis_url=redis_url, timeout_s=60)
    assert client.keys(f"faasdag:{result.run_id}:*") == []
    kept = run(example, redis_url=redis_url, timeout_s=60, keep=True)
    assert client.keys(f"faasdag:{kept.run_id}:out:*")
    RedisStore(client, kept.run_id).cleanup()


def test_task_exception_reaches_the_client_with_the_remote_traceback(redis_url):
    """A raising task fails the run quickly; the error names task, worker and remote frame."""
    a = rt.number(1)
    boom = rt.explode(a)
    out = rt.add(boom, rt.slow(2, 0.1))
    started = time.monotonic()
    with pytest.raises(RemoteTaskError) as info:
        run(out, redis_url=redis_url, timeout_s=30)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "ZeroDivisionError" in message and "boom on 1" in message
    assert "runtime_tasks.py" in message and "raise ZeroDivisionError" in message
    assert info.value.failure.task_id.startswith("explode")


def test_a_fixed_worker_waiting_on_a_failed_producer_does_not_hang(redis_url):
    """A fixed consumer waiting for a producer that raised ends with the run's failure."""
    boom = rt.explode(rt.number(3))
    out = rt.add(boom, rt.number(4))
    from dag.lang import build

    workflow = build(out)
    plan = Plan({t: Placement("w-" + t.split("-")[0], CFG) for t in workflow.dag})
    with pytest.raises(RemoteTaskError, match="boom on 3"):
        run(workflow, plan, redis_url=redis_url, timeout_s=30)


def test_none_results_travel_between_workers(redis_url):
    """A task returning None passes None to a consumer on another worker, and as a sink."""
    from dag.lang import build

    workflow = build((rt.is_none(rt.nothing()), rt.nothing(rt.number(1))))
    plan = Plan({t: Placement(f"w{i}", CFG) for i, t in enumerate(workflow.dag)})
    result = run(workflow, plan, redis_url=redis_url, timeout_s=30)
    assert result.value == (True, None)


def test_a_50_mb_output(redis_url):
    """A 50 MB array crosses workers through Redis intact and is counted in the trace."""
    from dag.lang import build

    n_bytes = 50 * 1024 * 1024
    workflow = build(rt.checksum(rt.big_array(n_bytes)))
    plan = Plan({t: Placement(f"w{i}", CFG) for i, t in enumerate(workflow.dag)})
    result = run(workflow, plan, redis_url=redis_url, timeout_s=60)
    n = n_bytes // 8
    assert result.value == float(np.arange(n, dtype=np.float64).sum())
    producer = result.tasks[result.tasks["task_id"].str.startswith("big_array")].iloc[0]
    assert producer["output_bytes"] >= n_bytes
    consumer = result.tasks[result.tasks["task_id"].str.startswith("checksum")].iloc[0]
    assert consumer["download_bytes"] == producer["output_bytes"]


def test_redis_restart_mid_run_fails_clearly(own_redis):
    """Redis restarted while workers wait: the run ends with StoreLost (or completes), never
    hangs."""
    from dag.lang import build

    workflow = build(rt.add(rt.slow(1, 1.5), rt.number(2)))
    threading.Timer(0.5, own_redis.restart).start()
    started = time.monotonic()
    try:
        result = run(workflow, redis_url=own_redis.url, timeout_s=20)
    except (StoreLost, RemoteTaskError) as err:
        assert "vanished" in str(err) or "not stored" in str(err) or "StoreLost" in str(err)
    else:
        assert result.value == 3
    assert time.monotonic() - started < 20


def test_a_stalled_run_ends_by_timeout_naming_the_worker(redis_url):
    """A worker that never finishes is reported by the client's timeout, naming it."""
    from dag.lang import build

    workflow = build(rt.slow(1, 3.0))
    with pytest.raises(WorkerLost, match="slow"):
        run(workflow, redis_url=redis_url, timeout_s=0.5, settle_timeout_s=0.1)


def test_unknown_effect_names_itself(redis_url):
    """An effect with no handler raises a TypeError naming the effect and the worker."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Teleport:
        task_id: str = "a"

    dag = DAG([Task("a", "f")])
    schedule = Schedule.build(dag, Plan({"a": Placement("w", CFG)}))
    store = RedisStore(connect(redis_url), "unknown-effect")
    ref = RunRef("unknown-effect", time.time())
    driver = RedisDriver(RunContext(schedule, lambda t, i: 1), store, None, ref, _Null())

    def logic():
        yield Teleport()

    with pytest.raises(TypeError, match="Teleport.*worker 'w'"):
        from worker.branch import Invocation

        driver.run(_raising(logic()), Invocation("w", CFG, ("a",)))
    assert Teleport not in HANDLERS


def _raising(gen):
    """Let the driver's TypeError out instead of throwing it back into the generator."""
    value = yield next(gen)
    return value


class _Null:
    def effect(self, *args):
        pass


OPTIMIZATION_FLAGS = {
    "pre-warm": {"config": ResourceConfig(2048), "at_ms": 0},
    "pre-load": {},
    "task-dup": {},
    "output-streaming": {"chunk_bytes": 1024},
    "fan-out-clustering": {"max_exec_ms": 50, "min_input_bytes": 0},
    "fan-in-clustering": {"min_output_bytes": 0},
    "delayed-io": {"min_output_bytes": 0},
    "inline-subdag": {"max_exec_ms": 100.0},
    "small-results-inline": {"max_bytes": 96 * 1024},
}


@pytest.mark.parametrize("flag", sorted(OPTIMIZATION_FLAGS))
@pytest.mark.parametrize("name", ["gemm", "montage_like"])
def test_each_optimization_over_redis_gives_the_direct_result(flag, name, redis_url):
    """Every optimization flag, on a mixed plan, still gives the directly computed result."""
    from dag import Optimization
    from traces.profiles import FixedProfiles
    from worker.estimates import ProfileEstimates

    example = build_example(name)
    base = plans_for(example.dag)["mixed"]
    plan = Plan(base.placements, [Optimization(flag, params=OPTIMIZATION_FLAGS[flag])])
    estimates = ProfileEstimates(
        FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    )
    result = run(example, plan, estimates=estimates, redis_url=redis_url, timeout_s=60)
    example.check(result.results)
    originals = result.tasks[~result.tasks["duplicated"]]["task_id"]
    assert sorted(originals) == sorted(example.dag)


def test_the_context_a_run_ships_unpickles_without_the_simulator(redis_url):
    """Workers get plain-table estimates and a plan without its predicted timeline: loading
    the context imports no simulator, planner, pandas or scikit-learn (a second of CPU in a
    new container)."""
    import subprocess
    import sys
    from pathlib import Path

    import redis

    from dag.examples import build_example
    from planners import ProfilesPredictor, get_planner
    from runtime.redis_driver import CONTEXT_KEY
    from sim import Platform

    example = build_example("gemm:n=64,blocks=2")
    plan = get_planner("heft").plan(
        example.dag, ProfilesPredictor.from_profiled(example), Platform.preset("local")
    )
    assert plan.predicted is not None and plan.predicted.estimates is not None
    result = run(example, plan, redis_url=redis_url, timeout_s=60, keep=True)
    blob = redis.Redis.from_url(redis_url).get(f"faasdag:{result.run_id}:{CONTEXT_KEY}")
    assert blob is not None
    code = (
        "import sys\n"
        "from runtime.values import loads\n"
        "context = loads(sys.stdin.buffer.read(), 'context')\n"
        "assert context.schedule.plan.predicted is None\n"
        "assert context.schedule.estimates.exec_ms('multiply-0', "
        "context.schedule.config_of['multiply-0']) > 0\n"
        "heavy = ('sim', 'planners', 'traces', 'pandas', 'sklearn', 'scipy', 'simpy')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=blob, capture_output=True, check=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )  # fmt: skip
    assert out.stdout.decode().strip() == ""


@pytest.mark.parametrize("placement", ["fixed", "flexible"])
def test_an_intermediate_task_asked_for_is_returned(redis_url, placement):
    """An outputs structure naming a task that also feeds another gets both results, though
    the intermediate one would otherwise stay in its worker's memory."""
    from dag.lang import build

    middle = rt.add(rt.number(1), rt.number(2))
    workflow = build({"middle": middle, "last": rt.add(middle, rt.number(10))})
    worker = "w" if placement == "fixed" else None
    plan = Plan({t: Placement(worker, CFG) for t in workflow.dag})
    result = run(workflow, plan, redis_url=redis_url, timeout_s=30)
    assert result.value == {"middle": 3, "last": 13}


def test_a_real_run_is_billed_by_the_cost_model_on_its_own_billed_time(redis_url):
    """A real run's cost is not 0: it is the platform's prices applied to each worker's billed
    ms and memory, one request fee per worker, and its store use; within 10% of that bill
    recomputed by hand from the workers table."""
    from sim.platform import Platform

    example = build_example("tree_reduction")
    platform = Platform.preset("aws-lambda")
    result = run(example, plans_for(example.dag)["mixed"], redis_url=redis_url, timeout_s=60)
    row = result.runs.iloc[0]
    assert row["cost_usd"] > 0 and row["cost_compute_usd"] > 0
    gb_s = (result.workers["billed_ms"] / 1000 * result.workers["memory_mb"] / 1024).sum()
    by_hand = gb_s * platform.price_per_gb_s + len(result.workers) * platform.price_per_request
    compute_and_requests = row["cost_compute_usd"] + row["cost_requests_usd"]
    assert abs(compute_and_requests - by_hand) <= 0.10 * by_hand
    cheaper = run(
        example,
        plans_for(example.dag)["mixed"],
        redis_url=redis_url,
        timeout_s=60,
        platform=platform.with_overrides(price_per_gb_s=0.0, price_per_request=0.0),
    )
    assert cheaper.runs.iloc[0]["cost_compute_usd"] == 0.0


@pytest.mark.parametrize(
    ("kind", "flag"),
    [("mixed", "small-results-inline"), ("flexible", "inline-subdag")],
)
def test_inline_optimizations_cut_the_store_commands_the_simulation_counts(kind, flag, redis_url):
    """With inline-subdag or small-results-inline, the Redis run performs the store commands
    and invocations the simulation counts, fewer than without the flag, for the same result."""
    from dag import Optimization
    from worker.estimates import ProfileEstimates

    example = build_example("text_analysis")
    profiles = FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    base = plans_for(example.dag)[kind]
    if kind == "mixed":
        base = Plan(
            {t: Placement(p.worker_id or "w-flex", p.config) for t, p in base.placements.items()}
        )
    plan = base.with_optimizations([Optimization(flag, params=OPTIMIZATION_FLAGS[flag])])
    estimates = ProfileEstimates(profiles)
    counts = {}
    for name, each in (("off", base), ("on", plan)):
        real = run(example, each, estimates=estimates, redis_url=redis_url, timeout_s=60)
        example.check(real.results)
        simulated = simulate(example.dag, each, profiles, "aws-lambda", 1, estimates=estimates)
        counts[name] = (real.n_store_commands, len(real.invocations))
        assert counts[name] == (simulated.n_store_commands, len(simulated.invocations))
    assert counts["on"][0] < counts["off"][0]
    assert counts["on"][1] <= counts["off"][1]


def test_a_payload_carries_inputs_as_signed_values():
    """Inputs an invocation carries come back from its payload as the same values; each is
    signed on its own, so a forged one is refused even in a signed payload; a payload without
    inputs has no such field (plans without the flag send what they sent before)."""
    from runtime.signing import UntrustedData, sign_payload
    from worker.branch import Invocation
    from worker.effects import TaskOutput

    ref = RunRef("payload-inputs", time.time())
    array = np.arange(5.0)
    invocation = Invocation("flex-b", CFG, ("b",), 0, {"a": TaskOutput(array, 99)})
    payload = ref.payload(invocation, 1.0)
    _ref, back, _ms = RunRef.from_payload(payload)
    assert list(back.inputs) == ["a"] and np.array_equal(back.inputs["a"].value, array)
    assert "inputs" not in ref.payload(Invocation("flex-b", CFG, ("b",)), 1.0)
    forged = dict(payload, inputs={"a": payload["inputs"]["a"][:-8] + "AAAAAAA="})
    forged.pop("signature")
    with pytest.raises(UntrustedData):
        RunRef.from_payload(sign_payload(forged))
