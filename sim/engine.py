"""The simulated interpreter of worker effects, and `simulate`: one run of a plan in SimPy.

Each handler turns one effect into SimPy time: CPU work (a delay, or a job of the shared host),
transfers through the shared network, store commands, pub/sub, and invocations through the
warm/cold container pools. No handler decides anything about tasks; the worker logic
(`worker.branch`) does, exactly as it does for the real executor.

A run makes tens of events per task, so the driver keeps its own work per event small: an
effect that takes no simulated time is performed on the spot (`TIMELESS`), a latency with CPUs
of its own is a plain timeout, the recorder's function for each effect type is looked up once,
and `Environment` steps through SimPy's queue in one loop. None of this changes which events
exist or their order: a run is the same, event for event (`tests/sim/test_golden.py`).
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Generator, Iterator
from heapq import heappop
from typing import Any, Protocol

import numpy as np
import simpy
from simpy.events import Timeout

from dag.resources import ResourceConfig
from sim.costs import CostLedger
from sim.host import Host
from sim.network import Network
from sim.platform import Platform
from sim.pools import Container, ContainerPools
from worker.branch import Invocation, Logic, Worker, run_client
from worker.effects import (
    Download,
    Execute,
    Exists,
    Get,
    Incr,
    Invoke,
    Now,
    Parallel,
    Publish,
    SetIfAbsent,
    Sleep,
    StreamDownload,
    StreamUpload,
    Subscribe,
    TaskOutput,
    Upload,
    WaitAny,
    WaitFor,
    Warmup,
)
from worker.recording import CLIENT, TraceRecorder
from worker.schedule import Schedule


class TaskProfiles(Protocol):
    """Per-task durations and sizes for one simulated run (see `traces.profiles`)."""

    def exec_ms(self, task_id: str, config: ResourceConfig) -> float: ...

    def output_bytes(self, task_id: str) -> int: ...


#: A dependency counter keeps its members in a list up to this many, then in a set.
_LIST_MEMBERS = 16


class DriverError(RuntimeError):
    """The sim driver cannot perform an effect; the message names the worker and effect."""


class SimDriver:
    """Performs worker effects in simulated time.

    Parameters
    ----------
    env : simpy.Environment
        Clock in ms.
    schedule : Schedule
    profiles : TaskProfiles
        exec ms per task and config, output bytes per task.
    platform : Platform
    rng : numpy.random.Generator
        The run's seeded generator (cold-start draws).
    """

    def __init__(
        self,
        env: simpy.Environment,
        schedule: Schedule,
        profiles: TaskProfiles,
        platform: Platform,
        rng: np.random.Generator,
    ):
        self.env = env
        self.schedule = schedule
        self.profiles = profiles
        self.platform = platform
        self.host = Host.of(env, platform)
        self.network = Network(env, platform, self.host)
        self.pools = ContainerPools(env, platform, rng, self.host)
        self.ledger = CostLedger(platform)
        self.recorder = TraceRecorder(schedule, billing_ms=platform.billing_granularity_ms)
        self.invocations: list[Invoke] = []
        self.uploads: list[str] = []
        self._store: dict[str, int] = {}  # stored outputs: key -> bytes
        self._markers: dict[str, Any] = {}  # small values (set-if-absent keys): key -> value
        self._streams: dict[str, _Stream] = {}
        self._prewarmed: list[Container] = []
        # Dependency counters: the distinct members counted (a list while small, then a set).
        self._counters: dict[str, list[str] | set[str]] = {}
        self._channels: dict[str, simpy.Event] = {}
        self._configs: dict[str, ResourceConfig] = {}
        # A link belongs to a container (reused by warm invocations), not to a worker id.
        self._endpoints: dict[str, tuple[int, ResourceConfig]] = {}
        self._task_overhead_ms = platform.task_overhead_ms
        self._invoke_latency_ms = platform.invoke_latency_ms
        self._shared = self.host.shared
        self._recorders: dict[type, Callable[..., None]] = {}
        self.n_events = 0  # SimPy events processed, once the run is over

    # -- trampoline -------------------------------------------------------------------------

    def run(self, logic: Logic, invocation: Invocation | None) -> Generator[Any, Any, Any]:
        """SimPy process body: perform each effect `logic` yields; return its return value.

        An effect that takes no simulated time (`TIMELESS`) is performed on the spot, without
        a generator of its own; the others run their handler as a sub-generator. A Parallel's
        members are performed in turn and their results returned as a list.
        """
        worker_id = invocation.worker_id if invocation is not None else CLIENT
        if invocation is not None:
            self._configs[worker_id] = invocation.config
        env = self.env
        recorder = self.recorder
        recorders = self._recorders  # effect type -> the recorder's function for it
        send = logic.send
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = send(value) if error is None else logic.throw(error)
            except StopIteration as stop:
                return stop.value
            error = None
            parallel = effect.__class__ is Parallel
            results = []
            try:
                # A Parallel's members go one after another, as the real drivers perform them
                # (one connection, one thread): a multi-input task's downloads take the sum of
                # their times.
                for member in effect.effects if parallel else (effect,):
                    cls = member.__class__
                    start = env._now
                    if cls in TIMELESS:
                        result, nbytes = TIMELESS[cls](self, worker_id, member)
                    else:
                        handler = HANDLERS.get(cls)
                        if handler is None:
                            raise DriverError(
                                f"sim driver has no handler for effect {member!r} "
                                f"(worker {worker_id!r})"
                            )
                        if cls is Execute and self._task_overhead_ms > 0:
                            # The worker's own work for the task, outside its recorded exec.
                            yield self.host.work(self._task_overhead_ms)
                            start = env._now
                        result, nbytes = yield from handler(self, worker_id, member)
                    record = recorders.get(cls)
                    if record is None:
                        record = recorders[cls] = recorder.for_effect(cls)
                    record(worker_id, member, start, env._now, nbytes)
                    results.append(result)
                value = results if parallel else results[0]
            except DriverError as exc:
                value, error = None, exc

    # -- workers --------------------------------------------------------------------------

    def config_of(self, worker_id: str) -> ResourceConfig:
        try:
            return self._configs[worker_id]
        except KeyError:
            raise DriverError(f"worker {worker_id!r} moves data but was never invoked") from None

    def endpoint(self, worker_id: str) -> tuple[int, ResourceConfig]:
        """The network link a worker's transfers use: its container's (key, config)."""
        try:
            return self._endpoints[worker_id]
        except KeyError:
            raise DriverError(f"worker {worker_id!r} moves data but was never invoked") from None

    def worker_process(self, effect: Invoke, invoked_ms: float) -> Generator[Any, Any, None]:
        """One invocation: get a container, run the worker's branch, release the container."""
        invocation = Invocation.from_effect(effect)
        container: Container = yield from self.pools.acquire(invocation.config)
        self.recorder.worker_started(
            invocation.worker_id,
            invocation.config,
            startup=container.startup,
            startup_ms=container.startup_ms,
            invoked_ms=invoked_ms,
            ready_ms=self.env.now,
        )
        self._configs[invocation.worker_id] = invocation.config
        self._endpoints[invocation.worker_id] = (container.id, invocation.config)
        if container.prewarm_hit:  # the warm pool kept it idle for us since its warm-up
            idle_ms = container.busy_since_ms - container.invocations[-1].end_ms
            self.ledger.idle(invocation.config, idle_ms)
            self.recorder.worker_prewarmed(invocation.worker_id)
        if self.platform.worker_setup_ms > 0:
            yield self.host.work(self.platform.worker_setup_ms)
        yield from Worker(self.schedule, invocation).mock_execute_branch(self)
        busy_ms = self.pools.release(container)
        self.ledger.invocation(invocation.config, busy_ms)
        self.recorder.worker_ended(invocation.worker_id, self.env.now)
        # Its effects are over: no per-worker state outlives it (a million-task run has
        # hundreds of thousands of workers).
        del self._configs[invocation.worker_id], self._endpoints[invocation.worker_id]

    def prewarm_process(self, config: ResourceConfig, delay_ms: float) -> Generator[Any, Any, None]:
        """A warm-up invocation after `delay_ms`: billed like any other invocation, it leaves an
        idle warm container; its idle time is billed when a worker takes it or the run ends."""
        if delay_ms > 0:
            yield self.env.timeout(delay_ms)
        container: Container = yield from self.pools.prewarm(config)
        self.ledger.invocation(config, container.invocations[-1].duration_ms)
        self._prewarmed.append(container)

    def bill_unused_prewarms(self, end_ms: float) -> None:
        """Pre-warmed containers nobody took: bill their idle time until `end_ms`."""
        for container in self._prewarmed:
            if container.state == "idle" and container.prewarmed:
                idle_ms = max(0.0, end_ms - container.invocations[-1].end_ms)
                self.ledger.idle(container.config, idle_ms)

    def stream(self, key: str) -> _Stream:
        found = self._streams.get(key)
        if found is None:
            found = self._streams[key] = _Stream(self.env)
        return found

    def _channel(self, channel: str) -> simpy.Event:
        event = self._channels.get(channel)
        if event is None:
            event = self._channels[channel] = self.env.event()
        return event


# -- handlers: one per effect; each a SimPy process body returning (result, bytes moved), ----
# -- or, for an effect in TIMELESS, a plain function returning it at once -------------------

Handler = Callable[[SimDriver, str, Any], Generator[Any, Any, tuple[Any, int]]]


class _Stream:
    """A stream being written: when it began (with its chunk sizes) and each chunk's arrival."""

    def __init__(self, env: simpy.Environment):
        self.begun = env.event()  # value: list of chunk sizes
        self.chunks: list[simpy.Event] = []


def _execute(driver: SimDriver, worker_id: str, effect: Execute):
    config = driver.config_of(worker_id)
    exec_ms = float(driver.profiles.exec_ms(effect.task_id, config))
    if not (0 <= exec_ms < math.inf):
        raise DriverError(f"profile gives exec_ms={exec_ms!r} for task {effect.task_id!r}")
    if exec_ms > 0:
        if driver._shared:  # every worker's tasks share the machine's cores
            yield driver.host.work(exec_ms)
        else:  # a worker runs one task at a time, on CPUs of its own
            yield Timeout(driver.env, exec_ms)
    nbytes = int(driver.profiles.output_bytes(effect.task_id))
    return TaskOutput(None, nbytes), nbytes


def _download(driver: SimDriver, worker_id: str, effect: Download):
    nbytes = driver._store.get(effect.key)
    if nbytes is None:
        raise DriverError(f"worker {worker_id!r} downloads missing key {effect.key!r}")
    if worker_id != CLIENT:
        key, config = driver._endpoints.get(worker_id) or driver.endpoint(worker_id)
        yield from driver.network.transfer(key, config, nbytes, "down")
    return None, nbytes


def _upload(driver: SimDriver, worker_id: str, effect: Upload):
    key, config = driver._endpoints.get(worker_id) or driver.endpoint(worker_id)
    yield from driver.network.transfer(key, config, effect.nbytes, "up")
    driver._store[effect.key] = effect.nbytes
    driver.uploads.append(effect.key)
    return None, effect.nbytes


def _apply_incr(driver: SimDriver, worker_id: str, effect: Incr, start_ms: float) -> int:
    members = driver._counters.get(effect.counter)
    if members is None:
        driver._counters[effect.counter] = [effect.member]
        return 1
    if effect.member not in members:
        if members.__class__ is list and len(members) >= _LIST_MEMBERS:
            members = driver._counters[effect.counter] = set(members)
        if members.__class__ is list:
            members.append(effect.member)
        else:
            members.add(effect.member)
    return len(members)


def _apply_set_if_absent(
    driver: SimDriver, worker_id: str, effect: SetIfAbsent, start_ms: float
) -> bool:
    if effect.key in driver._store or effect.key in driver._markers:
        return False
    driver._markers[effect.key] = effect.value
    return True


def _apply_exists(driver: SimDriver, worker_id: str, effect: Exists, start_ms: float) -> bool:
    return effect.key in driver._store or effect.key in driver._markers


def _apply_get(driver: SimDriver, worker_id: str, effect: Get, start_ms: float) -> Any:
    if effect.key in driver._markers:
        return driver._markers[effect.key]
    members = driver._counters.get(effect.key)
    return None if members is None else len(members)


def _apply_subscribe(driver: SimDriver, worker_id: str, effect: Subscribe, start_ms: float) -> None:
    driver._channel(effect.channel)


def _apply_invoke(driver: SimDriver, worker_id: str, effect: Invoke, start_ms: float) -> None:
    driver.invocations.append(effect)
    if driver.host.shared and driver.platform.invocation_cpu_ms > 0:
        # The platform's own work for this invocation (API server, runtime client, logs) runs
        # beside the invoker and the worker: it slows them only by taking the host's CPUs.
        driver.host.work(driver.platform.invocation_cpu_ms)
    driver.env.process(driver.worker_process(effect, start_ms))


_APPLY = {
    Get: _apply_get,
    Incr: _apply_incr,
    SetIfAbsent: _apply_set_if_absent,
    Exists: _apply_exists,
    Subscribe: _apply_subscribe,
    Invoke: _apply_invoke,
}


def _store_command(driver: SimDriver, worker_id: str, effect: Any):
    """INCR, SETNX, EXISTS: one store round trip (a plain delay), then the command takes
    effect."""
    start = driver.env._now
    latency = driver.network.store_command()
    if latency is not None:
        yield latency
    return _APPLY[effect.__class__](driver, worker_id, effect, start), 0


def _subscribe(driver: SimDriver, worker_id: str, effect: Subscribe):
    """Timeless: performed on the spot (see `TIMELESS`)."""
    _apply_subscribe(driver, worker_id, effect, driver.env._now)
    return None, 0


def _publish(driver: SimDriver, worker_id: str, effect: Publish):
    """A message carrying an output (``nbytes``) first sends those bytes up to the store."""
    carried = None
    if effect.nbytes is not None:
        carried = TaskOutput(None, effect.nbytes)
        if worker_id != CLIENT:
            endpoint = driver.endpoint(worker_id)
            yield from driver.network.transfer(*endpoint, effect.nbytes, "up", command=False)
    latency = driver.network.publish_message()
    if latency is not None:
        yield latency
    event = driver._channel(effect.channel)
    if not event.triggered:
        event.succeed(carried)
    return None, effect.nbytes or 0


def _wait_for(driver: SimDriver, worker_id: str, effect: WaitFor):
    """Returns the output the message carries (read down from the store), else None."""
    event = driver._channel(effect.channel)
    if not event.processed:
        yield event
    carried = event.value
    if not isinstance(carried, TaskOutput):
        return None, 0
    if worker_id != CLIENT:
        endpoint = driver.endpoint(worker_id)
        yield from driver.network.transfer(*endpoint, carried.nbytes, "down", command=False)
    return carried, carried.nbytes


def _invoke(driver: SimDriver, worker_id: str, effect: Invoke):
    """The invoker sends the payload's inputs (if any) and waits for the API call; the worker
    starts once the request arrives."""
    invoked_ms = driver.env._now
    payload_bytes = effect.payload_bytes if effect.inputs else 0
    if payload_bytes > 0:
        endpoint = driver.endpoint(worker_id)
        yield from driver.network.send_payload(*endpoint, payload_bytes)
    if driver._invoke_latency_ms > 0:
        yield driver.host.work(driver._invoke_latency_ms)
    _apply_invoke(driver, worker_id, effect, invoked_ms)
    return None, payload_bytes


def _warmup(driver: SimDriver, worker_id: str, effect: Warmup):
    """Timeless: the warm-up runs in a process of its own (see `TIMELESS`)."""
    driver.env.process(driver.prewarm_process(effect.config, effect.delay_ms))
    return None, 0


def _wait_any(driver: SimDriver, worker_id: str, effect: WaitAny):
    events = [driver._channel(channel) for channel in effect.channels]
    if not any(event.triggered for event in events):
        yield driver.env.any_of(events)
    return tuple(c for c, e in zip(effect.channels, events, strict=True) if e.triggered), 0


def _chunk_sizes(nbytes: int, chunk_bytes: int) -> list[int]:
    full, rest = divmod(nbytes, chunk_bytes)
    return [chunk_bytes] * full + ([rest] if rest or not full else [])


def _stream_upload(driver: SimDriver, worker_id: str, effect: StreamUpload):
    """Chunks go up one after another; each is readable as soon as it is stored."""
    stream = driver.stream(effect.key)
    sizes = _chunk_sizes(effect.nbytes, effect.chunk_bytes)
    stream.chunks = [driver.env.event() for _ in sizes]
    stream.begun.succeed(sizes)
    endpoint = driver.endpoint(worker_id)
    for index, (size, arrived) in enumerate(zip(sizes, stream.chunks, strict=True)):
        # Chunk writes are pipelined: only the first pays the store's command latency.
        yield from driver.network.transfer(*endpoint, size, "up", latency=index == 0)
        arrived.succeed()
    driver._store[effect.key] = effect.nbytes
    driver.uploads.append(effect.key)
    return None, effect.nbytes


def _stream_download(driver: SimDriver, worker_id: str, effect: StreamDownload):
    """Read each chunk once it arrives, so the download overlaps the producer's upload."""
    endpoint = driver.endpoint(worker_id)
    stream = driver.stream(effect.key)
    sizes = yield stream.begun
    for index, (size, arrived) in enumerate(zip(sizes, stream.chunks, strict=True)):
        if not arrived.processed:
            yield arrived
        yield from driver.network.transfer(*endpoint, size, "down", latency=index == 0)
    return None, sum(sizes)


def _sleep(driver: SimDriver, worker_id: str, effect: Sleep):
    if effect.ms > 0:
        yield driver.env.timeout(effect.ms)
    return None, 0


def _now(driver: SimDriver, worker_id: str, effect: Now):
    """Timeless (see `TIMELESS`)."""
    return driver.env.now, 0


HANDLERS: dict[type, Handler] = {
    Execute: _execute,
    Download: _download,
    Upload: _upload,
    Get: _store_command,
    Incr: _store_command,
    SetIfAbsent: _store_command,
    Exists: _store_command,
    Subscribe: _subscribe,
    Publish: _publish,
    WaitFor: _wait_for,
    Invoke: _invoke,
    Warmup: _warmup,
    WaitAny: _wait_any,
    StreamUpload: _stream_upload,
    StreamDownload: _stream_download,
    Sleep: _sleep,
    Now: _now,
}
#: Handlers of effects that take no simulated time: plain functions returning (result, bytes
#: moved), performed on the spot by the trampoline, with no generator and no SimPy event.
TIMELESS: dict[type, Callable[[SimDriver, str, Any], tuple[Any, int]]] = {
    Subscribe: _subscribe,
    Warmup: _warmup,
    Now: _now,
}


class Environment(simpy.Environment):
    """SimPy's environment whose `run` to the end steps through the queue in one loop.

    The same queue, in the same order, each event's callbacks called as `simpy.Environment.step`
    calls them; only the method call per event is saved (a run makes millions). ``run(until)``
    is SimPy's own.
    """

    def run(self, until: Any = None) -> Any:
        if until is not None:
            return super().run(until)
        queue = self._queue
        while queue:
            self._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                # A failed event nobody handled crashes the run, as in SimPy.
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
        return None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (nested pauses are fine).

    SimPy makes millions of short-lived events that reference counting frees, and a run's
    tables are built from millions of values; the cyclic collector would scan the growing heap
    again and again for nothing (a 25% slowdown at 10,000 tasks, worse with size).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def run_simulation(
    schedule: Schedule, profiles: TaskProfiles, platform: Platform, seed: int | None
) -> SimDriver:
    """Run the client and every worker it starts to completion; returns the finished driver.

    Raises
    ------
    DriverError
        If the run ends with tasks that never executed (a deadlock), naming some of them.
    """
    env = Environment()
    driver = SimDriver(env, schedule, profiles, platform, np.random.default_rng(seed))
    env.process(driver.run(run_client(schedule, fetch_results=False), None))
    with gc_paused():
        env.run()
    driver.n_events = next(env._eid)  # every event scheduled was processed: the queue is empty
    driver.bill_unused_prewarms(env.now)
    missing = set(schedule.dag) - driver.recorder.executed()
    if missing:
        raise DriverError(
            f"simulation ended with {len(missing)} task(s) never executed, e.g. {sorted(missing)[:5]}"
        )
    return driver
