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


def test_a_fractional_cpu_is_a_part_time_one():
    """Capacity 1.5 is a CPU and one that rests as long as it served: three 1 ms jobs with 1 ms
    slices take 1, 1 and 2 ms (the part-time CPU rests until 2 ms); a lone job gets a CPU."""
    three = run_jobs(lambda env: RoundRobin(env, 1.5, 1.0), [(0, 1.0)] * 3)
    assert three == pytest.approx([1.0, 1.0, 2.0])
    assert run_jobs(lambda env: RoundRobin(env, 1.5, 100.0), [(0, 3.0)]) == [3.0]
    # A tiny capacity is a very slow server, not one that never serves.
    assert run_jobs(lambda env: RoundRobin(env, 1e-10, 1.0), [(0, 1e-9)]) == pytest.approx([1e-9])


def test_jobs_shorter_than_the_slice_run_one_after_another():
    """Three 1 ms jobs on one CPU with 5 ms slices: first come, first served."""
    assert run_jobs(lambda env: RoundRobin(env, 1.0, 5.0), [(0, 1.0)] * 3) == [1.0, 2.0, 3.0]


amounts = st.lists(st.floats(0.01, 50.0), min_size=1, max_size=25)


@given(amounts, st.sampled_from([0.1, 1.5, 6.0]), st.sampled_from([1.0, 2.0, 3.0]))
@settings(max_examples=60, deadline=None)
def test_whole_cpus_never_idle_while_work_waits(sizes, quantum_ms, cpus):
    """Jobs arriving at 0 on whole CPUs: none is done before its own amount, and the last is
    done no earlier than total work / CPUs and no later than that plus the largest job (list
    scheduling's bound); one CPU finishes exactly the total work."""
    sojourn = run_jobs(lambda env: RoundRobin(env, cpus, quantum_ms), [(0, a) for a in sizes])
    total = sum(sizes)
    assert all(s >= a - 1e-9 for s, a in zip(sojourn, sizes, strict=True))
    assert max(sojourn) >= total / cpus - 1e-9
    assert max(sojourn) <= total / cpus + max(sizes) + 1e-9
    if cpus == 1.0:
        assert max(sojourn) == pytest.approx(total)


arrivals = st.lists(st.tuples(st.floats(0.0, 20.0), st.floats(0.05, 10.0)), min_size=1, max_size=30)


@given(arrivals, st.sampled_from([1.0, 2.0]))
@settings(max_examples=60, deadline=None)
def test_a_little_more_capacity_changes_little(jobs, cpus):
    """The service moves continuously with the capacity (which `fit_host_cpus` bisects): a
    part-time CPU of 0.1% serves at most one slice, so the last job ends at most one slice
    later, and never much earlier than a whole CPU more allows."""
    quantum_ms = 1.5
    base = run_jobs(lambda env: RoundRobin(env, cpus, quantum_ms), jobs)
    more = run_jobs(lambda env: RoundRobin(env, cpus + 0.001, quantum_ms), jobs)
    end = [a + s for (a, _), s in zip(jobs, base, strict=True)]
    end_more = [a + s for (a, _), s in zip(jobs, more, strict=True)]
    assert abs(max(end_more) - max(end)) <= quantum_ms + 1e-9


def test_capacity_below_one_cpu_serves_at_its_rate():
    """Half a CPU, 1 ms slices: 10 cpu-ms take 19 ms (ten slices, a 1 ms rest between)."""
    assert run_jobs(lambda env: RoundRobin(env, 0.5, 1.0), [(0, 10.0)]) == pytest.approx([19.0])


@pytest.mark.parametrize(
    ("capacity", "quantum_ms", "match"),
    [
        (math.inf, 1.0, "capacity must be finite"),
        (0.0, 1.0, "capacity"),
        (1.0, 0.0, "quantum_ms"),
        (1.0, math.inf, "quantum_ms must be finite"),
    ],
)
def test_bad_server_rejected(capacity, quantum_ms, match):
    with pytest.raises(ValueError, match=match):
        RoundRobin(simpy.Environment(), capacity, quantum_ms)


def test_bad_amount_rejected():
    server = RoundRobin(simpy.Environment(), 1.0, 1.0)
    with pytest.raises(ValueError, match="amount"):
        server.serve(-1.0)
    assert server.serve(0.0).triggered


def test_calibration_writes_linux_default_slice():
    """0.75 ms times 1 + floor(log2(CPUs)), CPUs capped at 8."""
    from runtime.calibrate import scheduler_slice_ms

    got = [scheduler_slice_ms(n) for n in (1, 2, 3, 4, 8, 64)]
    assert got == [0.75, 1.5, 1.5, 2.25, 3.0, 3.0]
