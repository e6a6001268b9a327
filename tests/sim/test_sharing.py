"""ProcessorSharing: fair shares, per-job caps, late arrivals, O(log n) cost."""

import math
import time

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import ProcessorSharing


def run_jobs(capacity, jobs, per_job_cap=None):
    """Run (arrival_ms, amount) jobs; return each job's finish time, in input order."""
    env = simpy.Environment()
    server = ProcessorSharing(env, capacity, per_job_cap)
    finish = [None] * len(jobs)

    def job(i, arrival_ms, amount):
        yield env.timeout(arrival_ms)
        yield server.serve(amount)
        finish[i] = env.now

    for i, (arrival_ms, amount) in enumerate(jobs):
        env.process(job(i, arrival_ms, amount))
    env.run()
    assert server.n_active == 0
    return finish


@pytest.mark.parametrize(
    ("capacity", "cap", "expected"),
    [(2.0, None, 50.0), (2.0, 1.0, 100.0), (0.5, 1.0, 200.0), (math.inf, 4.0, 25.0)],
)
def test_single_job_runs_at_min_of_capacity_and_cap(capacity, cap, expected):
    """One job of amount A finishes at A / min(C, cap)."""
    assert run_jobs(capacity, [(0.0, 100.0)], cap) == [pytest.approx(expected)]


def test_two_equal_jobs_finish_together():
    """Two jobs of amount A started together on capacity 1 both finish at 2A."""
    assert run_jobs(1.0, [(0.0, 10.0), (0.0, 10.0)]) == [pytest.approx(20.0)] * 2


def test_late_arrival_by_hand():
    """A: 10 units at t=0, B: 4 units at t=4, capacity 1: B ends at 12, A at 14."""
    # A alone 0..4 (4 done, 6 left); both at 1/2 each: B needs 8 ms -> 12; A has 2 left -> 14.
    assert run_jobs(1.0, [(0.0, 10.0), (4.0, 4.0)]) == [pytest.approx(14.0), pytest.approx(12.0)]


def test_cap_limits_share_when_capacity_is_spare():
    """Three 1-cpu jobs on 4 cpus each run at 1 cpu, not 4/3."""
    assert run_jobs(4.0, [(0.0, 30.0)] * 3, per_job_cap=1.0) == [pytest.approx(30.0)] * 3


def test_zero_amount_finishes_immediately():
    """A zero-amount job's event is already triggered, and finishes at its arrival time."""
    env = simpy.Environment()
    server = ProcessorSharing(env, 1.0)
    assert server.serve(0).triggered
    assert run_jobs(1.0, [(3.0, 0.0), (0.0, 5.0)]) == [3.0, pytest.approx(5.0)]


def test_infinite_capacity_and_cap_is_instant():
    """With capacity and cap both infinite every job finishes at its arrival."""
    assert run_jobs(math.inf, [(0.0, 1e9), (2.0, 5.0)]) == [0.0, 2.0]


def test_event_value_is_sojourn_ms():
    """The serve event's value is the time the job spent in service."""
    env = simpy.Environment()
    server = ProcessorSharing(env, 2.0)
    event = server.serve(10.0)
    env.run()
    assert event.value == pytest.approx(5.0)


@pytest.mark.parametrize("amount", [-1.0, math.nan, math.inf, "3"])
def test_bad_amount_rejected(amount):
    """A negative, NaN, infinite or non-numeric amount raises ValueError quoting it."""
    server = ProcessorSharing(simpy.Environment(), 1.0, name="cpu")
    with pytest.raises(ValueError, match="amount"):
        server.serve(amount)


@pytest.mark.parametrize(
    ("capacity", "cap"), [(0.0, None), (-1.0, None), (1.0, 0.0), (math.nan, None)]
)
def test_bad_capacity_rejected(capacity, cap):
    """Capacity and per-job cap must be positive."""
    with pytest.raises(ValueError):
        ProcessorSharing(simpy.Environment(), capacity, cap)


amounts = st.lists(st.integers(1, 1000).map(float), min_size=1, max_size=30)


@given(amounts)
@settings(max_examples=60, deadline=None)
def test_makespan_is_total_work(sizes):
    """Jobs all arriving at 0 on capacity 1 (cap 1) all finish by exactly the sum of amounts."""
    finish = run_jobs(1.0, [(0.0, a) for a in sizes], per_job_cap=1.0)
    assert max(finish) == pytest.approx(sum(sizes))


@given(amounts)
@settings(max_examples=60, deadline=None)
def test_completion_order_follows_amounts(sizes):
    """Jobs arriving together complete in order of amount, at the processor-sharing formula."""
    finish = run_jobs(1.0, [(0.0, a) for a in sizes], per_job_cap=1.0)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    assert [finish[i] for i in order] == sorted(finish)
    # k-th smallest (0-based) ends at sum of the smaller ones + (n - k) * its amount.
    ranked = sorted(sizes)
    n = len(ranked)
    for k, i in enumerate(order):
        assert finish[i] == pytest.approx(sum(ranked[:k]) + (n - k) * ranked[k])


def test_many_concurrent_jobs_are_fast():
    """20,000 concurrent jobs (arrivals and departures) run well under a few seconds."""
    n = 20_000
    env = simpy.Environment()
    server = ProcessorSharing(env, 8.0, per_job_cap=1.0)
    events = [server.serve(float(1 + i % 97)) for i in range(n)]
    started = time.perf_counter()
    env.run()
    elapsed_s = time.perf_counter() - started
    assert all(e.processed for e in events)
    assert env.now == pytest.approx(sum(float(1 + i % 97) for i in range(n)) / 8.0)
    assert elapsed_s < 3.0


def reference_finish(capacity, cap, jobs):
    """Naive O(n^2) fluid simulation of processor sharing, for cross-checking."""
    pending = sorted(range(len(jobs)), key=lambda i: jobs[i][0])
    remaining = {}
    finish = [None] * len(jobs)
    now = 0.0
    while pending or remaining:
        rate = min(cap, capacity / len(remaining)) if remaining else 0.0
        next_arrival = jobs[pending[0]][0] if pending else math.inf
        next_done = now + min(remaining.values()) / rate if remaining else math.inf
        step_to = min(next_arrival, next_done)
        for i in remaining:
            remaining[i] -= rate * (step_to - now)
        now = step_to
        for i in [i for i, left in remaining.items() if left <= 1e-9]:
            finish[i] = now
            del remaining[i]
        while pending and jobs[pending[0]][0] <= now:
            i = pending.pop(0)
            if jobs[i][1] == 0:
                finish[i] = now
            else:
                remaining[i] = jobs[i][1]
    return finish


arrivals = st.lists(
    st.tuples(st.integers(0, 200).map(float), st.integers(0, 100).map(float)),
    min_size=1,
    max_size=25,
)


@given(arrivals, st.sampled_from([(1.0, None), (3.0, 1.0), (2.5, 2.0)]))
@settings(max_examples=80, deadline=None)
def test_matches_naive_reference(jobs, params):
    """Finish times with staggered arrivals match a naive fluid simulation."""
    capacity, cap = params
    got = run_jobs(capacity, jobs, cap)
    expected = reference_finish(capacity, math.inf if cap is None else cap, jobs)
    assert got == [pytest.approx(e, rel=1e-9, abs=1e-6) for e in expected]


def test_late_step_below_the_clock_resolution_does_not_spin():
    """Late in a long run (clock at 1e10 ms, where a float step is 2e-6 ms), a job whose rest
    is below the clock's step finishes instead of re-arming a timeout at the same instant."""
    env = simpy.Environment()
    server = ProcessorSharing(env, 1.0, 1.0)
    finish = []

    def arrivals():
        yield env.timeout(1e10)
        for amount, gap_ms in ((10.0, 0.7), (3.7, 0.9), (1.3, 0.0)):
            server.serve(amount).callbacks.append(lambda _event: finish.append(env.now))
            yield env.timeout(gap_ms)

    env.process(arrivals())
    n_steps = 0
    while env.peek() != math.inf:
        env.step()
        n_steps += 1
        assert n_steps < 1000, "the clock stopped advancing"
    # Exact processor-sharing finishes: 1e10 + 5.5, 9.4 and 15.0 ms, to the clock's step.
    assert finish == pytest.approx([1e10 + 5.5, 1e10 + 9.4, 1e10 + 15.0], abs=1e-4)
