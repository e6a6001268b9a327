"""The worker logic, stepped by hand: the exact effects it yields for small plans."""

import pytest
from profiles import DictProfiles

from dag import DAG, Optimization, Placement, Plan, ResourceConfig, Task
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
from worker.estimates import ProfileEstimates

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


# -- inline-subdag and small-results-inline --------------------------------------------------


def flagged(tasks, placements, flags, exec_ms=None, outputs=()) -> Schedule:
    """A schedule with optimization flags; every task predicted at `exec_ms` (default 1 ms)."""
    dag = DAG(tasks)
    exec_ms = {t: 1.0 for t in dag} | dict(exec_ms or {})
    plan = Plan({t: Placement(w, CFG) for t, w in placements.items()}, flags)
    estimates = ProfileEstimates(DictProfiles(exec_ms, dict.fromkeys(dag, 8)))
    return Schedule.build(dag, plan, estimates, outputs)


INLINE = [Optimization("inline-subdag", frozenset({"a"}), {"max_exec_ms": 10})]
DIAMOND = [
    Task("a", "f"),
    Task("k1", "g", ("a",)),
    Task("k2", "g", ("a",)),
    Task("f", "h", ("k1", "k2")),
]


def test_inline_subdag_runs_the_fan_out_and_its_fan_in_here_without_io():
    """Below a flagged fan-out, the worker runs the children and their fan-in itself, from
    memory: no upload, count, claim or invoke on the way, only the sink's upload."""
    s = flagged(DIAMOND, dict.fromkeys(["a", "k1", "k2", "f"]), INLINE)
    assert s.subdags == {"a": ("k1", "k2", "f")}
    logic = run_worker(s, Invocation("flex-a", CFG, ("a",)))
    assert next(logic) == Execute(task_id="a")
    effect = logic.send(TaskOutput(1, 8))
    assert effect == Execute(task_id="k1") and effect.inputs == {"a": 1}
    effect = logic.send(TaskOutput(2, 8))
    assert effect == Execute(task_id="k2") and effect.inputs == {"a": 1}
    effect = logic.send(TaskOutput(3, 8))
    assert effect == Execute(task_id="f") and effect.inputs == {"k1": 2, "k2": 3}
    assert logic.send(TaskOutput(5, 8)) == Upload(key="out:f", value=5, nbytes=8, task_id="f")
    assert logic.send(None) == Publish(channel="done:f", task_id="f")
    with pytest.raises(StopIteration):
        logic.send(None)


def test_inline_subdag_stops_at_a_large_task_and_an_outside_fan_in():
    """A child predicted above the threshold gets a worker of its own (so the producer's
    output is uploaded for it), and a fan-in with a producer outside the sub-DAG is counted as
    usual by the inlined task that feeds it."""
    tasks = [
        Task("a", "f"),
        Task("x", "f"),
        Task("k1", "g", ("a",)),
        Task("k2", "g", ("a",)),
        Task("g", "h", ("k1", "x")),
    ]
    s = flagged(tasks, dict.fromkeys(["a", "x", "k1", "k2", "g"]), INLINE, {"k2": 500})
    assert s.subdags == {"a": ("k1",)}
    logic = run_worker(s, Invocation("flex-a", CFG, ("a",)))
    next(logic)
    assert logic.send(TaskOutput(1, 8)) == Upload(key="out:a", value=1, nbytes=8, task_id="a")
    assert logic.send(None) == SetIfAbsent(key="started:flex-k2", task_id="a")
    assert logic.send(True) == Invoke(
        worker_id="flex-k2", config=CFG, start_tasks=("k2",), task_id="a"
    )
    effect = logic.send(None)
    assert effect == Execute(task_id="k1") and effect.inputs == {"a": 1}
    assert logic.send(TaskOutput(2, 8)) == Upload(key="out:k1", value=2, nbytes=8, task_id="k1")
    assert logic.send(None) == Incr(counter="deps:g", member="k1", task_id="k1")
    with pytest.raises(StopIteration):
        logic.send(1)


def test_inline_subdag_needs_estimates():
    """Without estimates the plan is refused, naming the flagged task."""
    plan = Plan({t.id: Placement(None, CFG) for t in DIAMOND}, INLINE)
    with pytest.raises(ValueError, match="inline-subdag on task 'a'"):
        Schedule.build(DAG(DIAMOND), plan)


SMALL = [Optimization("small-results-inline", params={"max_bytes": 100})]
PAIR = [Task("a", "f"), Task("b", "g", ("a",))]


def test_small_output_travels_in_the_payload_of_a_flexible_consumer():
    """A small output is not uploaded: the invocation of its flexible consumer carries it (and
    its start claim keeps a copy for a retry); the consumer runs on it without a download."""
    s = flagged(PAIR, {"a": "w1", "b": None}, SMALL)
    logic = run_worker(s, Invocation("w1", CFG, ("a",)))
    next(logic)
    claim = logic.send(TaskOutput(7, 10))
    assert claim == SetIfAbsent(key="started:flex-b", task_id="a")
    assert claim.value == ("w1", "invoke", {"a": TaskOutput(7, 10)})
    invoke = logic.send(True)
    assert invoke == Invoke(worker_id="flex-b", config=CFG, start_tasks=("b",), task_id="a")
    assert invoke.inputs == {"a": TaskOutput(7, 10)} and invoke.payload_bytes == 10
    with pytest.raises(StopIteration):
        logic.send(None)
    consumer = run_worker(s, Invocation.from_effect(invoke))
    effect = next(consumer)
    assert effect == Execute(task_id="b") and effect.inputs == {"a": 7}


def test_small_output_travels_in_the_completion_message_to_a_fixed_consumer():
    """For a fixed consumer the COMPLETED message carries the output: the producer neither
    uploads it nor the consumer checks or downloads it; it waits and takes it from the message."""
    s = flagged(PAIR, {"a": "w1", "b": "w2"}, SMALL)
    logic = run_worker(s, Invocation("w1", CFG, ("a",)))
    next(logic)
    message = logic.send(TaskOutput(7, 10))
    assert message == Publish(channel="done:a", nbytes=10, task_id="a") and message.value == 7
    assert logic.send(None) == SetIfAbsent(key="started:w2", task_id="a")
    invoke = logic.send(True)
    assert invoke == Invoke(worker_id="w2", config=CFG, start_tasks=("b",), task_id="a")
    assert invoke.inputs == {}
    consumer = run_worker(s, Invocation("w2", CFG, ("b",)))
    assert next(consumer) == Subscribe(channel="done:a", task_id="b")
    assert consumer.send(None) == WaitFor(channel="done:a", task_id="b")
    effect = consumer.send(TaskOutput(7, 10))
    assert effect == Execute(task_id="b") and effect.inputs == {"a": 7}


def test_an_output_above_max_bytes_is_uploaded_and_downloaded_as_usual():
    """Above ``max_bytes`` the producer uploads and publishes a plain message; the consumer,
    finding no value in it, downloads."""
    s = flagged(PAIR, {"a": "w1", "b": "w2"}, SMALL)
    logic = run_worker(s, Invocation("w1", CFG, ("a",)))
    next(logic)
    assert logic.send(TaskOutput(7, 101)) == Upload(key="out:a", value=7, nbytes=101, task_id="a")
    assert logic.send(None) == Publish(channel="done:a", task_id="a")
    consumer = run_worker(s, Invocation("w2", CFG, ("b",)))
    next(consumer)
    consumer.send(None)  # WaitFor
    assert consumer.send(None) == Download(key="out:a", task_id="b")


def test_an_output_the_client_fetches_is_uploaded_whatever_its_size():
    """A task in the schedule's outputs (like every sink) is stored for the client."""
    s = flagged(PAIR, {"a": "w1", "b": "w2"}, SMALL, outputs=("a",))
    logic = run_worker(s, Invocation("w1", CFG, ("a",)))
    next(logic)
    assert logic.send(TaskOutput(7, 10)) == Upload(key="out:a", value=7, nbytes=10, task_id="a")
    assert logic.send(None) == Publish(channel="done:a", task_id="a")


def test_a_retry_reads_its_inline_inputs_back_from_its_start_claim():
    """A retried flexible worker, whose payload has no inputs, reads them from its claim."""
    s = flagged(PAIR, {"a": "w1", "b": None}, SMALL)
    logic = run_worker(s, Invocation("flex-b", CFG, ("b",), attempt=1))
    assert next(logic) == Get(key="started:flex-b", task_id="b")
    assert logic.send(("w1", "invoke", {"a": TaskOutput(7, 10)})) == Exists(
        key="out:b", task_id="b"
    )
    effect = logic.send(False)
    assert effect == Execute(task_id="b") and effect.inputs == {"a": 7}
