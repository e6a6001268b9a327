"""The in-process driver: real Python functions, threads for workers, a dict for the store.

It needs no service, which makes it the test double of the real executor: it proves the worker
state machine does all the deciding (this module only performs effects) and it records the same
trace tables as the simulator and the Redis/Lambda driver.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dag.graph import DAG
from dag.plan import Plan
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
from worker.estimates import Estimates
from worker.recording import CLIENT, TraceRecorder
from worker.schedule import Schedule

log = logging.getLogger(__name__)

TaskCall = Callable[[str, Mapping[str, Any]], Any]


class WorkerFailed(RuntimeError):
    """A worker thread raised; the message names the worker and the original error."""


def output_nbytes(value: Any) -> int:
    """Serialised size of a task output, in bytes (pickle protocol 5)."""
    return len(pickle.dumps(value, protocol=5))


@dataclass
class InProcessResult:
    """Sink results and the recorded trace rows of one in-process run."""

    results: dict[str, Any]
    task_rows: list[dict[str, Any]]
    worker_rows: list[dict[str, Any]]
    makespan_ms: float
    invocations: list[Invoke]
    uploads: list[str]


class InProcessDriver:
    """Perform worker effects with threads and an in-memory store.

    Parameters
    ----------
    dag : DAG
    plan : Plan
    call : callable (task_id, inputs) -> value
        Runs one task's real function, e.g. ``lambda t, inputs: workflow.specs[t].call(inputs)``.
    estimates : Estimates, optional
        Run-time predictions for task-dup and clustering (needed when the plan uses task-dup).
    wait_poll_ms : float
        How often a blocked WaitFor checks whether another worker failed.
    """

    def __init__(
        self,
        dag: DAG,
        plan: Plan,
        call: TaskCall,
        *,
        estimates: Estimates | None = None,
        wait_poll_ms: float = 50.0,
    ):
        self.schedule = Schedule.build(dag, plan, estimates)
        self.call = call
        self.wait_poll_s = wait_poll_ms / 1000
        self.recorder = TraceRecorder(self.schedule)
        self._lock = threading.Lock()
        self._store: dict[str, tuple[Any, int]] = {}
        self._counters: dict[str, set[str]] = {}
        self._channels: dict[str, threading.Event] = {}
        self._messages: dict[str, TaskOutput] = {}  # outputs carried by published messages
        self._threads: list[threading.Thread] = []
        self._failures: list[BaseException] = []
        self._t0 = time.perf_counter()
        self.invocations: list[Invoke] = []
        self.uploads: list[str] = []

    def counters(self) -> dict[str, int]:
        """Dependency counters as they stand: distinct producers counted per counter."""
        with self._lock:
            return {name: len(members) for name, members in self._counters.items()}

    def stored_keys(self) -> set[str]:
        with self._lock:
            return set(self._store)

    def now_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000.0

    # -- running ----------------------------------------------------------------------------

    def execute(self) -> InProcessResult:
        """Run the whole plan: the client starts the workers and collects the sinks."""
        self._t0 = time.perf_counter()
        results = self.run(run_client(self.schedule), None)
        for thread in list(self._threads):
            thread.join()
        self._raise_failures()
        return InProcessResult(
            results=results,
            task_rows=self.recorder.task_rows(),
            worker_rows=self.recorder.worker_rows(),
            makespan_ms=max((r["end_ms"] for r in self.recorder.task_rows()), default=0.0),
            invocations=list(self.invocations),
            uploads=list(self.uploads),
        )

    def run(self, logic: Logic, invocation: Invocation | None) -> Any:
        """Trampoline: perform each effect `logic` yields and send back its result."""
        worker_id = invocation.worker_id if invocation is not None else CLIENT
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = logic.send(value) if error is None else logic.throw(error)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = self._perform(worker_id, effect), None
            except Exception as exc:  # thrown back in at the yield: the worker's error path
                value, error = None, exc

    def _perform(self, worker_id: str, effect: Any) -> Any:
        if isinstance(effect, Parallel):
            return [self._perform(worker_id, member) for member in effect.effects]
        handler = HANDLERS.get(type(effect))
        if handler is None:
            raise TypeError(f"in-process driver has no handler for effect {effect!r}")
        start = self.now_ms()
        result, nbytes = handler(self, worker_id, effect)
        self.recorder.effect(worker_id, effect, start, self.now_ms(), nbytes)
        return result

    def _raise_failures(self) -> None:
        if self._failures:
            raise self._failures[0]

    def _start_worker(self, effect: Invoke, invoked_ms: float) -> None:
        invocation = Invocation.from_effect(effect)

        def body() -> None:
            self.recorder.worker_started(
                invocation.worker_id,
                invocation.config,
                startup="none",
                startup_ms=0.0,
                invoked_ms=invoked_ms,
                ready_ms=self.now_ms(),
            )
            try:
                Worker(self.schedule, invocation).execute_branch(self)
            except BaseException as exc:
                log.exception("worker %s failed", invocation.worker_id)
                self._failures.append(
                    WorkerFailed(f"worker {invocation.worker_id!r} failed: {exc!r}")
                )
                self._failures[-1].__cause__ = exc
            finally:
                self.recorder.worker_ended(invocation.worker_id, self.now_ms())

        thread = threading.Thread(target=body, name=invocation.worker_id, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _channel(self, channel: str) -> threading.Event:
        with self._lock:
            return self._channels.setdefault(channel, threading.Event())


# -- handlers: one per effect, each returns (result, bytes moved) --------------------------


def _execute(driver: InProcessDriver, worker_id: str, effect: Execute) -> tuple[Any, int]:
    value = driver.call(effect.task_id, effect.inputs)
    nbytes = output_nbytes(value)
    return TaskOutput(value, nbytes), nbytes


def _download(driver: InProcessDriver, worker_id: str, effect: Download) -> tuple[Any, int]:
    with driver._lock:
        if effect.key not in driver._store:
            raise KeyError(f"worker {worker_id!r} downloads missing key {effect.key!r}")
        value, nbytes = driver._store[effect.key]
    return value, nbytes


def _upload(driver: InProcessDriver, worker_id: str, effect: Upload) -> tuple[Any, int]:
    with driver._lock:
        driver._store[effect.key] = (effect.value, effect.nbytes)
        driver.uploads.append(effect.key)
    return None, effect.nbytes


def _stream_upload(
    driver: InProcessDriver, worker_id: str, effect: StreamUpload
) -> tuple[Any, int]:
    # In memory a stream is the whole value at once; readers wait for it below.
    result = _upload(driver, worker_id, effect)
    driver._channel(f"stream:{effect.key}").set()
    return result


def _stream_download(
    driver: InProcessDriver, worker_id: str, effect: StreamDownload
) -> tuple[Any, int]:
    _block(driver, driver._channel(f"stream:{effect.key}"))
    return _download(driver, worker_id, Download(key=effect.key, task_id=effect.task_id))


def _get(driver: InProcessDriver, worker_id: str, effect: Get) -> tuple[Any, int]:
    with driver._lock:
        if effect.key in driver._store:
            return driver._store[effect.key][0], 0
        members = driver._counters.get(effect.key)
        return (None if members is None else len(members)), 0


def _incr(driver: InProcessDriver, worker_id: str, effect: Incr) -> tuple[Any, int]:
    with driver._lock:
        members = driver._counters.setdefault(effect.counter, set())
        members.add(effect.member)
        return len(members), 0


def _set_if_absent(driver: InProcessDriver, worker_id: str, effect: SetIfAbsent) -> tuple[Any, int]:
    with driver._lock:
        if effect.key in driver._store:
            return False, 0
        driver._store[effect.key] = (effect.value, 0)
    return True, 0


def _exists(driver: InProcessDriver, worker_id: str, effect: Exists) -> tuple[Any, int]:
    with driver._lock:
        return effect.key in driver._store, 0


def _subscribe(driver: InProcessDriver, worker_id: str, effect: Subscribe) -> tuple[Any, int]:
    driver._channel(effect.channel)
    return None, 0


def _publish(driver: InProcessDriver, worker_id: str, effect: Publish) -> tuple[Any, int]:
    if effect.nbytes is not None:  # the message carries an output (small-results-inline)
        with driver._lock:
            driver._messages[effect.channel] = TaskOutput(effect.value, effect.nbytes)
    driver._channel(effect.channel).set()
    return None, effect.nbytes or 0


def _block(driver: InProcessDriver, *events: threading.Event) -> int:
    """Wait until one of `events` is set; returns its index. A failed worker ends the wait."""
    while True:
        for index, event in enumerate(events):
            if event.is_set():
                return index
        if events[0].wait(driver.wait_poll_s if len(events) == 1 else driver.wait_poll_s / 10):
            return 0
        if driver._failures:  # the run cannot finish: surface the first failure here too
            raise driver._failures[0]


def _wait_for(driver: InProcessDriver, worker_id: str, effect: WaitFor) -> tuple[Any, int]:
    _block(driver, driver._channel(effect.channel))
    with driver._lock:
        carried = driver._messages.get(effect.channel)
    return carried, 0 if carried is None else carried.nbytes


def _wait_any(driver: InProcessDriver, worker_id: str, effect: WaitAny) -> tuple[Any, int]:
    events = [driver._channel(c) for c in effect.channels]
    _block(driver, *events)
    return tuple(c for c, e in zip(effect.channels, events, strict=True) if e.is_set()), 0


def _invoke(driver: InProcessDriver, worker_id: str, effect: Invoke) -> tuple[Any, int]:
    with driver._lock:
        driver.invocations.append(effect)
    driver._start_worker(effect, driver.now_ms())  # its payload's inputs go with it
    return None, effect.payload_bytes


def _warmup(driver: InProcessDriver, worker_id: str, effect: Warmup) -> tuple[Any, int]:
    return None, 0  # threads have no cold start to hide


def _sleep(driver: InProcessDriver, worker_id: str, effect: Sleep) -> tuple[Any, int]:
    time.sleep(effect.ms / 1000)
    return None, 0


def _now(driver: InProcessDriver, worker_id: str, effect: Now) -> tuple[Any, int]:
    return driver.now_ms(), 0


HANDLERS: dict[type, Callable[[InProcessDriver, str, Any], tuple[Any, int]]] = {
    Execute: _execute,
    Download: _download,
    Upload: _upload,
    Incr: _incr,
    SetIfAbsent: _set_if_absent,
    Exists: _exists,
    Subscribe: _subscribe,
    Publish: _publish,
    WaitFor: _wait_for,
    WaitAny: _wait_any,
    StreamUpload: _stream_upload,
    StreamDownload: _stream_download,
    Get: _get,
    Invoke: _invoke,
    Warmup: _warmup,
    Sleep: _sleep,
    Now: _now,
}


def run_in_process(
    dag: DAG, plan: Plan, call: TaskCall, *, estimates: Estimates | None = None
) -> InProcessResult:
    """Run `plan` on `dag` with real functions in this process; see `InProcessDriver`."""
    return InProcessDriver(dag, plan, call, estimates=estimates).execute()
