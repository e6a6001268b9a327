"""Profiles: fixed, replay, predict and sample modes."""

import pytest

from dag import DAG, ResourceConfig, Task
from traces import (
    FixedProfiles,
    LearnedPredictor,
    ProfileError,
    TraceSet,
    from_wfformat,
    make_profiles,
    synthetic_traces,
)
from traces.schema import make_frame


def chain() -> DAG:
    return DAG(
        [Task("a", "parse"), Task("b", "sort", ("a",)), Task("c", "render", ("a", "b"))],
        {("a", "c"): 5},
        name="chain",
    )


@pytest.fixture(scope="module")
def predictor():
    return LearnedPredictor().fit(synthetic_traces(n_runs=5, tasks_per_run=100, seed=2))


def test_fixed_profiles_inputs_and_scaling():
    """FixedProfiles: inputs sum upstream outputs (edge bytes win), exec scales by cpus power."""
    p = FixedProfiles(
        chain(), {"a": 100.0, "b": 50.0, "c": 10.0}, {"a": 7, "b": 3, "c": 1}, cpu_exponent=-1.0
    )
    assert p.input_bytes("a") == 0 and p.input_bytes("b") == 7 and p.input_bytes("c") == 5 + 3
    assert p.exec_ms("a", ResourceConfig(1024, 2.0)) == pytest.approx(50.0)
    assert p.function("c") == "render" and p.output_bytes("b") == 3


def test_fixed_profiles_missing_task():
    """A task missing from runtime_ms is an error naming it."""
    with pytest.raises(ProfileError, match="'c'"):
        FixedProfiles(chain(), {"a": 1.0, "b": 1.0}, {"a": 1, "b": 1, "c": 1})


def test_unknown_task_id():
    """Asking about a task not in the DAG names it."""
    p = FixedProfiles(chain(), {"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 1, "b": 1, "c": 1})
    with pytest.raises(ProfileError, match="zzz"):
        p.output_bytes("zzz")


def recorded() -> TraceSet:
    class Inst:
        dag = chain()
        runtime_ms = {"a": 100.0, "b": 40.0, "c": 10.0}
        output_bytes = {"a": 7, "b": 3, "c": 1}
        cores = {"a": 2.0}
        memory_bytes = {}
        name = "chain"

    return from_wfformat(Inst(), run_id="r1")


def test_replay_uses_recorded_values():
    """Replay returns the recorded exec time at the recorded config and the recorded sizes."""
    p = make_profiles(chain(), "replay", traces=recorded(), cpu_exponent=-1.0)
    assert p.exec_ms("a", ResourceConfig(1769, 2.0)) == pytest.approx(100.0)
    assert p.exec_ms("a", ResourceConfig(1769, 4.0)) == pytest.approx(50.0)
    assert p.output_bytes("b") == 3 and p.input_bytes("c") == 8


def test_replay_missing_task_names_it_and_hash():
    """Replay of a task with no recorded row names the task and the dag_hash."""
    ts = recorded()
    tasks = ts.tasks[ts.tasks["task_id"] != "b"].reset_index(drop=True)
    partial = TraceSet(tasks, ts.workers, ts.runs)
    with pytest.raises(ProfileError, match=f"'b'.*{chain().dag_hash}"):
        make_profiles(chain(), "replay", traces=partial)


def test_predict_propagates_sizes(predictor):
    """Predict mode feeds each task's predicted output into its consumers' input bytes."""
    p = make_profiles(chain(), "predict", predictor=predictor, source_input_bytes={"a": 10**6})
    assert p.input_bytes("a") == 10**6
    assert p.input_bytes("b") == p.output_bytes("a")
    assert p.input_bytes("c") == 5 + p.output_bytes("b")
    assert p.exec_ms("b", ResourceConfig(1769)) == pytest.approx(
        predictor.exec_ms("sort", p.input_bytes("b"), ResourceConfig(1769))
    )


def test_sample_same_seed_same_profiles(predictor):
    """Sample mode: the same seed gives the same profiles bit for bit; another seed differs."""
    cfg = ResourceConfig(1024)
    runs = [
        make_profiles(
            chain(), "sample", predictor=predictor, seed=s, source_input_bytes={"a": 10**6}
        )
        for s in (1, 1, 2)
    ]
    values = [[p.exec_ms(t, cfg) for t in "abc"] + [p.output_bytes(t) for t in "abc"] for p in runs]
    assert values[0] == values[1] and values[0] != values[2]


def test_bad_mode():
    """An unknown mode is a ValueError naming it."""
    with pytest.raises(ValueError, match="psychic"):
        make_profiles(chain(), "psychic")


def test_replay_prefers_original_over_duplicate():
    """With a duplicated execution recorded, replay uses the original one."""
    ts = recorded()
    dup = ts.tasks.iloc[[0]].assign(
        duplicated=True, exec_ms=999.0, exec_done_ms=999.0, end_ms=999.0
    )
    import pandas as pd

    tasks = make_frame("tasks", pd.concat([ts.tasks, dup], ignore_index=True).to_dict("list"))
    p = make_profiles(
        chain(), "replay", traces=TraceSet(tasks, ts.workers, ts.runs), cpu_exponent=0.0
    )
    assert p.exec_ms("a", ResourceConfig(1024)) == 100.0
