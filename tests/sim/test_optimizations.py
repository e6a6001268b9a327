"""Each optimization on the simulator: a scenario where it must help (and the trace shows it
acted) and one where its condition does not hold, so it must change nothing."""

import pytest
from profiles import DictProfiles

from dag import DAG, Optimization, Placement, Plan, ResourceConfig, Task
from sim import Platform
from sim.simulate import simulate

MB = 1 << 20
C1, C2, C3 = ResourceConfig(1024), ResourceConfig(2048), ResourceConfig(3008)
PLATFORM = Platform.preset("aws-lambda").with_overrides(cold_start_sigma=0.0)


def run(tasks, placements, exec_ms, out, flags=()):
    dag = DAG(tasks)
    plan = Plan({t: Placement(*placements[t]) for t in dag}, flags)
    return simulate(dag, plan, DictProfiles(exec_ms, out), PLATFORM, seed=0)


def pair(tasks, placements, exec_ms, out, flags):
    """The same run without and with the flags."""
    return run(tasks, placements, exec_ms, out), run(tasks, placements, exec_ms, out, flags)


def assert_unchanged_but_bookkeeping(base, optimized):
    """Makespan unchanged, up to the few store round trips the flag's checks cost."""
    assert base.makespan_ms <= optimized.makespan_ms <= base.makespan_ms + 4 * PLATFORM.store_op_ms


def rows(result):
    return result.tasks.set_index(["task_id", "worker_id"])


# -- task-dup ---------------------------------------------------------------------------------

DUP_TASKS = [Task("s", "f"), Task("u", "g", ("s",)), Task("c", "h", ("s", "u"))]
DUP_PLACES = {"s": ("w1", C1), "u": ("w2", C1), "c": ("w1", C1)}
DUP = [Optimization("task-dup", frozenset({"c"}))]


def test_task_dup_beats_a_cold_upstream_worker():
    """Waiting for an upstream whose worker starts cold, the consumer runs it itself."""
    base, dup = pair(
        DUP_TASKS, DUP_PLACES, {"s": 10, "u": 20, "c": 5}, dict.fromkeys("suc", 1000), DUP
    )
    assert dup.makespan_ms < base.makespan_ms - 200
    duplicated = dup.tasks[dup.tasks["duplicated"]]
    assert duplicated[["task_id", "worker_id"]].values.tolist() == [["u", "w1"]]
    assert not base.tasks["duplicated"].any()


def test_task_dup_not_used_when_the_upstream_is_nearly_done():
    """An upstream already running with little left is waited for, not duplicated.

    The client invokes w1 then w2, one call after the other; `s` outlasts that call, so `u`
    has started by the time `c` looks."""
    tasks = [Task("s", "f"), Task("u", "g"), Task("c", "h", ("s", "u"))]
    exec_ms = {"s": 10 + 2 * PLATFORM.invoke_latency_ms, "u": 1000, "c": 5}
    base, dup = pair(tasks, DUP_PLACES, exec_ms, dict.fromkeys("suc", 1000), DUP)
    assert not dup.tasks["duplicated"].any()
    assert_unchanged_but_bookkeeping(base, dup)


# -- output streaming -------------------------------------------------------------------------

STREAM = [Optimization("output-streaming", frozenset({"a"}), {"chunk_bytes": MB})]


def test_streaming_overlaps_download_with_upload():
    """A consumer already waiting reads a 50 MB output chunk by chunk as it is written."""
    tasks = [Task("x", "f"), Task("a", "g"), Task("b", "h", ("a", "x"))]
    places = {"x": ("w2", C1), "a": ("w1", C1), "b": ("w2", C1)}
    base, streamed = pair(
        tasks, places, {"x": 1, "a": 100, "b": 1}, {"x": 10, "a": 50 * MB, "b": 10}, STREAM
    )
    transfer_ms = 50 * MB / PLATFORM.link_bytes_per_ms(C1)
    assert streamed.makespan_ms < base.makespan_ms - 0.8 * transfer_ms
    assert rows(streamed).loc[("a", "w1"), "streamed"]
    assert not rows(base).loc[("a", "w1"), "streamed"]


def test_streaming_falls_back_when_the_consumer_is_not_running():
    """With no reader waiting, the stream is read as a stored output at no extra time."""
    tasks = [Task("a", "g"), Task("b", "h", ("a",))]
    places = {"a": ("w1", C1), "b": ("w2", C1)}
    base, streamed = pair(tasks, places, {"a": 100, "b": 1}, {"a": 50 * MB, "b": 10}, STREAM)
    assert streamed.makespan_ms == pytest.approx(base.makespan_ms)


# -- pre-warm ---------------------------------------------------------------------------------

CHAIN = [Task("a", "f"), Task("b", "g", ("a",)), Task("c", "h", ("b",))]
CHAIN_PLACES = {"a": ("w1", C1), "b": ("w2", C2), "c": ("w3", C3)}
CHAIN_EXEC = {"a": 300, "b": 300, "c": 100}


def test_prewarm_hides_cold_starts_of_a_config_chain():
    """Warm-ups of the later configs turn their cold starts into warm ones."""
    flags = [
        Optimization("pre-warm", params={"config": C2, "at_ms": 0}),
        Optimization("pre-warm", params={"config": C3, "at_ms": 200}),
    ]
    base, warm = pair(CHAIN, CHAIN_PLACES, CHAIN_EXEC, dict.fromkeys("abc", 100), flags)
    cold_ms = PLATFORM.cold_start_median_ms
    assert warm.makespan_ms == pytest.approx(
        base.makespan_ms - 2 * (cold_ms - PLATFORM.warm_start_ms)
    )
    startups = dict(zip(warm.workers["worker_id"], warm.workers["startup"], strict=True))
    assert startups == {"w1": "cold", "w2": "prewarmed", "w3": "prewarmed"}
    assert rows(warm).loc[("b", "w2"), "startup"] == "prewarmed"
    assert warm.cost["gb_s"] > base.cost["gb_s"]  # warm-ups and idle time are paid for


def test_prewarm_of_an_unused_config_does_not_change_the_run():
    """A warm-up of a config nobody uses costs money but not time."""
    flags = [Optimization("pre-warm", params={"config": ResourceConfig(512), "at_ms": 0})]
    base, warm = pair(CHAIN, CHAIN_PLACES, CHAIN_EXEC, dict.fromkeys("abc", 100), flags)
    assert warm.makespan_ms == base.makespan_ms
    assert warm.cost["total_usd"] > base.cost["total_usd"]


# -- pre-load ---------------------------------------------------------------------------------

PRELOAD_TASKS = [
    Task("x", "f"),
    Task("p1", "g"),
    Task("p2", "g"),
    Task("p3", "g"),
    Task("c", "h", ("x", "p1", "p2", "p3")),
]
PRELOAD_PLACES = {
    "x": ("w0", C1),
    "p1": ("w1", C1),
    "p2": ("w2", C1),
    "p3": ("w3", C1),
    "c": ("w0", C1),
}
PRELOAD_EXEC = {"x": 1, "p1": 100, "p2": 700, "p3": 1300, "c": 1}
PRELOAD_OUT = {"x": 10, "p1": 10 * MB, "p2": 10 * MB, "p3": 10 * MB, "c": 10}
PRELOAD = [Optimization("pre-load", frozenset({"c"}))]


def test_preload_downloads_inputs_as_they_arrive():
    """A waiting consumer downloads each input once stored, finishing its inputs sooner."""
    base, pre = pair(PRELOAD_TASKS, PRELOAD_PLACES, PRELOAD_EXEC, PRELOAD_OUT, PRELOAD)
    assert (
        rows(pre).loc[("c", "w0"), "inputs_done_ms"]
        < rows(base).loc[("c", "w0"), "inputs_done_ms"] - 300
    )
    assert pre.makespan_ms < base.makespan_ms - 300


def test_preloaded_download_time_is_measured_not_zero():
    """The pre-loaded consumer's download_ms is the time spent downloading (3 x 10 MB)."""
    pre = run(PRELOAD_TASKS, PRELOAD_PLACES, PRELOAD_EXEC, PRELOAD_OUT, PRELOAD)
    row = rows(pre).loc[("c", "w0")]
    alone_ms = PLATFORM.store_op_ms + 10 * MB / PLATFORM.link_bytes_per_ms(C1)
    assert row["download_ms"] == pytest.approx(3 * alone_ms, rel=0.05)
    assert row["download_bytes"] == 30 * MB


def test_preload_with_one_remote_input_changes_nothing():
    """With a single remote input there is nothing to pre-load."""
    tasks = [Task("x", "f"), Task("p", "g"), Task("c", "h", ("x", "p"))]
    places = {"x": ("w0", C1), "p": ("w1", C1), "c": ("w0", C1)}
    base, pre = pair(tasks, places, {"x": 1, "p": 100, "c": 1}, {"x": 1, "p": MB, "c": 1}, PRELOAD)
    assert pre.makespan_ms == base.makespan_ms


# -- clustering -------------------------------------------------------------------------------

FAN = [Task("a", "f")] + [Task(f"k{i}", "g", ("a",)) for i in range(30)]
FAN_PLACES = {t.id: (None, C1) for t in FAN}
CLUSTER = [Optimization("fan-out-clustering", frozenset({"a"}), {"max_exec_ms": 10})]


def test_fan_out_clustering_keeps_tiny_children_local():
    """Thirty 1 ms children run on the fan-out's worker instead of thirty new workers."""
    exec_ms = {t.id: 1 for t in FAN}
    base, clustered = pair(FAN, FAN_PLACES, exec_ms, {t.id: 100 for t in FAN}, CLUSTER)
    assert len(clustered.workers) == 1 and len(base.workers) == 30
    assert clustered.makespan_ms < base.makespan_ms
    assert clustered.cost["total_usd"] < base.cost["total_usd"]


def test_fan_out_clustering_leaves_long_children_alone():
    """Children predicted above the threshold still get workers of their own."""
    exec_ms = {t.id: 500 for t in FAN}
    base, clustered = pair(FAN, FAN_PLACES, exec_ms, {t.id: 100 for t in FAN}, CLUSTER)
    assert clustered.makespan_ms == base.makespan_ms and len(clustered.workers) == 30


FAN_IN = [Task("p1", "f"), Task("p2", "f"), Task("f", "g", ("p1", "p2"))]
FAN_IN_PLACES = {t.id: (None, C1) for t in FAN_IN}
FAN_IN_FLAG = [Optimization("fan-in-clustering", frozenset({"p1"}), {"min_output_bytes": MB})]


def test_fan_in_clustering_skips_the_large_upload():
    """The large-output producer that completes the fan-in runs it without uploading."""
    exec_ms = {"p1": 500, "p2": 10, "f": 10}
    out = {"p1": 100 * MB, "p2": 1000, "f": 10}
    base, clustered = pair(FAN_IN, FAN_IN_PLACES, exec_ms, out, FAN_IN_FLAG)
    assert rows(clustered).loc[("p1", "flex-p1"), "upload_ms"] == 0
    assert rows(clustered).loc[("f", "flex-p1"), "download_bytes"] == 1000
    assert clustered.makespan_ms < base.makespan_ms - 1000


def test_fan_in_clustering_below_threshold_changes_nothing():
    """A small output is uploaded as usual."""
    exec_ms = {"p1": 500, "p2": 10, "f": 10}
    out = {"p1": 1000, "p2": 1000, "f": 10}
    base, clustered = pair(FAN_IN, FAN_IN_PLACES, exec_ms, out, FAN_IN_FLAG)
    assert_unchanged_but_bookkeeping(base, clustered)


DELAY_TASKS = [Task("t", "f"), Task("q", "f"), Task("k", "g", ("t",)), Task("f", "h", ("t", "q"))]
DELAY_PLACES = {t.id: (None, C1) for t in DELAY_TASKS}
DELAYED = [Optimization("delayed-io", frozenset({"t"}), {"min_output_bytes": MB})]


def test_delayed_io_runs_local_work_before_a_large_upload():
    """After a 100 MB output the worker runs its local consumer first, then completes the
    fan-in itself without ever uploading."""
    exec_ms = {"t": 10, "q": 10, "k": 100, "f": 10}
    out = {"t": 100 * MB, "q": 1000, "k": 10, "f": 10}
    base, delayed = pair(DELAY_TASKS, DELAY_PLACES, exec_ms, out, DELAYED)
    assert (
        rows(delayed).loc[("k", "flex-t"), "end_ms"]
        < rows(base).loc[("k", "flex-t"), "end_ms"] - 1000
    )
    assert rows(delayed).loc[("t", "flex-t"), "upload_ms"] == 0
    assert delayed.makespan_ms < base.makespan_ms


def test_delayed_io_below_threshold_changes_nothing():
    """A small output is not delayed."""
    exec_ms = {"t": 10, "q": 10, "k": 100, "f": 10}
    out = {"t": 1000, "q": 1000, "k": 10, "f": 10}
    base, delayed = pair(DELAY_TASKS, DELAY_PLACES, exec_ms, out, DELAYED)
    assert_unchanged_but_bookkeeping(base, delayed)


# -- inline-subdag ----------------------------------------------------------------------------

SUBDAG = FAN + [Task("j", "h", tuple(f"k{i}" for i in range(30)))]
SUBDAG_PLACES = {t.id: (None, C1) for t in SUBDAG}
INLINE = [Optimization("inline-subdag", frozenset({"a"}), {"max_exec_ms": 10})]


def test_inline_subdag_runs_a_fan_out_and_its_fan_in_in_one_invocation():
    """Thirty 1 ms children and their fan-in run on the fan-out's worker: one invocation, and
    only the sink's output goes to the store (fan-out clustering, which also keeps them on one
    worker, still uploads and counts each child's output for the fan-in)."""
    exec_ms = {t.id: 1 for t in SUBDAG}
    out = {t.id: 1000 for t in SUBDAG}
    base, inlined = pair(SUBDAG, SUBDAG_PLACES, exec_ms, out, INLINE)
    clustered = run(SUBDAG, SUBDAG_PLACES, exec_ms, out, [CLUSTER[0]])
    assert len(base.workers) == 30 and len(inlined.workers) == 1
    assert len(inlined.invocations) == 1 and inlined.uploads == ["out:j"]
    assert inlined.makespan_ms < clustered.makespan_ms < base.makespan_ms
    assert inlined.n_store_commands == 1 < clustered.n_store_commands
    assert inlined.cost["total_usd"] < base.cost["total_usd"]


def test_inline_subdag_leaves_long_children_alone():
    """Children predicted above the threshold get their workers; nothing changes."""
    exec_ms = {t.id: 500 for t in SUBDAG} | {"a": 1}
    base, inlined = pair(SUBDAG, SUBDAG_PLACES, exec_ms, {t.id: 100 for t in SUBDAG}, INLINE)
    assert inlined.makespan_ms == base.makespan_ms
    assert len(inlined.invocations) == len(base.invocations)


# -- small-results-inline ---------------------------------------------------------------------

SMALL = [Optimization("small-results-inline", frozenset({"a"}), {"max_bytes": 96 * 1024})]
PAIR = [Task("a", "f"), Task("b", "g", ("a",))]


def test_small_result_in_the_message_saves_the_upload_and_download_round_trips():
    """A fixed consumer takes a small output from the COMPLETED message: no upload, existence
    check or download, so it starts sooner by about those three store round trips."""
    places = {"a": ("w1", C1), "b": ("w2", C1)}
    base, small = pair(PAIR, places, {"a": 1000, "b": 1}, {"a": 1000, "b": 10}, SMALL)
    assert small.uploads == ["out:b"] and sorted(base.uploads) == ["out:a", "out:b"]
    assert small.n_store_commands == base.n_store_commands - 3
    saved_ms = rows(base).loc[("b", "w2"), "start_ms"] - rows(small).loc[("b", "w2"), "start_ms"]
    assert saved_ms == pytest.approx(2 * PLATFORM.store_op_ms, abs=1.0)
    assert small.makespan_ms < base.makespan_ms - PLATFORM.store_op_ms


def test_small_result_in_the_payload_is_costed_by_its_bytes():
    """A flexible consumer gets the output in its invocation's payload: no store round trip,
    but the payload's bytes cross the invoker's link before the consumer starts."""
    places = {"a": ("w1", C1), "b": (None, C1)}
    exec_ms = {"a": 10, "b": 1}

    def started_ms(nbytes, flags):
        result = run(PAIR, places, exec_ms, {"a": nbytes, "b": 10}, flags)
        return result, result.workers.set_index("worker_id").loc["flex-b", "ready_ms"]

    base, base_ms = started_ms(90 * 1024, ())
    tiny, tiny_ms = started_ms(10, SMALL)
    large, large_ms = started_ms(90 * 1024, SMALL)
    assert large.uploads == tiny.uploads == ["out:b"] and "out:a" in base.uploads
    payload_ms = 90 * 1024 / PLATFORM.link_bytes_per_ms(C1)
    assert large_ms - tiny_ms == pytest.approx(payload_ms, rel=0.05, abs=0.05)
    assert large_ms < base_ms
    assert large.makespan_ms < base.makespan_ms


def test_small_results_inline_above_max_bytes_changes_nothing():
    """An output above ``max_bytes`` is uploaded and downloaded as usual."""
    places = {"a": ("w1", C1), "b": ("w2", C1)}
    flags = [Optimization("small-results-inline", frozenset({"a"}), {"max_bytes": 100})]
    base, small = pair(PAIR, places, {"a": 1000, "b": 1}, {"a": 1000, "b": 10}, flags)
    assert sorted(small.uploads) == sorted(base.uploads)
    assert base.makespan_ms - PLATFORM.store_op_ms <= small.makespan_ms <= base.makespan_ms
