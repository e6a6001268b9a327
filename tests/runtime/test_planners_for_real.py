"""Every planner's plan runs for real (Redis + worker threads) and on the Lambda emulator."""

import pytest

from dag.examples import EXAMPLES, build_example
from planners import PLANNERS, ProfilesPredictor, get_planner
from runtime.client import run


def planned(name: str, planner: str):
    example = build_example(name)
    plan = get_planner(planner).plan(
        example.dag, ProfilesPredictor.from_profiled(example), "aws-lambda"
    )
    return example, plan


@pytest.mark.parametrize("planner", sorted(PLANNERS))
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_planner_runs_every_example_for_real(name, planner, redis_url):
    """Each planner's plan (with its optimizations) gives the direct result over real Redis."""
    example, plan = planned(name, planner)
    result = run(example, plan, redis_url=redis_url, timeout_s=60)
    example.check(result.results)
    originals = result.tasks[~result.tasks["duplicated"]]
    assert sorted(originals["task_id"]) == sorted(example.dag)
    assert result.runs["planner"].tolist() == [plan.planner]
