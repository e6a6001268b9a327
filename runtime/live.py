"""Live events of a real run: one small JSON event per task or worker state change, published to
the run's bounded Redis stream while it runs; the dashboard follows that stream.

Rules:

1. An event is a JSON object with ``kind``, ``t_ms`` (ms from run start, the trace's clock) and
   the fields `EVENT_FIELDS` names for its kind; never a pickle, so a reader needs no signing key
   and unpickles nothing (`decode` refuses anything else).
2. Events come from what the drivers already see: the effects `RedisDriver` performs (an effect
   begins: ``exec_start``, ``download_start``, ``task_waiting``; it ends: ``exec_end``,
   ``download_end``, ``upload_end``, ``worker_invoked``), a worker's start and end in
   `run_invocation`, a task's failure with its traceback, and the client's liveness watch
   (``worker_lost``). `worker/` knows nothing of them.
3. Events go to the run's stream ``faasdag:<run_id>:_events`` (``XADD ... MAXLEN ~ maxlen``),
   written through the store's fenced write: it gets the run's ttl, and a worker whose attempt
   was superseded, or whose run was cancelled or cleaned up, cannot add to it. One entry holds
   one worker's batch: field ``e``, a JSON array of at most `EVENTS_PER_ENTRY` events (an entry
   per event cost 13-25% more wall time on the 1000-task no-op tree, a batch per entry about
   4%: `benchmarks/runtime_overhead.py`), so the stream keeps about `maxlen` batches.
4. Publishing costs little: a worker keeps only the phase it is in now (it does one thing at
   a time) and sends it if it still is when a batch goes; and no round trip of its own in the
   common case: a worker buffers its events
   and they travel in the same fenced call as its end (`RedisStore.finish`) or its failure
   (`RedisStore.fail`); a process-wide `Flusher` sends what still-running workers buffered
   more than `FLUSH_INTERVAL_S` ago, every `FLUSH_INTERVAL_S`, all of them in one pipelined
   round trip (each worker's batch its own fenced call). A transient state that a later
   event of the same task supersedes within one batch (``exec_start`` followed by its
   ``exec_end``) is left out: the later event carries ``start_ms``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from worker.effects import (
    Download,
    Execute,
    Invoke,
    StreamDownload,
    StreamUpload,
    Upload,
    WaitAny,
    WaitFor,
)

log = logging.getLogger(__name__)

#: The run's stream of events and its description (a JSON object: tasks, plan, prices).
EVENTS_NAME = "_events"
DESCRIPTION_NAME = "_live"
DEFAULT_EVENTS_MAXLEN = 20_000
EVENTS_PER_ENTRY = 64
FLUSH_INTERVAL_S = 0.1
MAX_TEXT_CHARS = 16_000

_TASK = ("worker", "attempt", "task")
_PHASE_END = (*_TASK, "start_ms", "bytes")
#: kind -> fields every event of that kind carries (besides ``kind`` and ``t_ms``).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("n_tasks",),
    "run_ended": ("status",),
    "worker_invoked": ("worker", "attempt", "memory_mb", "cpus", "by"),
    "worker_started": ("worker", "attempt", "memory_mb", "cpus", "startup", "startup_ms"),
    "worker_lost": ("worker", "attempt"),
    "worker_ended": ("worker", "attempt", "ok"),
    "task_waiting": _TASK,
    "download_start": _TASK,
    "download_end": _PHASE_END,
    "exec_start": _TASK,
    "exec_end": _PHASE_END,
    "upload_end": _PHASE_END,
    "task_failed": (*_TASK, "error", "message", "traceback"),
}
_OF_A_WORKER = frozenset(k for k, fields in EVENT_FIELDS.items() if "worker" in fields)
#: Events that only say a task is in some phase now; a later event of the task supersedes them.
TRANSIENT = frozenset(("task_waiting", "download_start", "exec_start"))

_BEGIN_KIND = {
    Execute: "exec_start",
    Download: "download_start",
    StreamDownload: "task_waiting",
    WaitFor: "task_waiting",
    WaitAny: "task_waiting",
}
_END_KIND = {
    Execute: "exec_end",
    Download: "download_end",
    StreamDownload: "download_end",
    Upload: "upload_end",
    StreamUpload: "upload_end",
}


def encode(events: list[dict[str, Any]]) -> bytes:
    """One stream entry's ``e`` field: the JSON array of `events`."""
    return json.dumps(events, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes | str) -> list[dict[str, Any]]:
    """The events of one stream entry (a JSON array), each checked by `check`.

    Raises
    ------
    ValueError
        If it is not JSON or not an array, or an event in it is bad (see `check`).
    """
    try:
        events = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"live events entry is not JSON ({err})") from None
    if not isinstance(events, list):
        raise ValueError(f"live events entry is a {type(events).__name__}, not an array")
    return [check(event) for event in events]


def check(event: Any) -> dict[str, Any]:
    """`event` if it is a valid event of `EVENT_FIELDS`.

    Raises
    ------
    ValueError
        If it is not an object, of an unknown kind, without a finite ``t_ms``, or missing a
        field of its kind (the message names it).
    """
    if not isinstance(event, dict):
        raise ValueError(f"live event is a {type(event).__name__}, not an object")
    kind = event.get("kind")
    if kind not in EVENT_FIELDS:
        raise ValueError(f"live event of unknown kind {kind!r}")
    t_ms = event.get("t_ms")
    if isinstance(t_ms, bool) or not isinstance(t_ms, int | float) or not math.isfinite(t_ms):
        raise ValueError(f"live event {kind!r} has no finite t_ms ({t_ms!r})")
    missing = [f for f in EVENT_FIELDS[kind] if f not in event]
    if missing:
        raise ValueError(f"live event {kind!r} lacks field {missing[0]!r}")
    return event


def coalesce(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`events` without the transient ones a later event of the same (worker, task) follows."""
    later: set[tuple[Any, Any]] = set()
    kept = []
    for event in reversed(events):
        task = event.get("task")
        key = (event.get("worker"), task)
        if task is not None and event["kind"] in TRANSIENT and key in later:
            continue
        if task is not None:
            later.add(key)
        kept.append(event)
    kept.reverse()
    return kept


class LivePublisher:
    """The live events of one worker invocation (or of the client), buffered and sent in
    batches through `store`'s fenced write.

    Parameters
    ----------
    store : RedisStore
        The store of the run, fenced by this worker's attempt (the client's: unfenced).
    worker_id : str
        Whose events these are ("client" for the client).
    attempt : int
        The worker's attempt (0 for the first try).
    maxlen : int
        The stream keeps about this many entries (``MAXLEN ~``), each a batch of events.
    clock : callable
        Ms from run start.
    """

    def __init__(self, store: Any, worker_id: str, attempt: int, *, maxlen: int, clock):
        if maxlen <= 0:
            raise ValueError(f"maxlen={maxlen!r} must be > 0 (events the stream keeps)")
        self.store = store
        self.worker_id = worker_id
        self.attempt = attempt
        self.key = store.key(EVENTS_NAME)
        self.maxlen = int(maxlen)
        self.clock = clock
        self.closed = False
        self.n_sent = 0
        self.n_events_taken = 0  # events sent or being sent (after `coalesce`)
        self._pending: list[dict[str, Any]] = []
        self._since = math.inf  # monotonic time of the oldest buffered event
        self._waiting: set[str] = set()
        self._exec_start: dict[str, float] = {}
        # The phase a task of this worker is in now (kind, start, task): sent only if it is
        # still the current one when a batch goes (a worker does one thing at a time).
        self._now: tuple[str, float, str] | None = None
        self._now_sent = False
        self._lock = threading.Lock()  # the buffer
        self._send_lock = threading.Lock()  # one batch in flight, in order

    # -- what the driver sees ---------------------------------------------------------------

    def emit(self, kind: str, t_ms: float | None = None, **fields: Any) -> None:
        """Buffer one event of `kind` (at `t_ms`, default now); ``worker`` and ``attempt``
        default to this publisher's."""
        event = {"kind": kind, "t_ms": round(self.clock() if t_ms is None else t_ms, 3)}
        if kind in _OF_A_WORKER:
            event["worker"], event["attempt"] = self.worker_id, self.attempt
        event.update(fields)
        with self._lock:
            if not self._pending:
                self._since = time.monotonic()
            self._pending.append(event)

    def begin(self, worker_id: str, effect: Any, start_ms: float) -> None:
        """An effect starts: a task waits for inputs, downloads one, or starts its function."""
        kind = _BEGIN_KIND.get(type(effect))
        task_id = getattr(effect, "task_id", None)
        if kind is None or task_id is None:
            return
        if kind == "task_waiting":
            if task_id in self._waiting:
                return
            self._waiting.add(task_id)
        elif kind == "exec_start":
            self._exec_start[task_id] = start_ms
        with self._lock:
            if not self._pending and (self._now is None or self._now_sent):
                self._since = time.monotonic()
            self._now, self._now_sent = (kind, start_ms, task_id), False

    def end(self, worker_id: str, effect: Any, start_ms: float, end_ms: float, nbytes: int) -> None:
        """An effect ended: a phase of a task (with its start and bytes), or an invocation."""
        if type(effect) is Invoke:
            self.emit(
                "worker_invoked", end_ms, worker=effect.worker_id, attempt=effect.attempt,
                memory_mb=effect.config.memory_mb, cpus=effect.config.cpus, by=worker_id,
            )  # fmt: skip
            return
        kind = _END_KIND.get(type(effect))
        task_id = getattr(effect, "task_id", None)
        if kind is not None and task_id is not None:
            now = self._now
            if now is not None and now[2] == task_id:
                self._now = None
            self.emit(kind, end_ms, task=task_id, start_ms=round(start_ms, 3), bytes=int(nbytes))

    def failed(self, failure: Any) -> None:
        """A task (or the worker outside any task) failed: its error and remote traceback
        (with ``start_ms``, when its function had started)."""
        start_ms = self._exec_start.get(failure.task_id)
        self._now = None
        self.emit(
            "task_failed",
            task=failure.task_id,
            start_ms=None if start_ms is None else round(start_ms, 3),
            error=failure.error_type,
            message=str(failure.message)[:MAX_TEXT_CHARS],
            traceback=str(failure.traceback)[-MAX_TEXT_CHARS:],
        )

    # -- sending ----------------------------------------------------------------------------

    def due(self, now: float, age_s: float) -> bool:
        """Whether an event has waited in the buffer for `age_s` seconds or more."""
        waiting = self._pending or (self._now is not None and not self._now_sent)
        return bool(waiting) and now - self._since >= age_s

    def commands(self) -> list[tuple[Any, ...]]:
        """The XADD commands of what is buffered (taking it out of the buffer)."""
        with self._lock:
            events, self._pending, self._since = self._pending, [], math.inf
            now = self._now
            if now is not None and not self._now_sent:
                kind, start_ms, task_id = now
                events.append({"kind": kind, "t_ms": round(start_ms, 3), "worker": self.worker_id,
                               "attempt": self.attempt, "task": task_id})  # fmt: skip
                self._now_sent = True
        events = coalesce(events)
        self.n_events_taken += len(events)
        return [
            ("XADD", self.key, "MAXLEN", "~", self.maxlen, "*", "e", encode(events[i : i + n]))
            for n in (EVENTS_PER_ENTRY,)
            for i in range(0, len(events), n)
        ]

    def send_with(self, write: Callable[..., Any], *, close: bool = False) -> None:
        """Call ``write(*commands)`` with what is buffered (one fenced call that may carry other
        commands too: a worker's log, its failure); `close` stops the timer's flushes first."""
        with self._send_lock:
            if close:
                self.closed = True
                flusher().remove(self)
            commands = self.commands()
            write(*commands)
            self.n_sent += len(commands)

    def flush(self) -> None:
        """Send what is buffered now, in its own fenced call (nothing when empty)."""
        with self._send_lock:
            if self.closed:
                return
            commands = self.commands()
            if commands:
                self.store.add_events(*commands)
                self.n_sent += len(commands)


class Flusher:
    """Sends what running publishers of this process buffered at least `interval_s` ago,
    every `interval_s`, from one daemon thread: one pipelined round trip per Redis for all of
    them. A publisher whose write is refused (superseded, cancelled, run gone) is dropped, with
    its events: they are not the run's any more. A publisher busy sending (its worker is
    ending) is left for the next tick."""

    def __init__(self, interval_s: float = FLUSH_INTERVAL_S):
        self.interval_s = interval_s
        self._publishers: set[LivePublisher] = set()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, publisher: LivePublisher) -> None:
        with self._lock:
            self._publishers.add(publisher)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="live-events", daemon=True)
                self._thread.start()
            self._lock.notify()

    def remove(self, publisher: LivePublisher) -> None:
        with self._lock:
            self._publishers.discard(publisher)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._publishers:
                    self._lock.wait()
            time.sleep(self.interval_s)
            now = time.monotonic()
            with self._lock:
                due = [p for p in self._publishers if p.due(now, self.interval_s)]
            by_client: dict[int, list[LivePublisher]] = {}
            for publisher in due:
                by_client.setdefault(id(publisher.store.client), []).append(publisher)
            for publishers in by_client.values():
                self._send(publishers)

    def _send(self, publishers: list[LivePublisher]) -> None:
        held = [p for p in publishers if p._send_lock.acquire(blocking=False)]
        try:
            sending = [p for p in held if not p.closed]
            if not sending:
                return
            pipe = sending[0].store.client.pipeline(transaction=False)
            batches = [p.commands() for p in sending]
            for publisher, commands in zip(sending, batches, strict=True):
                publisher.store.add_events(*commands, client=pipe)
            replies = pipe.execute(raise_on_error=False)
        except Exception:  # Redis unreachable: these events are lost, later ones retried
            log.warning("live events of %d workers not sent", len(held), exc_info=True)
            return
        finally:
            for publisher in held:
                publisher._send_lock.release()
        for publisher, commands, reply in zip(sending, batches, replies, strict=True):
            if isinstance(reply, int | Exception):  # a fence refused it: drop the publisher
                log.info("live events of %s stopped: %s", publisher.worker_id, reply)
                publisher.closed = True
                self.remove(publisher)
            else:
                publisher.n_sent += len(commands)


_flusher = Flusher()


def flusher() -> Flusher:
    """The live events' flusher of this process."""
    return _flusher


def start_publisher(
    store: Any, worker_id: str, attempt: int, maxlen: int, clock
) -> LivePublisher | None:
    """A publisher of this worker's events, flushed by the process's `Flusher`; None when the
    run publishes none (``maxlen`` 0)."""
    if maxlen <= 0:
        return None
    publisher = LivePublisher(store, worker_id, attempt, maxlen=maxlen, clock=clock)
    flusher().add(publisher)
    return publisher
