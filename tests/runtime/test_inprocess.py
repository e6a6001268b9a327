"""The in-process driver: real functions under the worker logic, checked against direct results
and against the simulator's run of the same plan."""

import pytest
from plans import plans_for

from dag import DAG, Placement, Plan, ResourceConfig, Task
from dag.examples import EXAMPLES, build_example
from runtime.inprocess import InProcessDriver, WorkerFailed, run_in_process
from sim.simulate import simulate
from traces.profiles import FixedProfiles

CFG = ResourceConfig(1024)


def call_of(example):
    return lambda task_id, inputs: example.workflow.specs[task_id].call(inputs)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("plan_kind", ["single", "flexible", "mixed"])
def test_example_results_match_direct_computation(name, plan_kind):
    """Every example workflow under every plan shape gives the directly computed result."""
    example = build_example(name)
    result = run_in_process(example.dag, plans_for(example.dag)[plan_kind], call_of(example))
    example.check(result.results)
    assert sorted(row["task_id"] for row in result.task_rows) == sorted(example.dag)


def precedence_holds(dag: DAG, rows: list[dict]) -> bool:
    by_id = {row["task_id"]: row for row in rows}
    return all(
        by_id[c]["exec_done_ms"] - (by_id[c]["exec_ms"]) >= by_id[p]["exec_done_ms"] - 1e-6
        for p, c in dag.edges
    )


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_sim_and_in_process_agree_on_structure(name):
    """On the same fixed plan, sim and in-process run the same tasks on the same workers, with
    the same uploads and invocations, each respecting every dependency."""
    example = build_example(name)
    plan = plans_for(example.dag)["mixed"]
    fixed = Plan(
        {t: Placement(p.worker_id or "w-flex", p.config) for t, p in plan.placements.items()}
    )
    real = run_in_process(example.dag, fixed, call_of(example))
    profiles = FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    simulated = simulate(example.dag, fixed, profiles, "aws-lambda", seed=1)
    real_workers = {row["task_id"]: row["worker_id"] for row in real.task_rows}
    sim_workers = dict(zip(simulated.tasks["task_id"], simulated.tasks["worker_id"], strict=True))
    assert real_workers == sim_workers
    assert sorted(real.uploads) == sorted(simulated.uploads)
    assert sorted(i.worker_id for i in real.invocations) == sorted(
        i.worker_id for i in simulated.invocations
    )
    assert precedence_holds(example.dag, real.task_rows)
    assert precedence_holds(example.dag, simulated.tasks.to_dict("records"))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_flexible_runs_execute_the_same_tasks(name):
    """With flexible workers (timing decides who runs a fan-in) both drivers run every task once."""
    example = build_example(name)
    plan = plans_for(example.dag)["flexible"]
    real = run_in_process(example.dag, plan, call_of(example))
    profiles = FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    simulated = simulate(example.dag, plan, profiles, "aws-lambda", seed=1)
    assert sorted(r["task_id"] for r in real.task_rows) == sorted(simulated.tasks["task_id"])
    assert precedence_holds(example.dag, real.task_rows)


def test_task_exception_reaches_the_client():
    """A raising task fails the run with an error naming the worker, and nothing hangs."""
    dag = DAG([Task("a", "f"), Task("b", "g", ("a",))])
    plan = Plan({"a": Placement("w1", CFG), "b": Placement("w2", CFG)})

    def call(task_id, inputs):
        if task_id == "a":
            raise ZeroDivisionError("boom in a")
        return 1

    with pytest.raises(WorkerFailed, match="w1.*boom in a"):
        InProcessDriver(dag, plan, call, wait_poll_ms=5).execute()


def test_none_results_flow_to_consumers():
    """A task returning None passes None to its consumer on another worker."""
    dag = DAG([Task("a", "f"), Task("b", "g", ("a",))])
    plan = Plan({"a": Placement("w1", CFG), "b": Placement("w2", CFG)})
    seen = []

    def call(task_id, inputs):
        seen.append(dict(inputs))
        return None

    result = run_in_process(dag, plan, call)
    assert result.results == {"b": None}
    assert seen == [{}, {"a": None}]


def test_inline_flags_give_the_direct_result_with_fewer_invocations_and_uploads():
    """Real functions under inline-subdag (all flexible) and small-results-inline (mixed plan):
    the direct result; the sub-DAG runs in one invocation, small outputs skip the store."""
    from dag import Optimization
    from worker.estimates import ProfileEstimates

    example = build_example("image_pipeline")
    profiles = FixedProfiles(example.dag, example.runtime_ms, example.output_bytes)
    estimates = ProfileEstimates(profiles)
    flags = {
        "flexible": Optimization("inline-subdag", params={"max_exec_ms": 100.0}),
        "mixed": Optimization("small-results-inline", params={"max_bytes": 96 * 1024}),
    }
    for kind, flag in flags.items():
        base = plans_for(example.dag)[kind]
        plain = run_in_process(example.dag, base, call_of(example), estimates=estimates)
        flagged = run_in_process(
            example.dag, base.with_optimizations([flag]), call_of(example), estimates=estimates
        )
        example.check(flagged.results)
        assert len(flagged.uploads) < len(plain.uploads)
        assert len(flagged.invocations) <= len(plain.invocations)
        if kind == "flexible":
            assert len(flagged.invocations) == 1 and flagged.uploads == ["out:merge_tiles-0"]
