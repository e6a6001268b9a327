"""Worker liveness: heartbeats that the driver keeps, never the task, and the client's watch.

A running worker holds a heartbeat key (``hb:<worker>``, its attempt number, a short ttl) that
one thread per process refreshes for every worker that process runs, at a third of the ttl. The
client re-invokes a worker only when its heartbeat has expired: a worker that is slow, however
slow, keeps its heartbeat and is never run twice; one whose process died loses it within the
ttl. The refresh is a fenced write, so a superseded attempt never looks alive. `Watch` is the
client's side: it reads the start claims, heartbeats and logs, and re-invokes the lost workers.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from runtime.errors import StoreError, WorkerLost
from runtime.events import LOG_NAME, EventLog, Replayed, replay
from runtime.store import RedisStore
from runtime.values import loads
from worker.branch import await_sinks, restart, run_client

if TYPE_CHECKING:  # the driver imports this module for its heartbeats
    from runtime.redis_driver import RedisDriver

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_TTL_S = 10.0


class Heartbeats:
    """Refreshes the heartbeats of the workers of this process from one daemon thread.

    Parameters
    ----------
    clock : callable
        Monotonic seconds (tests may pass their own).
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._beats: dict[int, tuple[RedisStore, int, float]] = {}  # token -> (store, ttl, due)
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self, store: RedisStore, ttl_s: float) -> int:
        """Set the heartbeat of `store`'s writer now and keep it fresh; returns a token for
        `stop`.

        Raises
        ------
        WriteRefused
            If the writer's attempt is superseded or the run is gone or cancelled (it must not
            start at all).
        """
        ttl_ms = max(int(ttl_s * 1000), 1)
        store.heartbeat(ttl_ms)
        with self._lock:
            token = next(self._tokens)
            self._beats[token] = (store, ttl_ms, self._clock() + ttl_s / 3)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="heartbeats", daemon=True)
                self._thread.start()
            self._wake.notify()
        return token

    def stop(self, token: int) -> None:
        """Stop refreshing the heartbeat of `token` (it expires by itself, or `finish` drops
        it)."""
        with self._lock:
            self._beats.pop(token, None)

    def _due(self) -> list[tuple[int, RedisStore, int]]:
        now = self._clock()
        due = []
        for token, (store, ttl_ms, at) in list(self._beats.items()):
            if at <= now:
                due.append((token, store, ttl_ms))
                self._beats[token] = (store, ttl_ms, now + ttl_ms / 3000)
        return due

    def _loop(self) -> None:
        while True:
            with self._lock:
                due = self._due()
                if not due:
                    wait = min((at for _s, _t, at in self._beats.values()), default=None)
                    self._wake.wait(None if wait is None else max(wait - self._clock(), 0.0))
                    continue
            for token, store, ttl_ms in due:
                try:
                    store.heartbeat(ttl_ms)
                except StoreError as err:  # superseded or cancelled: its next write stops it
                    log.info("heartbeat of %s stopped: %s", store.writer, err)
                    self.stop(token)
                except Exception:  # Redis unreachable: retried at the next beat
                    log.warning("heartbeat of %s failed", store.writer, exc_info=True)


_heartbeats = Heartbeats()


def heartbeats() -> Heartbeats:
    """The heartbeat thread of this process."""
    return _heartbeats


class LogReader:
    """Reads the workers' trace logs of one run as they arrive, and what they tell."""

    def __init__(self, store: RedisStore):
        self.store = store
        self.logs: list[list[tuple[Any, ...]]] = []
        self.ended: set[str] = set()

    def poll(self) -> set[str]:
        """Read the logs stored since the last poll; returns the workers that have ended."""
        for blob in self.store.read_log(LOG_NAME, len(self.logs)):
            events = loads(blob, LOG_NAME)
            self.logs.append(events)
            self.ended.update(event[1] for event in events if event[0] == "end")
        return self.ended

    def settle(self, events: EventLog, timeout_s: float) -> Replayed:
        """Read logs until every invoked worker has ended, or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            replayed = replay(_NullRecorder(), [events.events, *self.logs])  # type: ignore[arg-type]
            missing = {i.worker_id for i in replayed.invocations} - replayed.ended
            if not missing or time.monotonic() >= deadline:
                if missing:
                    log.warning(
                        "run %s: no trace log from workers %s", self.store.run_id, sorted(missing)
                    )
                return replayed
            time.sleep(0.02)


class Watch:
    """The client's watch over a run's workers while it waits for the sinks.

    Every `check` reads the start claims, then the heartbeats, then the logs (in that order:
    a worker ends by storing its log and dropping its heartbeat in one write, so a worker seen
    without a heartbeat and without a log has not ended). An invoked worker that has not ended
    is lost when its heartbeat, once seen, expired, or never appeared within `start_timeout_s`;
    a lost worker is fenced off (its attempt number goes up) and re-invoked as that attempt,
    at most `retries` times.

    Parameters
    ----------
    store : RedisStore
        The client's store of the run.
    logs : LogReader
    schedule : Schedule
    backend : Backend
        Re-invokes lost workers.
    ref : RunRef
        Makes their payloads.
    retries : int
        Re-invocations allowed per worker.
    timeout_s : float
        Longest wait with no progress (no worker starting or ending), seconds.
    start_timeout_s : float
        Longest an invoked worker may take to show its first heartbeat, seconds.
    """

    def __init__(self, store, logs, schedule, backend, ref, *, retries, timeout_s, start_timeout_s):
        self.store, self.logs, self.schedule = store, logs, schedule
        self.backend, self.ref = backend, ref
        self.retries, self.timeout_s, self.start_timeout_s = retries, timeout_s, start_timeout_s
        self.attempts: dict[str, int] = {}
        self.alive_seen: set[str] = set()
        self.since: dict[str, float] = {}
        self.progress: tuple[int, int] = (0, 0)
        self.progress_at = time.monotonic()
        self.idle_checks = 0
        self.live: Any = None  # the client's LivePublisher, when the run publishes events

    def await_sinks(self, driver: RedisDriver) -> dict[str, Any]:
        """Start the run and wait for every sink, checking liveness between waits."""
        logic = run_client(self.schedule)
        while True:
            try:
                return driver.run(logic, None)
            except TimeoutError:
                self.check()
            logic = await_sinks(self.schedule)

    def check(self) -> None:
        """One look at the workers: re-invoke the lost ones, raise when the run is stuck.

        Raises
        ------
        WorkerLost
            A lost worker has no retry left, every worker ended with sinks missing, or
            nothing progressed for `timeout_s`.
        """
        now = time.monotonic()
        claims = {w: tuple(claim or ()) for w, claim in self.store.started().items()}
        invoked = sorted(w for w, claim in claims.items() if claim[1:2] == ("invoke",))
        beats = dict(zip(invoked, self.store.heartbeats(invoked), strict=True))
        ended = self.logs.poll()
        running = [w for w in invoked if w not in ended]
        progress = (len(ended), len(claims))
        if progress != self.progress:
            self.progress, self.progress_at = progress, now
        lost = []
        for worker_id in running:
            if beats[worker_id] == self.attempts.get(worker_id, 0):
                self.alive_seen.add(worker_id)
                continue
            since = self.since.setdefault(worker_id, now)
            if worker_id in self.alive_seen or now - since >= self.start_timeout_s:
                lost.append(worker_id)
        for worker_id in lost:
            self._retry(worker_id, now)
        self.idle_checks = self.idle_checks + 1 if not running else 0
        if self.idle_checks >= 2:
            raise WorkerLost(
                f"run {self.store.run_id!r} stalled: every worker ended, but sinks "
                f"{sorted(self.schedule.dag.sinks)} were not all stored"
            )
        if now - self.progress_at > self.timeout_s:
            raise WorkerLost(
                f"run {self.store.run_id!r}: no progress for {self.timeout_s:g} s; workers "
                f"still running: {running or 'none'}"
            )

    def _retry(self, worker_id: str, now: float) -> None:
        attempt = self.attempts.get(worker_id, 0)
        if attempt >= self.retries:
            why = "its heartbeat expired" if worker_id in self.alive_seen else "it never started"
            raise WorkerLost(
                f"run {self.store.run_id!r}: worker {worker_id!r} was lost ({why}) after "
                f"{attempt + 1} attempt(s)"
            )
        if self.live is not None:
            self.live.emit("worker_lost", worker=worker_id, attempt=attempt)
        attempt = self.store.next_attempt(worker_id)
        self.attempts[worker_id] = attempt
        self.alive_seen.discard(worker_id)
        self.since[worker_id] = now
        log.warning(
            "run %s: worker %s lost; re-invoking it as attempt %d",
            self.store.run_id,
            worker_id,
            attempt,
        )
        invocation = restart(self.schedule, worker_id, attempt)
        if self.live is not None:
            config = invocation.config
            self.live.emit(
                "worker_invoked", worker=worker_id, attempt=attempt,
                memory_mb=config.memory_mb, cpus=config.cpus, by="client",
            )  # fmt: skip
        self.backend.invoke(self.ref.payload(invocation, self.ref.now_ms()), invocation.config)


class _NullRecorder:
    def worker_started(self, *args: Any, **kwargs: Any) -> None: ...

    def worker_ended(self, *args: Any) -> None: ...

    def effect(self, *args: Any) -> None: ...
