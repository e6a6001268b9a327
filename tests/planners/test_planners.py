"""Every planner on random DAGs: valid plans, simulated predictions, sizing guarantees."""

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import dags

from dag import layered_dag
from planners import (
    PLANNERS,
    TIMELINE_COLUMNS,
    PredictedTimeline,
    ProfilesPredictor,
    get_planner,
)
from sim.simulate import simulate
from traces import FixedProfiles

CONFIGS = (512, 1024, 2048)
FLEXIBLE = {"wukong"}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def workloads(draw, max_tasks=12):
    """A random DAG with random runtimes, output sizes and cpu scaling (a random predictor)."""
    dag = draw(dags(max_tasks=max_tasks))
    runtime = {t: draw(st.floats(1.0, 2000.0)) for t in dag}
    outputs = {t: draw(st.integers(0, 50_000_000)) for t in dag}
    exponent = draw(st.sampled_from([-0.9, -0.3, 0.0]))
    profiles = FixedProfiles(dag, runtime, outputs, cpu_exponent=exponent)
    platform = draw(st.sampled_from(["aws-lambda", "ideal"]))
    return dag, ProfilesPredictor(profiles), platform


@SETTINGS
@given(workloads(), st.sampled_from(sorted(PLANNERS)))
def test_every_plan_validates_with_flexible_tasks_only_where_planned(workload, name):
    """Each planner's plan validates; only wukong leaves tasks flexible, and then all of them."""
    dag, predictor, platform = workload
    plan = get_planner(name).plan(dag, predictor, platform, CONFIGS)
    plan.validate(dag)
    flexible = {t for t, p in plan.placements.items() if p.worker_id is None}
    assert flexible == (set(dag) if name in FLEXIBLE else set())
    assert {p.config.memory_mb for p in plan.placements.values()} <= set(CONFIGS)
    assert plan.planner.startswith(name)


@SETTINGS
@given(workloads())
def test_non_uniform_never_slower_beyond_tolerance_nor_dearer(workload):
    """non-uniform's predicted makespan is within its tolerance of uniform-at-largest and its
    predicted cost is no higher."""
    dag, predictor, platform = workload
    uniform = get_planner("uniform").plan(dag, predictor, platform, CONFIGS).predicted
    sized = get_planner("non-uniform").plan(dag, predictor, platform, CONFIGS).predicted
    assert sized.makespan_ms <= uniform.makespan_ms * 1.01
    assert sized.cost_usd <= uniform.cost_usd


@SETTINGS
@given(workloads(), st.floats(0.5, 3.0))
def test_deadline_met_whenever_uniform_meets_it(workload, factor):
    """With a deadline uniform-at-largest meets, `deadline` meets it too, and costs no more."""
    dag, predictor, platform = workload
    uniform = get_planner("uniform").plan(dag, predictor, platform, CONFIGS).predicted
    deadline_ms = max(uniform.makespan_ms * factor, 1e-3)
    planner = get_planner("deadline", deadline_ms=deadline_ms)
    planned = planner.plan(dag, predictor, platform, CONFIGS).predicted
    if uniform.makespan_ms <= deadline_ms:
        assert planned.makespan_ms <= deadline_ms
        assert planned.cost_usd <= uniform.cost_usd


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_predicted_timeline_is_what_simulate_returns(name):
    """plan.predicted equals a fresh `simulate` of that plan on the same predicted profiles."""
    workflow = layered_dag(40, seed=2, ccr=0.3)
    profiles = FixedProfiles(workflow.dag, workflow.runtime_ms, workflow.output_bytes)
    plan = get_planner(name).plan(workflow.dag, ProfilesPredictor(profiles), "aws-lambda", seed=5)
    result = simulate(workflow.dag, plan, profiles, "aws-lambda", seed=5)
    originals = result.tasks[~result.tasks["duplicated"]]  # task-dup copies are extra rows
    expected = originals.set_index("task_id")[list(TIMELINE_COLUMNS)]
    pd.testing.assert_frame_equal(plan.predicted.tasks[list(TIMELINE_COLUMNS)], expected)
    assert plan.predicted.makespan_ms == result.makespan_ms
    assert plan.predicted.cost_usd == result.cost["total_usd"]
    assert plan.predicted.critical_path == result.critical_path
    assert set(plan.predicted.tasks.index[plan.predicted.tasks["critical"]]) == set(
        result.critical_path
    )


def test_timeline_has_every_per_task_field():
    """The timeline holds startup kind/ms, download, exec, upload, start, end, critical."""
    workflow = layered_dag(20, seed=1)
    plan = get_planner("uniform").plan(workflow.dag, ProfilesPredictor.from_profiled(workflow))
    timeline = plan.predicted
    assert isinstance(timeline, PredictedTimeline)
    for column in ("startup", "startup_ms", "download_ms", "exec_ms", "upload_ms", "start_ms",
                   "end_ms", "critical"):  # fmt: skip
        assert column in timeline.tasks.columns
    assert list(timeline.tasks.index) == list(workflow.dag.topological_order())
    assert timeline.cost_usd > 0 and timeline.makespan_ms > 0


def test_wukong_sets_clustering_and_delayed_io_flags():
    """wukong's plan carries fan-out / fan-in clustering and delayed I/O."""
    workflow = layered_dag(20, seed=1)
    plan = get_planner("wukong").plan(workflow.dag, ProfilesPredictor.from_profiled(workflow))
    assert {o.name for o in plan.optimizations} == {
        "fan-out-clustering",
        "fan-in-clustering",
        "delayed-io",
    }


def test_chains_stay_on_one_worker():
    """uniform keeps a chain on one worker."""
    workflow = layered_dag(12, alpha=0.2, seed=4)  # 12 levels of width 1: a chain
    plan = get_planner("uniform").plan(workflow.dag, ProfilesPredictor.from_profiled(workflow))
    assert len(plan.workers()) == 1


def test_uniform_splits_long_fan_out_children():
    """A fan-out of long tasks gets a worker per child, a fan-out of tiny tasks stays local."""
    from dag import DAG, Task

    dag = DAG([Task("root", "f"), *(Task(f"c{i}", "f", ("root",)) for i in range(4))])
    outputs = dict.fromkeys(dag, 10_000_000)

    def workers(runtime_ms):
        profiles = FixedProfiles(dag, dict.fromkeys(dag, runtime_ms), outputs)
        return len(get_planner("uniform").plan(dag, ProfilesPredictor(profiles)).workers())

    assert workers(5_000.0) == 4
    assert workers(1.0) == 1


def test_dask_uses_its_fixed_pool():
    """dask places every task on one of its `workers` workers."""
    workflow = layered_dag(50, seed=1)
    plan = get_planner("dask:workers=3").plan(
        workflow.dag, ProfilesPredictor.from_profiled(workflow)
    )
    assert len(plan.workers()) <= 3


def test_same_seed_same_plan():
    """Planning twice with the same inputs and seed gives the same plan and prediction."""
    workflow = layered_dag(60, seed=1, ccr=0.2)
    predictor = ProfilesPredictor.from_profiled(workflow)
    first = get_planner("non-uniform").plan(workflow.dag, predictor, seed=3)
    second = get_planner("non-uniform").plan(workflow.dag, predictor, seed=3)
    assert first == second
    assert first.predicted.makespan_ms == second.predicted.makespan_ms


@SETTINGS
@given(workloads())
def test_cost_min_never_dearer_than_uniform(workload):
    """cost-min's predicted cost is at most uniform-at-largest's."""
    dag, predictor, platform = workload
    uniform = get_planner("uniform").plan(dag, predictor, platform, CONFIGS).predicted
    cheapest = get_planner("cost-min").plan(dag, predictor, platform, CONFIGS).predicted
    assert cheapest.cost_usd <= uniform.cost_usd
