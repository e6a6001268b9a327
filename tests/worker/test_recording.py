"""TraceRecorder: effect timings in columns, the same rows out as before, counts per kind."""

import math

import pytest

from dag import DAG, Placement, Plan, ResourceConfig, Task
from worker import Schedule
from worker.effects import (
    Download,
    Execute,
    Exists,
    Incr,
    Invoke,
    Publish,
    StreamUpload,
    Subscribe,
    Upload,
)
from worker.recording import CLIENT, TASK_FIELDS, WORKER_FIELDS, TraceRecorder

CFG = ResourceConfig(1024)


def _recorder() -> TraceRecorder:
    dag = DAG([Task("a", "f"), Task("b", "g", ("a",)), Task("c", "h", ("a", "b"))])
    plan = Plan({"a": Placement("w1", CFG), "b": Placement("w2", CFG), "c": Placement("w1", CFG)})
    return TraceRecorder(Schedule.build(dag, plan))


def _run_three_tasks() -> TraceRecorder:
    """a on w1 (cold), b on w2 (warm) after downloading a, c on w1 after downloading b."""
    rec = _recorder()
    rec.worker_started("w1", CFG, startup="cold", startup_ms=100.0, invoked_ms=0.0, ready_ms=100.0)
    rec.effect("w1", Execute(task_id="a"), 100.0, 110.0, 2_000)
    rec.effect("w1", Upload(key="out:a", value=None, nbytes=2_000, task_id="a"), 110.0, 114.0)
    rec.effect("w1", Incr(counter="deps:c", member="a", task_id="a"), 114.0, 115.0)
    rec.effect("w1", Invoke(worker_id="w2", config=CFG, start_tasks=("b",), task_id="a"), 115, 116)
    rec.worker_started("w2", CFG, startup="warm", startup_ms=10.0, invoked_ms=115.0, ready_ms=126.0)
    rec.effect("w2", Download(key="out:a", task_id="b"), 126.0, 130.0, 2_000)
    rec.effect("w2", Execute(task_id="b"), 130.0, 150.0, 500)
    rec.effect("w2", Upload(key="out:b", value=None, nbytes=500, task_id="b"), 150.0, 151.0)
    rec.effect("w2", Publish(channel="done:b", task_id="b"), 151.0, 152.0)
    rec.worker_ended("w2", 152.0)
    rec.effect("w1", Subscribe(channel="done:b", task_id="c"), 116.0, 116.0)
    rec.effect("w1", Exists(key="out:b", task_id="c"), 116.0, 117.0)
    rec.effect("w1", Download(key="out:b", task_id="c"), 152.0, 153.0, 500)
    rec.effect("w1", Execute(task_id="c"), 153.0, 160.0, 10)
    rec.effect("w1", Upload(key="out:c", value=None, nbytes=10, task_id="c"), 160.0, 161.0)
    rec.worker_ended("w1", 161.0)
    return rec


def test_rows_have_the_trace_fields_in_topological_order():
    """One row per execution, tasks in topological order, every trace field present."""
    rows = _run_three_tasks().task_rows()
    assert [r["task_id"] for r in rows] == ["a", "b", "c"]
    assert all(tuple(r) == TASK_FIELDS for r in rows)


def test_a_row_adds_up_its_effects():
    """Start, ready, exec, upload, coordination and bytes of one task come from its effects."""
    rows = {r["task_id"]: r for r in _run_three_tasks().task_rows()}
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["startup"], a["startup_ms"], a["exec_ms"], a["upload_ms"]) == ("cold", 100.0, 10, 4)
    assert (a["dc_ms"], a["end_ms"], a["output_bytes"]) == (2.0, 116, 2_000)
    assert (b["startup"], b["ready_ms"], b["start_ms"], b["inputs_done_ms"]) == (
        "warm",
        114.0,
        126.0,
        130.0,
    )
    assert (b["download_bytes"], b["input_bytes"], b["download_ms"]) == (2_000, 2_000, 4.0)
    # c reads a from w1's memory (ready at a's exec end) and b from the store (its upload).
    assert (c["startup"], c["ready_ms"], c["input_bytes"], c["dc_ms"]) == ("none", 151.0, 2500, 0)


def test_columns_hold_the_rows_whole():
    """`task_columns` and `worker_columns` are `task_rows` and `worker_rows` by column."""
    rec = _run_three_tasks()
    for rows, columns, fields in (
        (rec.task_rows(), rec.task_columns(), TASK_FIELDS),
        (rec.worker_rows(), rec.worker_columns(), WORKER_FIELDS),
    ):
        assert list(columns) == list(fields)
        for name in fields:
            assert [r[name] for r in rows] == list(columns[name])


def test_worker_rows_bill_from_start_up_to_end():
    """billed_ms runs from the start of the start-up to the end, rounded up to the grain."""
    rows = {r["worker_id"]: r for r in _run_three_tasks().worker_rows()}
    assert rows["w1"]["billed_ms"] == 161.0 and rows["w2"]["billed_ms"] == 36.0


def test_counts_leave_out_the_client():
    """Store commands and publishes of workers are counted, the client's are not."""
    rec = _run_three_tasks()
    rec.effect(CLIENT, Exists(key="out:c"), 161.0, 162.0)
    rec.effect(CLIENT, Download(key="out:c"), 162.0, 163.0, 10)
    assert (rec.n_store_commands, rec.n_publishes) == (7, 1)


def test_parallel_downloads_count_their_union():
    """Overlapping downloads of one task count once in download_ms; bytes add up."""
    rec = _recorder()
    rec.effect("w1", Execute(task_id="a"), 0.0, 1.0)
    rec.effect("w2", Execute(task_id="b"), 0.0, 1.0)
    for start, end in ((5.0, 9.0), (2.0, 6.0), (12.0, 13.0)):
        rec.effect("w1", Download(key="x", task_id="c"), start, end, 100)
    rec.effect("w1", Execute(task_id="c"), 13.0, 20.0)
    row = rec.task_rows()[-1]
    assert (row["download_ms"], row["download_bytes"], row["start_ms"]) == (8.0, 300, 2.0)


def test_a_duplicate_gets_its_own_row_and_the_first_run_counts():
    """A task-dup copy is a second row (flagged); the makespan counts the earlier end."""
    rec = _recorder()
    rec.effect("w1", Execute(task_id="a"), 0.0, 5.0)
    rec.effect("w1", Execute(task_id="b", duplicate=True), 5.0, 9.0)
    rec.effect("w2", Execute(task_id="b"), 3.0, 12.0)
    rec.effect("w1", Execute(task_id="c"), 9.0, 10.0)
    rows = rec.task_rows()
    assert [(r["task_id"], r["worker_id"], r["duplicated"]) for r in rows] == [
        ("a", "w1", False),
        ("b", "w1", True),
        ("b", "w2", False),
        ("c", "w1", False),
    ]
    end, done = rec.completion_ms()
    assert (end["b"], done["b"]) == (9.0, 9.0)
    assert rec.makespan_ms() == 10.0 and rec.executed() == {"a", "b", "c"}


def test_a_retried_worker_keeps_one_row_with_the_new_attempt():
    """worker_started again for the same id (a retry) overwrites its row in place."""
    rec = _recorder()
    rec.worker_started("w1", CFG, startup="cold", startup_ms=1.0, invoked_ms=0.0, ready_ms=1.0)
    rec.worker_started("w2", CFG, startup="cold", startup_ms=1.0, invoked_ms=0.0, ready_ms=1.0)
    rec.worker_started(
        "w1", CFG, startup="warm", startup_ms=2.0, invoked_ms=5.0, ready_ms=7.0, attempt=1
    )
    rec.worker_ended("w1", 9.0)
    rec.worker_ended("w2", 3.0)
    rows = rec.worker_rows()
    assert [(r["worker_id"], r["startup"], r["invoked_ms"]) for r in rows] == [
        ("w1", "warm", 5.0),
        ("w2", "cold", 0.0),
    ]
    assert rec.n_workers == 2


def test_streamed_uploads_are_flagged():
    """An output uploaded as a stream marks its row streamed."""
    rec = _recorder()
    rec.effect("w1", Execute(task_id="a"), 0.0, 1.0)
    rec.effect(
        "w1", StreamUpload(key="out:a", value=None, nbytes=10, chunk_bytes=4, task_id="a"), 1, 3
    )
    (row,) = rec.task_rows()
    assert row["streamed"] and row["upload_ms"] == 2


def test_many_executions_grow_the_columns():
    """Columns grow by blocks as executions come: thousands of slots, each kept apart."""
    n = 3000
    dag = DAG([Task(f"t{i}", "f") for i in range(n)])
    rec = TraceRecorder(Schedule.build(dag, Plan({t: Placement(None, CFG) for t in dag})))
    for i in range(n):
        rec.effect(f"flex-t{i}", Execute(task_id=f"t{i}"), float(i), float(i) + 0.5, i)
    columns = rec.task_columns()
    assert list(columns["output_bytes"]) == list(range(n))
    assert list(columns["exec_ms"]) == [0.5] * n
    assert math.isclose(rec.makespan_ms(), n - 0.5)


def test_for_effect_is_what_effect_calls():
    """The function `for_effect` gives records exactly as `effect` does."""
    by_effect, by_function = _recorder(), _recorder()
    effects = [
        ("w1", Execute(task_id="a"), 0.0, 2.0, 7),
        ("w1", Upload(key="out:a", value=None, nbytes=7, task_id="a"), 2.0, 3.0, 7),
        ("w1", Publish(channel="done:a", task_id="a"), 3.0, 4.0, 0),
    ]
    for worker_id, effect, start, end, nbytes in effects:
        by_effect.effect(worker_id, effect, start, end, nbytes)
        by_function.for_effect(type(effect))(worker_id, effect, start, end, nbytes)
    assert by_effect.task_rows() == by_function.task_rows()
    assert (by_effect.n_store_commands, by_effect.n_publishes) == (1, 1)
    assert (by_function.n_store_commands, by_function.n_publishes) == (1, 1)


@pytest.mark.parametrize("table", ["tasks", "workers"])
def test_an_empty_run_has_empty_columns(table):
    """A recorder that saw nothing gives columns with no entries."""
    rec = _recorder()
    columns = rec.task_columns() if table == "tasks" else rec.worker_columns()
    assert all(len(values) == 0 for values in columns.values())
