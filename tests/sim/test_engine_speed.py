"""The engine's fast paths compute what the plain ones do: makespan-only runs, SimPy's loop,
timeless effects, counters, store commands."""

import gc

import pytest
import simpy
from profiles import DictProfiles

from dag import DAG, Placement, Plan, ResourceConfig, Task
from dag.examples import EXAMPLES
from planners import ProfilesPredictor, get_planner
from sim import Network, Platform
from sim.engine import TIMELESS, Environment, gc_paused, run_simulation
from sim.simulate import simulate
from worker import Schedule

CFG = ResourceConfig(1024)


@pytest.mark.parametrize("planner", ["uniform", "wukong", "octo"])
def test_makespan_only_run_matches_the_full_one(planner):
    """tables=False: every figure as with tables, and with_tables gives the same tables."""
    workflow = EXAMPLES["image_pipeline"](tiles=3)
    predictor = ProfilesPredictor.from_profiled(workflow)
    plan = get_planner(planner).plan(workflow.dag, predictor, "aws-lambda")
    full = simulate(workflow.dag, plan, predictor.profiles, "aws-lambda", seed=3)
    light = simulate(workflow.dag, plan, predictor.profiles, "aws-lambda", seed=3, tables=False)
    assert light.tasks is None and light.workers is None and not light.has_tables
    assert light.run_row(seed=3) == full.run_row(seed=3)
    assert light.critical_path == full.critical_path
    assert (light.n_events, light.n_store_commands) == (full.n_events, full.n_store_commands)
    built = light.with_tables()
    assert built.tasks.equals(full.tasks) and built.workers.equals(full.workers)
    assert full.with_tables() is full


def test_a_result_without_a_run_cannot_build_tables():
    """with_tables on a table-less result that holds no run is an error, not a silent None."""
    dag = DAG([Task("a", "f")])
    result = simulate(dag, Plan({"a": Placement(None, CFG)}), DictProfiles({"a": 1.0}, {"a": 0}))
    bare = type(result)(**{**result.__dict__, "tasks": None, "workers": None, "_tables": None})
    with pytest.raises(ValueError, match="no run"):
        bare.with_tables()


def _log_same_time_events(env):
    """Processes whose events tie in time; returns the order they run in."""
    log = []

    def proc(name, delays):
        for delay in delays:
            yield env.timeout(delay)
            log.append((env.now, name))
        urgent = env.event()
        urgent.succeed()
        yield urgent
        log.append((env.now, name, "after"))

    for i in range(4):
        env.process(proc(i, [1, 0, 2 - i % 2, 0]))
    env.run()
    return log


def test_environment_runs_events_in_simpys_order():
    """The engine's Environment processes the queue exactly as simpy.Environment does."""
    assert _log_same_time_events(Environment()) == _log_same_time_events(simpy.Environment())


def test_environment_run_until_is_simpys():
    """run(until) is SimPy's own: stops at the time given."""
    env = Environment()
    env.process(env.timeout(5) for _ in range(3))
    env.run(until=2)
    assert env.now == 2


def test_gc_is_paused_inside_and_restored_after():
    """gc_paused pauses the collector for its block and restores the state it found."""
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_timeless_effects_take_no_simulated_time():
    """Subscribe, Warmup and Now are performed on the spot, with no event of their own."""
    assert {t.__name__ for t in TIMELESS} == {"Subscribe", "Warmup", "Now"}


def test_store_command_and_publish_are_counted_plain_delays():
    """A store command and a publish: counted, and a plain delay of their latency."""
    env = simpy.Environment()
    network = Network(env, Platform(name="p", store_op_ms=0.8, pubsub_ms=1.0))
    command, message = network.store_command(), network.publish_message()
    assert isinstance(command, simpy.Timeout) and isinstance(message, simpy.Timeout)
    env.run()
    assert env.now == 1.0 and (network.n_store_ops, network.n_publishes) == (1, 1)
    free = Network(simpy.Environment(), Platform.preset("ideal"))
    assert free.store_command() is None and free.publish_message() is None


def test_a_fan_in_of_many_producers_counts_each_once():
    """A dependency counter past its small-list size still counts distinct producers."""
    n = 40
    tasks = [Task(f"p{i}", "f") for i in range(n)] + [
        Task("join", "g", tuple(f"p{i}" for i in range(n)))
    ]
    dag = DAG(tasks)
    plan = Plan({t: Placement(None, CFG) for t in dag})
    profiles = DictProfiles(dict.fromkeys(dag, 5.0), dict.fromkeys(dag, 10))
    driver = run_simulation(Schedule.build(dag, plan), profiles, Platform.preset("ideal"), 0)
    members = driver._counters["deps:join"]
    assert isinstance(members, set) and len(members) == n
    assert driver.recorder.executed() == set(dag)
