"""The warm pools of containers of a FaaS platform (`ContainerPools`).

Warmth belongs to the pool of a resource config, never to a worker id: an invocation is warm iff
an idle container of the same (memory_mb, cpus) was released at most `keep_alive_ms` ago. The
account's concurrency limit bounds the containers busy at once, and invocations over it queue FIFO.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import simpy

from dag.resources import ResourceConfig
from sim.host import Host
from sim.platform import Platform

Startup = Literal["warm", "cold"]


class BusyInterval(NamedTuple):
    """One busy interval of a container: from the start of its start-up to its release (ms)."""

    start_ms: float
    end_ms: float
    startup: Startup
    startup_ms: float
    prewarm: bool

    @property
    def duration_ms(self) -> float:
        """Busy time, start-up included (the basis of the billed duration), ms."""
        return self.end_ms - self.start_ms


@dataclass(slots=True, eq=False)
class Container:
    """One FaaS container of a resource config, reused by warm invocations.

    ``startup`` and ``startup_ms`` describe the current (latest) invocation; ``invocations`` holds
    every finished one, the billing record. Idle time in the warm pool is never billed.

    Attributes
    ----------
    id : int
        Sequence number, unique within its `ContainerPools`.
    config : ResourceConfig
    startup : {"warm", "cold"}
    startup_ms : float
    created_ms : float
        Sim time at which it was created (start of its cold start).
    prewarmed : bool
        Its latest invocation was a pre-warm: it sits idle because of pre-warming.
    prewarm_hit : bool
        The current invocation is a warm start on a container left idle by a pre-warm (the warm
        start is owed to pre-warming).
    invocations : list of BusyInterval
    """

    id: int
    config: ResourceConfig
    startup: Startup
    startup_ms: float
    created_ms: float
    prewarmed: bool = False
    prewarm_hit: bool = False
    invocations: list[BusyInterval] = field(default_factory=list)
    state: Literal["busy", "idle", "expired"] = "busy"
    busy_since_ms: float = 0.0
    idle_since_ms: float = math.nan
    _slot: Any = None
    _is_prewarm: bool = False

    @property
    def busy_ms(self) -> float:
        """Total busy (billed-basis) time over finished invocations, ms."""
        return sum(inv.duration_ms for inv in self.invocations)


class ContainerPools:
    """Warm pools per resource config, cold starts, keep-alive and the account concurrency limit.

    An acquire first waits (FIFO) for a concurrency slot, then takes the most recently released
    idle container of its config if one is alive (warm start, `warm_start_ms`), else creates one
    (cold start, sampled from the platform). Idle containers expire lazily `keep_alive_ms` after
    their release. The busy interval billed for an invocation runs from the start of its start-up
    to its release.

    Parameters
    ----------
    env : simpy.Environment
        The simulation clock (ms).
    platform : Platform
    rng : numpy.random.Generator
        Source of cold-start draws (seeded by the caller).
    host : Host, optional
        Where start-ups run (default: the platform's ``host_cpus``).

    Attributes
    ----------
    n_cold, n_warm : int
        Start-ups of worker invocations (`acquire`), by kind.
    n_prewarm : int
        Pre-warm invocations (`prewarm`), not counted in n_cold / n_warm.
    n_warm_prewarmed : int
        Warm worker start-ups on a container left idle by a pre-warm (owed to pre-warming).
    n_expired : int
        Idle containers dropped after their keep-alive.
    containers : list of Container
        Every container ever created, in creation order.
    """

    def __init__(
        self,
        env: simpy.Environment,
        platform: Platform,
        rng: np.random.Generator,
        host: Host | None = None,
    ) -> None:
        self.env = env
        self.platform = platform
        self.rng = rng
        self.host = host if host is not None else Host.of(env, platform)
        limit = platform.concurrency_limit
        self._slots = None if limit is None else _Slots(env, limit)
        self._idle: dict[ResourceConfig, deque[Container]] = {}
        self.containers: list[Container] = []
        self.n_cold = 0
        self.n_warm = 0
        self.n_prewarm = 0
        self.n_warm_prewarmed = 0
        self.n_expired = 0
        self._n_made_idle: dict[ResourceConfig, int] = {}
        self._n_taken_warm: dict[ResourceConfig, int] = {}

    def acquire(self, config: ResourceConfig) -> Generator[simpy.Event, Any, Container]:
        """SimPy process body: wait for a slot, then start a warm or cold container; return it.

        Use as ``container = yield from pools.acquire(config)``; the container is busy until
        `release`.
        """
        return (yield from self._acquire(config, prewarm=False))

    def release(self, container: Container) -> float:
        """End the container's invocation: free its slot; it becomes idle (warm) at ``env.now``.

        Returns
        -------
        float
            The invocation's busy time, start-up included, ms.

        Raises
        ------
        ValueError
            If the container is not busy (double release).
        """
        if container.state != "busy":
            raise ValueError(
                f"release of container {container.id} ({container.config}) that is {container.state}"
            )
        now = self.env.now
        invocation = BusyInterval(
            container.busy_since_ms,
            now,
            container.startup,
            container.startup_ms,
            container._is_prewarm,
        )
        container.invocations.append(invocation)
        container.prewarmed = container._is_prewarm
        container.state = "idle"
        container.idle_since_ms = now
        self._idle.setdefault(container.config, deque()).append(container)
        self._n_made_idle[container.config] = self._n_made_idle.get(container.config, 0) + 1
        if container._slot is not None:
            self._slots.release(container._slot)
            container._slot = None
        return invocation.duration_ms

    def prewarm(self, config: ResourceConfig) -> Generator[simpy.Event, Any, Container]:
        """SimPy process body: a warm-up invocation that leaves one more idle container of ``config``.

        It goes through the same path as a worker invocation (a concurrency slot, then the pool):
        with no idle container alive it cold-starts a new one, otherwise it refreshes the most
        recent idle one (as a real warm-up ping would). The container is released idle at once
        and marked ``prewarmed``; its start-up is billed like any invocation.
        """
        container = yield from self._acquire(config, prewarm=True)
        self.release(container)
        return container

    def n_idle(self, config: ResourceConfig) -> int:
        """Idle containers of ``config`` still within keep-alive now."""
        return len(self._alive(config))

    @property
    def n_busy(self) -> int:
        """Containers currently busy (holding a concurrency slot if limited)."""
        return sum(1 for c in self.containers if c.state == "busy")

    @property
    def n_queued(self) -> int:
        """Invocations waiting for a concurrency slot."""
        return 0 if self._slots is None else len(self._slots.waiting)

    def check(self) -> None:
        """Assert the pool invariants: no config ever had more warm starts than idle containers.

        Raises
        ------
        AssertionError
            Naming the config whose warm starts exceed the containers released idle.
        """
        for config, taken in self._n_taken_warm.items():
            made = self._n_made_idle.get(config, 0)
            assert taken <= made, (
                f"{config}: {taken} warm starts but only {made} containers released idle"
            )
        for config, pool in self._idle.items():
            for container in pool:
                assert container.state == "idle" and container.config == config, (
                    f"container {container.id} in the idle pool of {config} is {container.state}"
                )

    # -- internals ----------------------------------------------------------------------------

    def _alive(self, config: ResourceConfig) -> deque[Container]:
        """The idle pool of ``config`` with expired containers dropped (oldest release first)."""
        pool = self._idle.setdefault(config, deque())
        deadline = self.env.now - self.platform.keep_alive_ms
        while pool and pool[0].idle_since_ms < deadline:
            expired = pool.popleft()
            expired.state = "expired"
            self.n_expired += 1
        return pool

    def _acquire(
        self, config: ResourceConfig, *, prewarm: bool
    ) -> Generator[simpy.Event, Any, Container]:
        slot = None
        if self._slots is not None:
            slot = self._slots.request()
            try:
                yield slot
            except BaseException:
                slot.cancel()
                raise
        now = self.env.now
        pool = self._alive(config)
        if pool:
            container = pool.pop()  # most recently released
            container.startup = "warm"
            container.startup_ms = self.platform.warm_start_ms
            self._n_taken_warm[config] = self._n_taken_warm.get(config, 0) + 1
            if prewarm:
                self.n_prewarm += 1
            else:
                self.n_warm += 1
                self.n_warm_prewarmed += container.prewarmed
            container.prewarm_hit = container.prewarmed and not prewarm
        else:
            startup_ms = self.platform.sample_cold_start_ms(config, self.rng)
            container = Container(len(self.containers), config, "cold", startup_ms, now)
            container.prewarm_hit = False
            self.containers.append(container)
            if prewarm:
                self.n_prewarm += 1
            else:
                self.n_cold += 1
        container.state = "busy"
        container.busy_since_ms = now
        container.idle_since_ms = math.nan
        container._slot = slot
        container._is_prewarm = prewarm
        if container.startup_ms > 0:
            yield self.host.work(container.startup_ms)
        return container


class _Slots:
    """The account's concurrency slots: `simpy.Resource` semantics, without its bookkeeping.

    A request succeeds at once if a slot is free and no earlier request waits; otherwise it
    waits in FIFO order. As in SimPy, a new request or a release event (scheduled when a slot
    is released, processed like any event) looks at the first waiting request only, and a
    granted request is an event the caller yields. The same events are scheduled at the same
    points as by `simpy.Resource`, so a run is the same event for event; only SimPy's user
    list (whose removal scans every busy slot) and generic queues are saved.
    """

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self.n_users = 0
        self.waiting: deque[_Request] = deque()

    def request(self) -> _Request:
        request = _Request(self)
        self.waiting.append(request)
        self._grant_first()
        return request

    def release(self, request: _Request) -> None:
        if request.granted:
            request.granted = False
            self.n_users -= 1
        released = simpy.Event(self.env)
        released.callbacks.append(self._grant_first)
        released.succeed()

    def _grant_first(self, _event: simpy.Event | None = None) -> None:
        """Give a free slot to the first waiting request, if any (SimPy looks at one only)."""
        if self.waiting and self.n_users < self.capacity:
            request = self.waiting.popleft()
            self.n_users += 1
            request.granted = True
            request.succeed()


class _Request(simpy.Event):
    """A request for a concurrency slot: succeeds when it is granted."""

    def __init__(self, slots: _Slots) -> None:
        super().__init__(slots.env)
        self.slots = slots
        self.granted = False

    def cancel(self) -> None:
        """Withdraw a request not granted yet (a granted one is released instead)."""
        if not self.granted and self in self.slots.waiting:
            self.slots.waiting.remove(self)
