"""Plan: placements, optimization flags and validation against a DAG."""

import pytest

from dag import DAG, Optimization, Placement, Plan, PlanError, ResourceConfig, Task

SMALL, BIG = ResourceConfig(512), ResourceConfig(2048)


def chain() -> DAG:
    return DAG([Task("a", "f"), Task("b", "g", ("a",))])


def test_valid_plan():
    """A plan placing every task, one config per worker, validates."""
    plan = Plan({"a": Placement("w1", SMALL), "b": Placement(None, BIG)})
    assert plan.validate(chain()) is plan
    assert plan.workers() == {"w1": SMALL}


def test_unplaced_task_named():
    """A task without placement is named."""
    with pytest.raises(PlanError, match="'b'"):
        Plan({"a": Placement("w1", SMALL)}).validate(chain())


def test_unknown_task_named():
    """A placement for a task not in the DAG is named."""
    plan = Plan(
        {"a": Placement("w", SMALL), "b": Placement("w", SMALL), "zz": Placement("w", SMALL)}
    )
    with pytest.raises(PlanError, match="'zz'"):
        plan.validate(chain())


def test_worker_with_two_configs_named():
    """One worker id with two configs names the worker and both tasks."""
    plan = Plan({"a": Placement("w1", SMALL), "b": Placement("w1", BIG)})
    with pytest.raises(PlanError, match="'w1'.*'a'.*'b'"):
        plan.validate(chain())


def test_optimization_flags():
    """Flags apply to named tasks only; unknown names and params are rejected."""
    dup = Optimization("task-dup", frozenset({"b"}))
    plan = Plan({"a": Placement("w1", SMALL), "b": Placement("w2", SMALL)}, [dup])
    assert plan.enabled("task-dup", "b") is dup
    assert plan.enabled("task-dup", "a") is None
    with pytest.raises(PlanError, match="'teleport'"):
        Optimization("teleport")
    with pytest.raises(PlanError, match="'speed'"):
        Optimization("pre-load", params={"speed": 1})
    with pytest.raises(PlanError, match="'q'"):
        Plan(plan.placements, [Optimization("pre-load", frozenset({"q"}))]).validate(chain())


def test_plan_pickles():
    """A plan with optimizations survives pickling."""
    import pickle

    plan = Plan(
        {"a": Placement("w1", SMALL), "b": Placement(None, BIG)},
        [Optimization("task-dup", frozenset({"b"}), {"min_gain_ms": 5})],
        planner="x",
    )
    back = pickle.loads(pickle.dumps(plan))
    assert back == plan and back.planner == "x"


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("inline-subdag", {"max_exec_ms": -1}, "max_exec_ms=-1"),
        ("inline-subdag", {"max_exec_ms": float("nan")}, "max_exec_ms=nan"),
        ("small-results-inline", {"max_bytes": 96 * 1024 + 1}, "0..98304"),
        ("small-results-inline", {"max_bytes": 1.5}, "max_bytes=1.5"),
    ],
)
def test_inline_flag_thresholds_are_checked(name, params, match):
    """A threshold of an inline flag that is negative, not a number, or (max_bytes) above what
    a Lambda payload can carry is refused, naming the flag and the parameter."""
    with pytest.raises(PlanError, match=f"'{name}'.*{match}"):
        Optimization(name, params=params)
    assert Optimization(name, params={next(iter(params)): 0}).params
