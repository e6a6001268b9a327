"""Optimizations under real execution: whatever flags a plan carries, the results, counters and
stored outputs are those of the plain run (in-process driver, real functions)."""

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from profiles import DictProfiles
from strategies import dags

from dag import OPTIMIZATIONS, Optimization, Placement, Plan, ResourceConfig
from runtime.inprocess import InProcessDriver
from worker.effects import EFFECTS
from worker.estimates import ProfileEstimates
from worker.optimizations import OPTIMIZATION_EFFECTS
from worker.schedule import counter_key, output_key

CONFIGS = [ResourceConfig(1024), ResourceConfig(2048)]

FLAGS = {
    "pre-warm": lambda: Optimization("pre-warm", params={"config": CONFIGS[1], "at_ms": 0}),
    "pre-load": lambda: Optimization("pre-load"),
    "task-dup": lambda: Optimization("task-dup"),
    "output-streaming": lambda: Optimization("output-streaming", params={"chunk_bytes": 16}),
    "fan-out-clustering": lambda: Optimization(
        "fan-out-clustering", params={"max_exec_ms": 50, "min_input_bytes": 0}
    ),
    "fan-in-clustering": lambda: Optimization("fan-in-clustering", params={"min_output_bytes": 0}),
    "delayed-io": lambda: Optimization("delayed-io", params={"min_output_bytes": 0}),
    "inline-subdag": lambda: Optimization("inline-subdag", params={"max_exec_ms": 50}),
    "small-results-inline": lambda: Optimization(
        "small-results-inline", params={"max_bytes": 1024}
    ),
}


def test_every_flag_has_its_effects_listed():
    """The flag -> extra effects table covers every optimization with known effects."""
    assert set(OPTIMIZATION_EFFECTS) == set(OPTIMIZATIONS) == set(FLAGS)
    for effects in OPTIMIZATION_EFFECTS.values():
        assert set(effects) <= set(EFFECTS)


def digest(task_id, inputs):
    """A real function: a hash of the task id and its inputs (so results prove data flow)."""
    text = repr((task_id, sorted(inputs.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@st.composite
def flagged_runs(draw):
    dag = draw(dags(max_tasks=12))
    n_workers = draw(st.integers(1, 3))
    worker_configs = [draw(st.sampled_from(CONFIGS)) for _ in range(n_workers)]
    placements = {}
    for task_id in dag:
        choice = draw(st.integers(-1, n_workers - 1))
        placements[task_id] = (
            Placement(None, CONFIGS[0])
            if choice < 0
            else Placement(f"w{choice}", worker_configs[choice])
        )
    names = draw(st.sets(st.sampled_from(sorted(FLAGS))))
    exec_ms = {t: draw(st.floats(0, 100)) for t in dag}
    return dag, placements, [FLAGS[n]() for n in sorted(names)], exec_ms


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flagged_runs())
def test_any_flags_give_the_plain_results(run):
    """Any subset of optimizations: every sink's result equals the plain run's, every fan-in
    counter ends at its number of counted producers (none is kept for a fan-in run inside an
    inline sub-DAG), every output a consumer needed is stored (or carried inline)."""
    dag, placements, flags, exec_ms = run
    estimates = ProfileEstimates(DictProfiles(exec_ms, dict.fromkeys(dag, 64)))
    plain = InProcessDriver(dag, Plan(placements), digest, wait_poll_ms=5).execute()
    driver = InProcessDriver(
        dag, Plan(placements, flags), digest, estimates=estimates, wait_poll_ms=5
    )
    flagged = driver.execute()
    assert flagged.results == plain.results
    assert set(flagged.results) == set(dag.sinks)
    originals = [r["task_id"] for r in flagged.task_rows if not r["duplicated"]]
    assert sorted(originals) == sorted(dag)
    counters = driver.counters()
    schedule = driver.schedule
    for task_id in dag:
        if len(schedule.counted[task_id]) > 1 and task_id not in schedule.subdag_of:
            assert counters[counter_key(task_id)] == len(schedule.counted[task_id])
    stored = driver.stored_keys()
    assert {output_key(s) for s in dag.sinks} <= stored
    for producer, consumer in dag.edges:
        if placements[producer].worker_id is not None and placements[consumer].worker_id not in (
            None,
            placements[producer].worker_id,
        ):
            carried = "small-results-inline" in {f.name for f in flags}
            assert output_key(producer) in stored or carried
