"""The worker logic, stepped by hand: the exact effects it yields for small plans."""

import pytest

from dag import DAG, Placement, Plan, ResourceConfig, Task
from worker import (
    Download,
    Execute,
    Exists,
    Get,
    Incr,
    Invocation,
    Invoke,
    Parallel,
    Publish,
    Schedule,
    SetIfAbsent,
    Subscribe,
    TaskOutput,
    Upload,
    WaitFor,
    run_client,
    run_worker,
)
from worker.branch import PlanViolation

CFG = ResourceConfig(1024)


def schedule(tasks, placements) -> Schedule:
    dag = DAG(tasks)
    return Schedule.build(dag, Plan({t: Placement(w, CFG) for t, w in placements.items()}))


def test_fixed_chain_runs_locally_and_uploads_only_the_sink():
    """A chain on one fixed worker executes in order and uploads only its sink's output."""
    s = schedule([Task("a", "f"), Task("b", "g", ("a",))], {"a": "w", "b": "w"})
    logic = run_worker(s, Invocation("w", CFG, ("a",)))
    assert next(logic) == Execute(task_id="a")
    effect = logic.send(TaskOutput(1, 10))
    assert effect == Execute(task_id="b")
    assert effect.inputs == {"a": 1}
    assert logic.send(TaskOutput(2, 20)) == Upload(key="out:b", value=2, nbytes=20, task_id="b")
    assert logic.send(None) == Publish(channel="done:b", task_id="b")
    with pytest.raises(StopIteration):
        logic.send(None)


def test_fixed_worker_waits_for_missing_remote_input():
    """A remote input that is not stored yet is subscribed, checked, waited for, downloaded."""
    s = schedule([Task("a", "f"), Task("b", "g", ("a",))], {"a": "w1", "b": "w2"})
    logic = run_worker(s, Invocation("w2", CFG, ("b",)))
    assert next(logic) == Subscribe(channel="done:a", task_id="b")
    assert logic.send(None) == Exists(key="out:a", task_id="b")
    assert logic.send(False) == WaitFor(channel="done:a", task_id="b")
    assert logic.send(None) == Download(key="out:a", task_id="b")
    effect = logic.send("A")
    assert effect == Execute(task_id="b") and effect.inputs == {"a": "A"}


def test_stored_remote_input_is_not_waited_for():
    """When the input already exists the worker downloads it without waiting."""
    s = schedule([Task("a", "f"), Task("b", "g", ("a",))], {"a": "w1", "b": "w2"})
    logic = run_worker(s, Invocation("w2", CFG, ("b",)))
    next(logic)
    logic.send(None)
    assert logic.send(True) == Download(key="out:a", task_id="b")


def test_producer_starts_consumer_worker_once():
    """After uploading, a producer sets the consumer worker's started flag and invokes it if first."""
    s = schedule([Task("a", "f"), Task("b", "g", ("a",))], {"a": "w1", "b": "w2"})
    logic = run_worker(s, Invocation("w1", CFG, ("a",)))
    next(logic)
    assert logic.send(TaskOutput(None, 5)) == Upload(key="out:a", value=None, nbytes=5, task_id="a")
    assert logic.send(None) == Publish(channel="done:a", task_id="a")
    assert logic.send(None) == SetIfAbsent(key="started:w2", task_id="a")
    assert logic.send(True) == Invoke(worker_id="w2", config=CFG, start_tasks=("b",), task_id="a")
    with pytest.raises(StopIteration):
        logic.send(None)


def test_already_started_consumer_worker_is_not_invoked():
    """A lost set-if-absent race means the consumer worker runs already: no invoke."""
    s = schedule([Task("a", "f"), Task("b", "g", ("a",))], {"a": "w1", "b": "w2"})
    logic = run_worker(s, Invocation("w1", CFG, ("a",)))
    next(logic)
    logic.send(TaskOutput(None, 5))
    logic.send(None)
    logic.send(None)
    with pytest.raises(StopIteration):
        logic.send(False)


FAN_IN = [Task("a", "f"), Task("b", "f"), Task("c", "g", ("a", "b"))]


def test_fan_in_not_last_stops_after_counting():
    """A flexible producer that does not complete the fan-in uploads, counts and stops."""
    s = schedule(FAN_IN, {"a": None, "b": None, "c": None})
    logic = run_worker(s, Invocation("flex-a", CFG, ("a",)))
    next(logic)
    assert logic.send(TaskOutput(1, 8)) == Upload(key="out:a", value=1, nbytes=8, task_id="a")
    assert logic.send(None) == Incr(counter="deps:c", member="a", task_id="a")
    with pytest.raises(StopIteration):
        logic.send(1)


def test_fan_in_last_continues_with_the_consumer():
    """The producer whose increment completes the fan-in runs the consumer, downloading the rest."""
    s = schedule(FAN_IN, {"a": None, "b": None, "c": None})
    logic = run_worker(s, Invocation("flex-a", CFG, ("a",)))
    next(logic)
    logic.send(TaskOutput(1, 8))
    logic.send(None)
    assert logic.send(2) == SetIfAbsent(key="started:flex-c", task_id="a")
    assert logic.send(True) == Download(key="out:b", task_id="c")
    effect = logic.send(2)
    assert effect == Execute(task_id="c") and effect.inputs == {"a": 1, "b": 2}


def test_counter_above_in_degree_is_a_contract_violation():
    """A count above the number of producers raises, naming the task and worker."""
    s = schedule(FAN_IN, {"a": None, "b": None, "c": None})
    logic = run_worker(s, Invocation("flex-a", CFG, ("a",)))
    next(logic)
    logic.send(TaskOutput(1, 8))
    logic.send(None)
    with pytest.raises(PlanViolation, match="'c'.*flex-a"):
        logic.send(3)


def test_flexible_fan_out_keeps_one_child_and_invokes_the_rest():
    """At a fan-out a flexible worker continues with the first child and invokes the others."""
    s = schedule(
        [Task("a", "f"), Task("b", "g", ("a",)), Task("c", "g", ("a",))],
        {"a": None, "b": None, "c": None},
    )
    logic = run_worker(s, Invocation("flex-a", CFG, ("a",)))
    next(logic)
    assert logic.send(TaskOutput(0, 3)) == Upload(key="out:a", value=0, nbytes=3, task_id="a")
    assert logic.send(None) == SetIfAbsent(key="started:flex-c", task_id="a")
    assert logic.send(True) == Invoke(
        worker_id="flex-c", config=CFG, start_tasks=("c",), task_id="a"
    )
    effect = logic.send(None)
    assert effect == Execute(task_id="b") and effect.inputs == {"a": 0}


def test_none_result_is_uploaded_as_a_value():
    """A task returning None still uploads (None is a result, not a missing output)."""
    s = schedule([Task("a", "f")], {"a": "w"})
    logic = run_worker(s, Invocation("w", CFG, ("a",)))
    next(logic)
    assert logic.send(TaskOutput(None, 4)) == Upload(key="out:a", value=None, nbytes=4, task_id="a")


def test_client_starts_initial_workers_and_waits_for_sinks():
    """The client claims and invokes the fixed workers and flexible sources, then waits."""
    s = schedule(
        [Task("a", "f"), Task("b", "f"), Task("c", "g", ("a", "b"))],
        {"a": "w", "b": None, "c": "w"},
    )
    logic = run_client(s)
    assert next(logic) == Parallel(
        (SetIfAbsent(key="started:w"), SetIfAbsent(key="started:flex-b"))
    )
    assert logic.send([True, True]) == Parallel(
        (
            Invoke(worker_id="w", config=CFG, start_tasks=("a",)),
            Invoke(worker_id="flex-b", config=CFG, start_tasks=("b",)),
        )
    )
    assert logic.send([None, None]) == Subscribe(channel="done:c")
    assert logic.send(None) == Exists(key="out:c")
    assert logic.send(True) == Download(key="out:c")
    with pytest.raises(StopIteration) as stop:
        logic.send("C")
    assert stop.value.value == {"c": "C"}


def test_a_retry_reads_back_a_stored_output_instead_of_running_it():
    """A retried worker downloads an output its lost attempt stored, never re-executing it."""
    s = schedule([Task("a", "f"), Task("b", "g", ("a",))], {"a": "w", "b": "w"})
    logic = run_worker(s, Invocation("w", CFG, ("a",), attempt=1))
    assert next(logic) == Exists(key="out:a", task_id="a")
    assert logic.send(False) == Execute(task_id="a")
    assert logic.send(TaskOutput(1, 8)) == Exists(key="out:b", task_id="b")
    assert logic.send(True) == Download(key="out:b", task_id="b")
    assert logic.send(2) == Publish(channel="done:b", task_id="b")  # stored: no second upload
    with pytest.raises(StopIteration):
        logic.send(None)


def test_a_retry_resumes_the_fan_in_it_had_claimed():
    """A retry that finds its own 'take' claim on a fan-in runs it; another's claim it leaves."""
    s = schedule(FAN_IN, {"a": None, "b": None, "c": None})
    for owner, resumes in ((("flex-a", "take"), True), (("flex-b", "take"), False)):
        logic = run_worker(s, Invocation("flex-a", CFG, ("a",), attempt=1))
        next(logic)  # Exists(out:a)
        logic.send(False)
        logic.send(TaskOutput(1, 8))
        logic.send(None)
        assert logic.send(2) == SetIfAbsent(key="started:flex-c", task_id="a")
        assert logic.send(False) == Get(key="started:flex-c", task_id="a")
        if resumes:
            assert logic.send(owner) == Exists(key="out:c", task_id="c")
        else:
            with pytest.raises(StopIteration):
                logic.send(owner)
