"""octo: optimizations kept only when what-if simulation says they pay."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from profiles import DictProfiles
from strategies import dags

from dag import DAG, Placement, Plan, ResourceConfig, Task
from planners import ProfilesPredictor, get_planner, prewarm_flags
from planners.base import Context, as_configs, as_platform
from sim.simulate import simulate

MB = 1 << 20


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags(max_tasks=10), st.data())
def test_octo_never_worse_than_its_base(dag, data):
    """octo's predicted makespan never exceeds its base plan's, nor its cost beyond tolerance."""
    exec_ms = {t: data.draw(st.floats(1, 500)) for t in dag}
    out = {t: data.draw(st.integers(0, 20 * MB)) for t in dag}
    predictor = ProfilesPredictor(DictProfiles(exec_ms, out))
    base = get_planner("non-uniform").plan(dag, predictor, "aws-lambda")
    octo = get_planner("octo").plan(dag, predictor, "aws-lambda")
    assert octo.placements == base.placements
    assert octo.predicted.makespan_ms <= base.predicted.makespan_ms + 1e-9
    assert octo.predicted.cost_usd <= base.predicted.cost_usd * 1.01 + 1e-12


def test_octo_prediction_is_the_simulation_of_its_plan():
    """The kept flags are part of the plan that was simulated for the stored timeline."""
    dag = DAG([Task(f"t{i}", "f", (f"t{i - 1}",) if i else ()) for i in range(4)])
    profiles = DictProfiles(dict.fromkeys(dag, 400.0), dict.fromkeys(dag, 1000))
    plan = get_planner("octo:base=heft").plan(dag, ProfilesPredictor(profiles), "aws-lambda")
    again = simulate(dag, plan, profiles, "aws-lambda", 0)
    assert again.makespan_ms == plan.predicted.makespan_ms


def test_prewarm_is_timed_to_hide_a_late_cold_start():
    """A worker invoked late and cold gets a warm-up ending just before its invocation."""
    c1, c2 = ResourceConfig(1024), ResourceConfig(2048)
    dag = DAG([Task("a", "f"), Task("b", "g", ("a",))])
    profiles = DictProfiles({"a": 2000.0, "b": 10.0}, {"a": 100, "b": 100})
    plan = Plan({"a": Placement("w1", c1), "b": Placement("w2", c2)})
    ctx = Context(dag, profiles, as_platform("aws-lambda"), as_configs([c1, c2]), 0, "octo")
    timeline = ctx.evaluate(plan)
    (flag,) = prewarm_flags(ctx, plan, timeline)
    assert flag.params["config"] == c2
    b = timeline.tasks.loc["b"]
    assert 0 < flag.params["at_ms"] < b["start_ms"] - b["startup_ms"] - 250
    warmed = simulate(dag, plan.with_optimizations([flag]), profiles, "aws-lambda", 0)
    assert warmed.makespan_ms < timeline.makespan_ms - 200
    assert set(warmed.workers["startup"]) == {"cold", "prewarmed"}
