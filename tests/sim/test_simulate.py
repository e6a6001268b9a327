"""simulate(): exact results on the ideal platform, a hand-computed run, and properties."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from profiles import DictProfiles
from strategies import dags

from dag import DAG, Placement, Plan, ResourceConfig, Task
from sim import Platform
from sim.engine import run_simulation
from sim.simulate import simulate
from worker import Schedule

CFG = ResourceConfig(1024)
ONE_CPU = ResourceConfig(1769, 1.0)


def test_ideal_flexible_makespan_is_the_critical_path():
    """Every task on its own flexible worker, ideal platform: makespan = exec critical path."""
    dag = DAG(
        [Task("a", "f"), Task("b", "g", ("a",)), Task("c", "g", ("a",)), Task("d", "h", ("b", "c"))]
    )
    exec_ms = {"a": 3.0, "b": 10.0, "c": 4.0, "d": 2.0}
    plan = Plan({t: Placement(None, CFG) for t in dag})
    result = simulate(dag, plan, DictProfiles(exec_ms, dict.fromkeys(dag, 1000)), "ideal")
    assert result.makespan_ms == dag.critical_path(exec_ms)[0] == 15.0
    assert result.critical_path == ("a", "b", "d")


def test_ideal_single_worker_makespan_is_the_sum():
    """All tasks on one fixed one-cpu worker, ideal platform: makespan = sum of exec times."""
    dag = DAG(
        [Task("a", "f"), Task("b", "g", ("a",)), Task("c", "g", ("a",)), Task("d", "h", ("b", "c"))]
    )
    exec_ms = {"a": 3.0, "b": 10.0, "c": 4.0, "d": 2.0}
    plan = Plan({t: Placement("w", ONE_CPU) for t in dag})
    result = simulate(dag, plan, DictProfiles(exec_ms, dict.fromkeys(dag, 1000)), "ideal")
    assert result.makespan_ms == sum(exec_ms.values())
    assert result.bytes_down == 0 and result.bytes_up == 1000  # the sink only


HAND_PLATFORM = Platform(
    name="hand",
    cold_start_median_ms=100.0,
    cold_start_sigma=0.0,
    warm_start_ms=10.0,
    store_op_ms=1.0,
    store_bandwidth_bytes_per_ms=1000.0,
)


def test_hand_computed_five_tasks_with_transfers_and_cold_starts():
    """Five tasks on two fixed workers match a by-hand timeline to the millisecond.

    w1 runs a, b, e, d; w2 runs c. Cold start 100 ms, 1 ms per store command, store link
    1000 bytes/ms. Timeline: client claims w1 (0-1), w1 cold (1-101), a (101-111), upload a
    5000 B (111-117), claim+invoke w2 (117-118), b (118-138), e (138-145), upload e 500 B
    (145-146.5), check c (146.5-147.5) and wait; w2 cold (118-218), check a (218-219), download
    a (219-225), c (225-230), upload c 1000 B (230-232), claim w1 lost (232-233); w1 downloads c
    (232-234), d (234-235), uploads d 100 B (235-236.1).
    """
    dag = DAG(
        [
            Task("a", "f"),
            Task("b", "g", ("a",)),
            Task("c", "g", ("a",)),
            Task("d", "h", ("b", "c")),
            Task("e", "k", ("a",)),
        ]
    )
    exec_ms = {"a": 10, "b": 20, "c": 5, "d": 1, "e": 7}
    out = {"a": 5000, "b": 2000, "c": 1000, "d": 100, "e": 500}
    plan = Plan({t: Placement("w2" if t == "c" else "w1", CFG) for t in dag})
    result = simulate(dag, plan, DictProfiles(exec_ms, out), HAND_PLATFORM, seed=3)
    rows = result.tasks.set_index("task_id")
    assert result.makespan_ms == pytest.approx(236.1)
    assert rows.loc["e", "end_ms"] == pytest.approx(146.5)
    assert rows.loc[
        "c", ["start_ms", "inputs_done_ms", "exec_done_ms", "end_ms"]
    ].tolist() == pytest.approx([219, 225, 230, 233])
    assert rows.loc["d", ["ready_ms", "start_ms", "exec_done_ms"]].tolist() == pytest.approx(
        [232, 232, 235]
    )
    assert (rows.loc["a", "startup"], rows.loc["a", "startup_ms"]) == ("cold", 100.0)
    assert result.n_cold == 2
    workers = result.workers.set_index("worker_id")
    assert workers.loc["w1", "billed_ms"] == 236.0  # 1 .. 236.1, cold start included
    assert workers.loc["w2", "billed_ms"] == 115.0  # 118 .. 233
    assert result.bytes_up == 5000 + 500 + 1000 + 100
    assert result.bytes_down == 5000 + 1000


def test_a_workers_parallel_downloads_run_in_turn():
    """A fan-in's two downloads follow each other, as the real drivers perform them: each pays
    its command latency and has the store link alone (1 + 5 and 1 + 3 ms), so they take 10 ms
    where sharing the link at once would take 9."""
    dag = DAG([Task("a", "f"), Task("b", "f"), Task("d", "g", ("a", "b"))])
    plan = Plan({"a": Placement("w1", CFG), "b": Placement("w2", CFG), "d": Placement("w3", CFG)})
    profiles = DictProfiles({"a": 10.0, "b": 50.0, "d": 1.0}, {"a": 5000, "b": 3000, "d": 0})
    result = simulate(dag, plan, profiles, HAND_PLATFORM, seed=0)
    rows = result.tasks.set_index("task_id")
    assert rows.loc["d", "download_bytes"] == 8000
    assert rows.loc["d", "download_ms"] == pytest.approx(10.0)
    # b's output was stored last; d's downloads began after it and ended 10 ms later
    assert rows.loc["d", "inputs_done_ms"] - rows.loc["b", "end_ms"] >= 10.0 - 1e-9


@st.composite
def planned_runs(draw):
    dag = draw(dags(max_tasks=15))
    configs = [ResourceConfig(512), ResourceConfig(1024), ResourceConfig(3008)]
    n_workers = draw(st.integers(1, 4))
    worker_configs = [draw(st.sampled_from(configs)) for _ in range(n_workers)]
    placements = {}
    for task_id in dag:
        choice = draw(st.integers(-1, n_workers - 1))
        placements[task_id] = (
            Placement(None, draw(st.sampled_from(configs)))
            if choice < 0
            else Placement(f"w{choice}", worker_configs[choice])
        )
    exec_ms = {t: draw(st.floats(0, 500, allow_nan=False)) for t in dag}
    out = {t: draw(st.integers(0, 5_000_000)) for t in dag}
    seed = draw(st.integers(0, 2**32 - 1))
    return dag, Plan(placements), DictProfiles(exec_ms, out), exec_ms, out, seed


SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(planned_runs())
def test_every_task_runs_once_after_its_inputs(run):
    """Each task executes exactly once, never before its inputs are available."""
    dag, plan, profiles, _, _, seed = run
    result = simulate(dag, plan, profiles, "aws-lambda", seed)
    assert sorted(result.tasks["task_id"]) == sorted(dag)
    rows = result.tasks.set_index("task_id")
    for producer, consumer in dag.edges:
        assert rows.loc[consumer, "start_ms"] >= rows.loc[consumer, "ready_ms"] - 1e-9
        assert rows.loc[consumer, "inputs_done_ms"] >= rows.loc[producer, "exec_done_ms"] - 1e-9


@SLOW
@given(planned_runs())
def test_makespan_at_least_critical_path(run):
    """Makespan is never below the critical path of exec times."""
    dag, plan, profiles, exec_ms, _, seed = run
    result = simulate(dag, plan, profiles, "aws-lambda", seed)
    assert result.makespan_ms >= dag.critical_path(exec_ms)[0] - 1e-6


@SLOW
@given(planned_runs())
def test_same_seed_same_frames(run):
    """The same inputs and seed give identical DataFrames and cost."""
    dag, plan, profiles, _, _, seed = run
    first = simulate(dag, plan, profiles, "aws-lambda", seed)
    second = simulate(dag, plan, profiles, "aws-lambda", seed)
    pd.testing.assert_frame_equal(first.tasks, second.tasks)
    pd.testing.assert_frame_equal(first.workers, second.workers)
    assert first.cost == second.cost


@SLOW
@given(planned_runs())
def test_downloaded_bytes_equal_cross_worker_edges(run):
    """Bytes downloaded equal the output bytes of edges whose ends ran on different workers."""
    dag, plan, profiles, _, out, seed = run
    result = simulate(dag, plan, profiles, "aws-lambda", seed)
    worker = dict(zip(result.tasks["task_id"], result.tasks["worker_id"], strict=True))
    cross = sum(out[p] for p, c in dag.edges if worker[p] != worker[c])
    assert result.bytes_down == cross == result.tasks["download_bytes"].sum()


@SLOW
@given(planned_runs())
def test_warm_starts_never_exceed_idle_containers(run):
    """The pools' invariant holds after any run: warm starts <= idle containers of that config."""
    dag, plan, profiles, _, _, seed = run
    driver = run_simulation(
        Schedule.build(dag, plan), profiles, Platform.preset("aws-lambda"), seed
    )
    driver.pools.check()
    assert driver.pools.n_cold + driver.pools.n_warm == len(driver.recorder.worker_rows())


def test_concurrency_limit_queues_workers():
    """With a concurrency limit of 1, two parallel branches run one after the other."""
    dag = DAG([Task("a", "f"), Task("b", "f")])
    plan = Plan({"a": Placement("w1", CFG), "b": Placement("w2", CFG)})
    profiles = DictProfiles({"a": 100.0, "b": 100.0}, {"a": 0, "b": 0})
    limited = Platform.preset("ideal").with_overrides(concurrency_limit=1)
    assert simulate(dag, plan, profiles, "ideal").makespan_ms == 100.0
    assert simulate(dag, plan, profiles, limited).makespan_ms == 200.0


def test_cost_is_billed_per_container():
    """Compute cost is GB-seconds of each container's busy time at the platform's price."""
    dag = DAG([Task("a", "f")])
    plan = Plan({"a": Placement("w", ResourceConfig(2048))})
    result = simulate(dag, plan, DictProfiles({"a": 1000.0}, {"a": 0}), "ideal")
    assert result.cost["gb_s"] == pytest.approx(2.0)
    assert result.cost["compute_usd"] == pytest.approx(2.0 * 0.0000166667)
    assert np.isclose(result.cost["requests_usd"], 0.2e-6)
