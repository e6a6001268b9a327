"""RoundRobin: CPUs that hand out time slices in turn (the shared host's scheduler)."""

import math

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.sharing import ProcessorSharing, RoundRobin


def run_jobs(server_of, jobs):
    """Run (arrival_ms, amount) jobs on ``server_of(env)``; each job's sojourn, in input order."""
    env = simpy.Environment()
    server = server_of(env)
    sojourn = [None] * len(jobs)

    def job(i, arrival_ms, amount):
        yield env.timeout(arrival_ms)
        sojourn[i] = yield server.serve(amount)

    for i, (arrival_ms, amount) in enumerate(jobs):
        env.process(job(i, arrival_ms, amount))
    env.run()
    assert server.n_active == 0
    return sojourn


def test_a_short_job_waits_for_the_slice_then_runs_at_full_speed():
    """One CPU, 2 ms slices: a 0.5 ms job arriving at 1 ms behind a 10 ms one waits until the
    slice ends at 2 ms and is done at 2.5 ms (1.5 ms after it came); processor sharing would
    have halved its speed at once (1 ms). The long job ends at 10.5 ms either way."""
    jobs = [(0.0, 10.0), (1.0, 0.5)]
    sliced = run_jobs(lambda env: RoundRobin(env, 1.0, 2.0), jobs)
    assert sliced == pytest.approx([10.5, 1.5])
    shared = run_jobs(lambda env: ProcessorSharing(env, 1.0, per_job_cap=1.0), jobs)
    assert shared == pytest.approx([10.5, 1.0])


def test_a_new_job_goes_ahead_of_jobs_that_have_had_a_slice():
    """One CPU, 1 ms slices, two 3 ms jobs from 0: a 0.5 ms job arriving at 1.5 ms runs when
    the slice running then ends (at 2 ms), before the first job's second slice: done in 1 ms."""
    jobs = [(0.0, 3.0), (0.0, 3.0), (1.5, 0.5)]
    assert run_jobs(lambda env: RoundRobin(env, 1.0, 1.0), jobs) == pytest.approx([5.5, 6.5, 1.0])


def test_a_fractional_cpu_is_a_slower_one():
    """Capacity 1.5 is a full CPU and one at half speed: two 3 cpu-ms jobs arriving together
    take 3 and 6 ms; a lone job gets the full CPU."""
    assert run_jobs(lambda env: RoundRobin(env, 1.5, 100.0), [(0, 3.0), (0, 3.0)]) == [3.0, 6.0]
    assert run_jobs(lambda env: RoundRobin(env, 1.5, 100.0), [(0, 3.0)]) == [3.0]


def test_jobs_shorter_than_the_slice_run_one_after_another():
    """Three 1 ms jobs on one CPU with 5 ms slices: first come, first served."""
    assert run_jobs(lambda env: RoundRobin(env, 1.0, 5.0), [(0, 1.0)] * 3) == [1.0, 2.0, 3.0]


amounts = st.lists(st.floats(0.01, 50.0), min_size=1, max_size=25)


@given(amounts, st.sampled_from([0.1, 1.5, 6.0]), st.sampled_from([1.0, 2.0, 3.0]))
@settings(max_examples=60, deadline=None)
def test_whole_cpus_never_idle_while_work_waits(sizes, quantum_ms, cpus):
    """Jobs arriving at 0: the last is done by total work / CPUs + one slice, not before total
    work / CPUs, nor before its own amount; one CPU finishes exactly the total work."""
    sojourn = run_jobs(lambda env: RoundRobin(env, cpus, quantum_ms), [(0, a) for a in sizes])
    total = sum(sizes)
    assert all(s >= a - 1e-9 for s, a in zip(sojourn, sizes, strict=True))
    assert max(sojourn) >= total / cpus - 1e-9
    assert max(sojourn) <= total / cpus + max(sizes) + 1e-9
    if cpus == 1.0:
        assert max(sojourn) == pytest.approx(total)


@pytest.mark.parametrize(
    ("capacity", "quantum_ms", "match"),
    [(math.inf, 1.0, "finite"), (0.0, 1.0, "capacity"), (1.0, 0.0, "quantum_ms")],
)
def test_bad_server_rejected(capacity, quantum_ms, match):
    with pytest.raises(ValueError, match=match):
        RoundRobin(simpy.Environment(), capacity, quantum_ms)


def test_bad_amount_rejected():
    server = RoundRobin(simpy.Environment(), 1.0, 1.0)
    with pytest.raises(ValueError, match="amount"):
        server.serve(-1.0)
    assert server.serve(0.0).triggered
