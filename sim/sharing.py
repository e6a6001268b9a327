"""Servers shared by concurrent jobs: processor sharing, and time slices taken in turn.

`ProcessorSharing` splits its capacity fairly among the jobs it holds. The same building block
models a worker's CPUs (capacity = cpus, each single-threaded job capped at one cpu, amounts in
cpu-ms), the store's network link (capacity = bytes/ms, amounts in bytes) and each worker's
network link. It runs in virtual time, so an arrival or a departure costs O(log n) whatever the
number of jobs in service.

`RoundRobin` is a few CPUs handing out time slices: a job runs alone on a CPU for up to one
quantum, then waits for another. Work shorter than a quantum runs at full speed once it has a
CPU, and a job that arrives while every CPU is busy waits for a slice to end, ahead of the jobs
that have had one.
"""

from __future__ import annotations

import collections
import itertools
import math
from heapq import heappop, heappush

import simpy
from simpy.events import Event, Timeout

# A job is done when its finish tag is within this relative distance of virtual time: float
# round-off in "rate * elapsed" must not leave a job a few ulps short of its amount.
_REL_EPS = 1e-9
_ABS_EPS_MS = 1e-9  # a head finishing within this many ms of a timeout is done at it


class ProcessorSharing:
    """A server of capacity C shared fairly by its concurrent jobs (egalitarian processor sharing).

    With n jobs in service each one is served at rate ``min(per_job_cap, capacity / n)`` units per
    ms; a job of ``amount`` units leaves once it has received that much service. Units are the
    caller's: cpu-ms of work for a CPU (capacity in cpus, rate in cpu-ms per ms), bytes for a
    network link (capacity in bytes/ms).

    Virtual time ``V`` advances at the per-job rate; a job arriving at ``V0`` finishes when
    ``V = V0 + amount`` (its finish tag). Tags sit in a heap and one SimPy timeout is pending for
    the earliest one. SimPy timeouts cannot be cancelled, so each (re)scheduling bumps a
    generation counter and stale timeouts are ignored when they fire.

    Parameters
    ----------
    env : simpy.Environment
        The simulation clock (ms).
    capacity : float
        Total service rate, units per ms; ``math.inf`` for an unshared server (each job then runs
        at ``per_job_cap``).
    per_job_cap : float or None, default None
        Largest rate one job can get (e.g. 1.0 cpu for a single-threaded task); None means no cap.
    name : str, default ""
        Label used in error messages and reprs.

    Raises
    ------
    ValueError
        If capacity or per_job_cap is not a positive number (inf allowed).
    """

    def __init__(
        self,
        env: simpy.Environment,
        capacity: float,
        per_job_cap: float | None = None,
        *,
        name: str = "",
    ) -> None:
        self.env = env
        self.name = name
        self.capacity = _positive(capacity, "capacity", name)
        self.per_job_cap = (
            math.inf if per_job_cap is None else _positive(per_job_cap, "per_job_cap", name)
        )
        self._virtual = 0.0  # V, in units of service one job has received
        self._updated_ms = env.now  # sim time at which V was last brought up to date
        self._heap: list[tuple[float, int, simpy.Event, float]] = []  # (tag, seq, event, start_ms)
        self._seq = itertools.count()
        self._generation = 0
        self._armed_ms = math.inf  # when the pending timeout fires (inf: none pending)
        self._solo_rate = min(self.per_job_cap, self.capacity)
        self.n_served = 0
        self.amount_served = 0.0

    def __repr__(self) -> str:
        return (
            f"ProcessorSharing({self.name!r}, capacity={self.capacity:g}, "
            f"per_job_cap={self.per_job_cap:g}, n_active={self.n_active})"
        )

    @property
    def n_active(self) -> int:
        """Jobs currently in service."""
        return len(self._heap)

    def rate(self, n_jobs: int | None = None) -> float:
        """Service rate of one job (units per ms) when ``n_jobs`` (default: the current number) share."""
        n = self.n_active if n_jobs is None else n_jobs
        if n <= 0:
            return min(self.per_job_cap, self.capacity)
        return min(self.per_job_cap, self.capacity / n)

    def serve(self, amount: float) -> simpy.Event:
        """Submit a job of ``amount`` units; the returned event succeeds when it is done.

        The event's value is the job's sojourn time in ms. A zero amount (or an infinite rate)
        gives an event that is already triggered.

        Raises
        ------
        ValueError
            If amount is negative, NaN or infinite.
        """
        if amount.__class__ not in (int, float) or not 0 <= amount < math.inf:
            _admit(self, "ProcessorSharing", amount)  # raises, naming the server
        self.n_served += 1
        self.amount_served += amount
        env = self.env
        event = Event(env)
        if amount == 0 or self._solo_rate == math.inf:
            return event.succeed(0.0)
        now = env._now
        heap = self._heap
        if heap:  # bring V up to now at the current per-job rate (`_advance`)
            self._virtual += self._rate(len(heap)) * (now - self._updated_ms)
        self._updated_ms = now
        heappush(heap, (self._virtual + amount, next(self._seq), event, now))
        self._reschedule()
        return event

    def _rate(self, n: int) -> float:
        """Service rate of one job when `n` > 0 jobs share (`rate`, without the checks)."""
        share = self.capacity / n
        return share if share < self.per_job_cap else self.per_job_cap

    def _advance(self) -> None:
        """Bring V up to the current sim time at the current per-job rate."""
        now = self.env._now
        n = len(self._heap)
        if n:
            self._virtual += self._rate(n) * (now - self._updated_ms)
        self._updated_ms = now

    def _reschedule(self) -> None:
        """Make sure a timeout fires no later than the earliest finish.

        An arrival only slows the others down, so a pending timeout that fires at or before the
        new earliest finish is kept (it re-arms when it fires early); this halves the events
        under load. Otherwise a new timeout is armed and older ones become stale.
        """
        heap = self._heap
        if not heap:
            self._generation += 1
            self._armed_ms = math.inf
            self._virtual = 0.0  # idle: restart V at 0 to keep its magnitude (and round-off) small
            return
        remaining = heap[0][0] - self._virtual
        delay = remaining / self._rate(len(heap)) if remaining > 0 else 0.0
        env = self.env
        finish_ms = env._now + delay
        if self._armed_ms <= finish_ms:
            return
        self._generation += 1
        self._armed_ms = finish_ms
        Timeout(env, delay, self._generation).callbacks.append(self._on_timeout_event)

    def _on_timeout_event(self, event: simpy.Event) -> None:
        """The armed timeout fired: release the jobs done by now, or re-arm if it fired early.

        A stale timeout (superseded by a departure or an earlier-finishing arrival) does
        nothing. The arithmetic is `_advance` and `rate` written out: this runs once per job.
        """
        if event._value != self._generation:
            return
        self._armed_ms = math.inf
        heap = self._heap
        now = self.env._now
        share = self.capacity / len(heap)
        rate = share if share < self.per_job_cap else self.per_job_cap
        virtual = self._virtual = self._virtual + rate * (now - self._updated_ms)
        self._updated_ms = now
        head = heap[0][0]
        limit = virtual + _REL_EPS * max(1.0, abs(virtual))
        rest_ms = (head - virtual) / rate
        # A rest too short for the clock to move (now + rest == now, late in a long run) would
        # re-arm a timeout at this same instant forever: the head is done now.
        if head > limit and rest_ms > _ABS_EPS_MS and now + rest_ms > now:
            self._reschedule()  # fired early: arrivals since arming slowed the head down
            return
        # The head is done now; snap V onto its tag and release every job within round-off.
        virtual = self._virtual = max(virtual, head)
        limit = virtual + _REL_EPS * max(1.0, abs(virtual))
        while heap and heap[0][0] <= limit:
            _tag, _seq, event, start_ms = heappop(heap)
            event.succeed(now - start_ms)
        self._reschedule()


class RoundRobin:
    """CPUs that serve their jobs in turn, one time slice of at most `quantum_ms` each.

    Models a shared machine's scheduler at the millisecond scale (see `sim.host.Host`): a job
    runs alone on one CPU at full speed, single-threaded, until it is done or has run a
    quantum, then waits for another slice. Jobs that have not run yet go first, in arrival
    order, then the jobs that have had a slice, in turn: a process woken by a reply has not
    used its share, so Linux gives it an earlier deadline than one that has just used a slice.
    Unlike Linux, a steady stream of new jobs can hold the others back indefinitely.

    A fractional capacity is ``floor(capacity)`` CPUs and one part-time CPU, which rests
    ``slice * (1 - part) / part`` ms after each slice it serves (``1.56``: one CPU, and one
    available 56% of the time), so that the service rate moves continuously with the capacity.
    A free CPU takes the next job, a whole CPU before the part-time one. Amounts are cpu-ms.

    Parameters
    ----------
    env : simpy.Environment
        The simulation clock (ms).
    capacity : float
        CPUs, a finite number > 0.
    quantum_ms : float
        The longest slice, a finite number of ms > 0.
    name : str, default ""
        Label used in error messages and reprs.

    Raises
    ------
    ValueError
        If capacity or quantum_ms is not a finite positive number.
    """

    def __init__(
        self, env: simpy.Environment, capacity: float, quantum_ms: float, *, name: str = ""
    ) -> None:
        self.env = env
        self.name = name
        self.capacity = _positive(capacity, "capacity", name, "RoundRobin")
        self.quantum_ms = _positive(quantum_ms, "quantum_ms", name, "RoundRobin")
        for what, value in (("capacity", capacity), ("quantum_ms", quantum_ms)):
            if math.isinf(value):
                raise ValueError(f"RoundRobin {name!r}: {what} must be finite, not inf")
        whole = int(math.floor(self.capacity))
        part = self.capacity - whole
        # Rest after each slice, per ms of slice: 0 for a whole CPU.
        self._rest_per_ms = [0.0] * whole + (
            [(1 - part) / part] if part > 1e-9 or not whole else []
        )
        self._idle = list(range(len(self._rest_per_ms)))  # whole CPUs first
        self._arrived: collections.deque[_Job] = collections.deque()
        self._preempted: collections.deque[_Job] = collections.deque()
        self._running = 0
        self.n_served = 0
        self.amount_served = 0.0

    def __repr__(self) -> str:
        return (
            f"RoundRobin({self.name!r}, capacity={self.capacity:g}, "
            f"quantum_ms={self.quantum_ms:g}, n_active={self.n_active})"
        )

    @property
    def n_active(self) -> int:
        """Jobs in service or waiting for a slice."""
        return len(self._arrived) + len(self._preempted) + self._running

    def serve(self, amount: float) -> simpy.Event:
        """Submit a job of ``amount`` cpu-ms; the returned event succeeds when it is done.

        The event's value is the job's sojourn time in ms; a zero amount gives an event that is
        already triggered.

        Raises
        ------
        ValueError
            If amount is negative, NaN or infinite.
        """
        event = _admit(self, "RoundRobin", amount)
        if amount == 0:
            return event.succeed(0.0)
        self._arrived.append(_Job(float(amount), event, self.env.now))
        self._dispatch()
        return event

    def _dispatch(self) -> None:
        while self._idle and (self._arrived or self._preempted):
            job = (self._arrived or self._preempted).popleft()
            cpu = self._idle.pop(0)
            slice_ms = min(job.left, self.quantum_ms)
            job.left = 0.0 if slice_ms == job.left else job.left - slice_ms
            self._running += 1
            timeout = self.env.timeout(slice_ms)
            timeout.callbacks.append(
                lambda _event, job=job, cpu=cpu, ms=slice_ms: self._slice_end(job, cpu, ms)
            )

    def _slice_end(self, job: _Job, cpu: int, slice_ms: float) -> None:
        self._running -= 1
        if job.left == 0.0:
            job.event.succeed(self.env.now - job.start_ms)
        else:
            self._preempted.append(job)
        rest_ms = slice_ms * self._rest_per_ms[cpu]
        if rest_ms > 0:
            self.env.timeout(rest_ms).callbacks.append(lambda _event: self._free(cpu))
            self._dispatch()  # the job may go on on a whole CPU
        else:
            self._free(cpu)

    def _free(self, cpu: int) -> None:
        self._idle.append(cpu)
        self._idle.sort()
        self._dispatch()


class _Job:
    """A job of `RoundRobin`: cpu-ms still to serve, its event, when it came (ms)."""

    __slots__ = ("left", "event", "start_ms")

    def __init__(self, left: float, event: simpy.Event, start_ms: float) -> None:
        self.left = left
        self.event = event
        self.start_ms = start_ms


def _admit(server: ProcessorSharing | RoundRobin, kind: str, amount: float) -> simpy.Event:
    """Check and count a job of `amount` for `server`; its (untriggered) completion event."""
    if amount.__class__ not in (int, float) or not 0 <= amount < math.inf:
        raise ValueError(f"{kind} {server.name!r}: amount={amount!r} must be a finite number >= 0")
    server.n_served += 1
    server.amount_served += amount
    return simpy.Event(server.env)


def _positive(value: float, what: str, name: str, kind: str = "ProcessorSharing") -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value <= 0
    ):
        raise ValueError(
            f"{kind} {name!r}: {what}={value!r} must be a positive number (inf allowed)"
        )
    return float(value)
