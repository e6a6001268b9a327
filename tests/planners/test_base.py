"""Predictor normalisation, what-if evaluation and config handling."""

import pytest
from profiles import DictProfiles

from dag import DAG, Placement, Plan, ResourceConfig, Task, layered_dag
from planners import PlannerError, ProfilesPredictor, evaluate, get_planner, predicted_profiles
from traces import LearnedPredictor, synthetic_traces
from traces.profiles import TaskProfiles


def _chain():
    return DAG([Task("a", "parse"), Task("b", "sort", ("a",)), Task("c", "aggregate", ("b",))])


def test_profiles_predictor_refuses_another_dag():
    """Profiles of one DAG are not used to plan another."""
    workflow = layered_dag(10, seed=1)
    predictor = ProfilesPredictor.from_profiled(workflow)
    with pytest.raises(PlannerError, match="profiles of DAG"):
        predictor.profiles_for(layered_dag(11, seed=1).dag)


def test_fitted_predictor_gives_predict_mode_profiles():
    """A fitted predictor is turned into predict-mode TaskProfiles of the DAG."""
    predictor = LearnedPredictor().fit(synthetic_traces(n_runs=3, tasks_per_run=60, seed=1))
    profiles = predicted_profiles(_chain(), predictor)
    assert isinstance(profiles, TaskProfiles)
    plan = get_planner("uniform").plan(_chain(), predictor, "ideal")
    assert plan.predicted.makespan_ms > 0


def test_plain_profiles_and_callables_are_accepted():
    """Bare profiles (wrapped) and callables dag -> profiles both serve as predictors."""
    dag = _chain()
    profiles = DictProfiles(dict.fromkeys(dag, 10.0), dict.fromkeys(dag, 0))
    by_wrapper = get_planner("uniform").plan(dag, ProfilesPredictor(profiles, dag), "ideal")
    by_callable = get_planner("uniform").plan(dag, lambda _dag: profiles, "ideal")
    assert by_wrapper.predicted.makespan_ms == by_callable.predicted.makespan_ms == 30.0


def test_bad_predictor_is_refused():
    """Something that is no kind of predictor raises PlannerError naming its type."""
    with pytest.raises(PlannerError, match="int"):
        get_planner("uniform").plan(_chain(), 42)


def test_bad_config_is_named():
    """An unreadable candidate config raises PlannerError quoting it."""
    dag = _chain()
    profiles = DictProfiles(dict.fromkeys(dag, 1.0), dict.fromkeys(dag, 0))
    with pytest.raises(PlannerError, match="'lots'"):
        get_planner("uniform").plan(dag, ProfilesPredictor(profiles, dag), configs=["lots"])


def test_evaluate_is_a_what_if_simulation():
    """`evaluate` predicts any plan, e.g. one hand-written, by simulation."""
    dag = _chain()
    profiles = DictProfiles({"a": 1.0, "b": 2.0, "c": 3.0}, dict.fromkeys(dag, 0))
    plan = Plan({t: Placement("w", ResourceConfig(1024)) for t in dag})
    timeline = evaluate(dag, plan, profiles, "ideal")
    assert timeline.makespan_ms == 6.0
    assert timeline.critical_path == ("a", "b", "c")
    assert timeline.task("c")["end_ms"] == 6.0


def test_compare_planners_tabulates_predictions():
    """compare_planners gives one row per planner with its predicted makespan and cost."""
    from planners import compare_planners

    workflow = layered_dag(15, seed=2)
    table = compare_planners(
        workflow.dag, ProfilesPredictor.from_profiled(workflow), ["uniform", "dask:workers=2"]
    )
    assert list(table["planner"]) == ["uniform", "dask:workers=2"]
    assert (table["makespan_ms"] > 0).all() and (table["cost_usd"] > 0).all()
