"""The real driver: the worker state machine's effects performed against Redis and a backend.

Same shape as `runtime.inprocess`: one trampoline and one handler per effect, each handler one
Redis call (or one backend invocation). It makes no scheduling decision; `worker.branch` does.

A worker learns its run from its invocation payload (a `RunRef` plus the invocation): the run
id, the backend to invoke further workers with, the keys' ttl, and the run context (the schedule
and the task functions), inline when small, else stored once per run in Redis. The payload is
signed (`runtime.signing`) and refused before anything in it is used when it is not. The
store's URL, which may hold a password, never travels in it: a worker reads it from its
environment (``FAASDAG_REDIS_URL``, set when the functions are deployed) or, on the local thread
backend, from the backend that started it. `run_invocation` is the whole life of one worker,
shared by the local thread backend and the Lambda handler.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dag.resources import ResourceConfig
from runtime.errors import RunCancelled, TaskFailure, WriteRefused
from runtime.events import LOG_NAME, EventLog
from runtime.live import start_publisher
from runtime.liveness import DEFAULT_HEARTBEAT_TTL_S, heartbeats
from runtime.signing import sign_payload, verify_payload
from runtime.store import DEFAULT_TTL_S, RedisStore, connect
from runtime.subscription import Subscription
from runtime.values import dumps, loads, serialised_nbytes
from worker.branch import Invocation, Logic, Worker
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
from worker.recording import CLIENT
from worker.schedule import Schedule

log = logging.getLogger(__name__)

TaskCall = Callable[[str, Mapping[str, Any]], Any]
CONTEXT_KEY = "_context"
PAYLOAD_VERSION = 2
#: Where a worker (and the CLI) finds the store's URL: the environment, never the payload.
REDIS_URL_ENV = "FAASDAG_REDIS_URL"


class WorkflowCall:
    """Runs a task of a built workflow: ``call(task_id, inputs)``; pickles with its specs."""

    def __init__(self, specs: Mapping[str, Any]):
        self.specs = dict(specs)

    def __call__(self, task_id: str, inputs: Mapping[str, Any]) -> Any:
        return self.specs[task_id].call(inputs)


@dataclass
class RunContext:
    """What every worker of a run shares: the schedule and how to call a task."""

    schedule: Schedule
    call: TaskCall


@dataclass(frozen=True)
class RunRef:
    """How a worker joins a run; travels (as JSON) in every invocation payload.

    Attributes
    ----------
    run_id : str
    t0_epoch : float
        Run start, seconds since the epoch; every process measures ms from it.
    backend : dict
        Descriptor of the backend that invokes workers (see `runtime.backends`).
    wait_timeout_s : float
        How long a worker waits for one input before giving up.
    context_inline : str or None
        The run context, base64 of `dumps`, when small enough to travel inline.
    ttl_s : float
        Every key of the run expires after this many seconds.
    heartbeat_ttl_s : float
        A worker's heartbeat lives this long unless refreshed (at a third of it).
    events_maxlen : int
        The run's live event stream keeps about this many entries (`runtime.live`); 0: the
        workers publish none.
    """

    run_id: str
    t0_epoch: float
    backend: dict[str, Any] = field(default_factory=lambda: {"kind": "local"})
    wait_timeout_s: float = 900.0
    context_inline: str | None = None
    ttl_s: float = DEFAULT_TTL_S
    heartbeat_ttl_s: float = DEFAULT_HEARTBEAT_TTL_S
    events_maxlen: int = 0

    def payload(self, invocation: Invocation, invoked_ms: float) -> dict[str, Any]:
        """The signed JSON payload that starts `invocation`; the inputs it carries (if any)
        travel as base64 of their signed `dumps` blobs."""
        inputs = {}
        if invocation.inputs:
            inputs["inputs"] = {
                producer: base64.b64encode(dumps(output.value)).decode("ascii")
                for producer, output in invocation.inputs.items()
            }
        return sign_payload(
            {
                "faasdag": PAYLOAD_VERSION,
                "run_id": self.run_id,
                "t0_epoch": self.t0_epoch,
                "backend": self.backend,
                "wait_timeout_s": self.wait_timeout_s,
                "ttl_s": self.ttl_s,
                "heartbeat_ttl_s": self.heartbeat_ttl_s,
                "events_maxlen": self.events_maxlen,
                "context": self.context_inline,
                "worker_id": invocation.worker_id,
                "memory_mb": invocation.config.memory_mb,
                "cpus": invocation.config.cpus,
                "start_tasks": list(invocation.start_tasks),
                "attempt": invocation.attempt,
                "invoked_ms": invoked_ms,
                **inputs,
            }
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> tuple[RunRef, Invocation, float]:
        """Parse a payload made by `payload`, once its signature is checked.

        Raises
        ------
        UntrustedData
            If it is unsigned or signed with another key (nothing in it is used), or an input
            it carries is.
        ValueError
            If it is not a faasdag payload of this version; names the missing field.
        """
        if not isinstance(payload, Mapping) or payload.get("faasdag") != PAYLOAD_VERSION:
            raise ValueError(f"not a faasdag v{PAYLOAD_VERSION} invocation payload")
        verify_payload(payload)
        try:
            ref = cls(
                run_id=payload["run_id"],
                t0_epoch=float(payload["t0_epoch"]),
                backend=dict(payload["backend"]),
                wait_timeout_s=float(payload["wait_timeout_s"]),
                context_inline=payload.get("context"),
                ttl_s=float(payload["ttl_s"]),
                heartbeat_ttl_s=float(payload["heartbeat_ttl_s"]),
                events_maxlen=int(payload.get("events_maxlen", 0)),
            )
            config = ResourceConfig(int(payload["memory_mb"]), float(payload["cpus"]))
            inputs = {}
            for producer, text in dict(payload.get("inputs") or {}).items():
                blob = base64.b64decode(text)
                inputs[producer] = TaskOutput(loads(blob, f"payload input {producer!r}"), len(blob))
            invocation = Invocation(
                payload["worker_id"],
                config,
                tuple(payload["start_tasks"]),
                int(payload.get("attempt", 0)),
                inputs,
            )
            return ref, invocation, float(payload["invoked_ms"])
        except KeyError as err:
            raise ValueError(f"invocation payload lacks field {err.args[0]!r}") from None

    def now_ms(self) -> float:
        return (time.time() - self.t0_epoch) * 1000.0


def encode_context(context: RunContext) -> bytes:
    return dumps(context)


def inline_context(blob: bytes, limit_bytes: int) -> str | None:
    """base64 of `blob` if it fits `limit_bytes` once encoded, else None."""
    if (len(blob) + 2) // 3 * 4 > limit_bytes:
        return None
    return base64.b64encode(blob).decode("ascii")


# -- per-process caches (a warm container reuses them) --------------------------------------

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_contexts: dict[str, RunContext] = {}
_MAX_CONTEXTS = 8


def client_for(url: str) -> Any:
    """One Redis client (connection pool) per URL per process."""
    with _lock:
        if url not in _clients:
            _clients[url] = connect(url)
        return _clients[url]


def load_context(ref: RunRef, store: RedisStore) -> RunContext:
    """The run context: cached, else inline in the payload, else from the store."""
    with _lock:
        if ref.run_id in _contexts:
            return _contexts[ref.run_id]
    if ref.context_inline is not None:
        context = loads(base64.b64decode(ref.context_inline), "inline context")
    else:
        blob = store.get_blob(CONTEXT_KEY)
        if blob is None:
            raise KeyError(f"run {ref.run_id!r} has no stored context (cleaned up, or lost?)")
        context = loads(blob, CONTEXT_KEY)
    with _lock:
        while len(_contexts) >= _MAX_CONTEXTS:
            _contexts.pop(next(iter(_contexts)))
        _contexts[ref.run_id] = context
    return context


# -- the driver -----------------------------------------------------------------------------


class RedisDriver:
    """Perform one worker's (or the client's) effects against Redis and a backend.

    Parameters
    ----------
    context : RunContext
    store : RedisStore
    backend : object with ``invoke(payload, config)`` and ``warmup(config)``
    ref : RunRef
    recorder : EventLog or TraceRecorder
        Gets every performed effect with its timing.
    wait_timeout_s : float, optional
        Overrides ``ref.wait_timeout_s`` (the client waits for the whole run).
    live : LivePublisher, optional
        Gets every effect as it begins and ends, for the run's live events (`runtime.live`).
    """

    def __init__(
        self,
        context: RunContext,
        store: RedisStore,
        backend: Any,
        ref: RunRef,
        recorder: Any,
        *,
        wait_timeout_s: float | None = None,
        live: Any = None,
    ):
        self.context = context
        self.schedule = context.schedule
        self.call = context.call
        self.store = store
        self.backend = backend
        self.ref = ref
        self.recorder = recorder
        self.wait_timeout_s = ref.wait_timeout_s if wait_timeout_s is None else wait_timeout_s
        self.failure: TaskFailure | None = None
        self.live = live
        self._subscription: Subscription | None = None

    def now_ms(self) -> float:
        return self.ref.now_ms()

    def subscription(self) -> Subscription:
        if self._subscription is None:
            self._subscription = self.store.subscription()
        return self._subscription

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None

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
            known = ", ".join(sorted(t.__name__ for t in HANDLERS))
            raise TypeError(
                f"Redis driver has no handler for effect {type(effect).__name__} "
                f"({effect!r}) of worker {worker_id!r}; handled: {known}"
            )
        start = self.now_ms()
        if self.live is not None:
            self.live.begin(worker_id, effect, start)
        result, nbytes = handler(self, worker_id, effect)
        end = self.now_ms()
        self.recorder.effect(worker_id, effect, start, end, nbytes)
        if self.live is not None:
            self.live.end(worker_id, effect, start, end, nbytes)
        return result


# -- handlers: one per effect, each returns (result, bytes moved) --------------------------

Handler = Callable[[RedisDriver, str, Any], tuple[Any, int]]


def _execute(driver: RedisDriver, worker_id: str, effect: Execute) -> tuple[Any, int]:
    try:
        value = driver.call(effect.task_id, effect.inputs)
    except Exception as exc:
        driver.failure = TaskFailure(
            worker_id, effect.task_id, type(exc).__name__, str(exc), traceback.format_exc()
        )
        raise
    nbytes = serialised_nbytes(value)
    return TaskOutput(value, nbytes), nbytes


def _download(driver: RedisDriver, worker_id: str, effect: Download) -> tuple[Any, int]:
    try:
        return driver.store.get(effect.key)
    except KeyError:
        raise KeyError(
            f"worker {worker_id!r} downloads {effect.key!r} of run {driver.store.run_id!r}, "
            f"which is not stored"
        ) from None


def _upload(driver: RedisDriver, worker_id: str, effect: Upload) -> tuple[Any, int]:
    return None, driver.store.put(effect.key, effect.value)


def _stream_upload(driver: RedisDriver, worker_id: str, effect: StreamUpload) -> tuple[Any, int]:
    return None, driver.store.stream_put(effect.key, effect.value, effect.chunk_bytes)


def _stream_download(
    driver: RedisDriver, worker_id: str, effect: StreamDownload
) -> tuple[Any, int]:
    return driver.store.stream_get(effect.key, timeout_s=driver.wait_timeout_s)


def _get(driver: RedisDriver, worker_id: str, effect: Get) -> tuple[Any, int]:
    return driver.store.get_small(effect.key), 0


def _incr(driver: RedisDriver, worker_id: str, effect: Incr) -> tuple[Any, int]:
    return driver.store.count_member(effect.counter, effect.member), 0


def _set_if_absent(driver: RedisDriver, worker_id: str, effect: SetIfAbsent) -> tuple[Any, int]:
    return driver.store.set_if_absent(effect.key, effect.value), 0


def _exists(driver: RedisDriver, worker_id: str, effect: Exists) -> tuple[Any, int]:
    return driver.store.exists(effect.key), 0


def _subscribe(driver: RedisDriver, worker_id: str, effect: Subscribe) -> tuple[Any, int]:
    driver.subscription().subscribe(effect.channel)
    return None, 0


def _publish(driver: RedisDriver, worker_id: str, effect: Publish) -> tuple[Any, int]:
    blob = None if effect.nbytes is None else dumps(effect.value)
    driver.store.publish(effect.channel, effect.message, blob=blob)
    return None, 0 if blob is None else len(blob)


def _wait_for(driver: RedisDriver, worker_id: str, effect: WaitFor) -> tuple[Any, int]:
    data = driver.subscription().wait(effect.channel, timeout_s=driver.wait_timeout_s)
    carried = driver.store.message_value(data, effect.channel)
    if carried is None:
        return None, 0
    return TaskOutput(*carried), carried[1]


def _wait_any(driver: RedisDriver, worker_id: str, effect: WaitAny) -> tuple[Any, int]:
    channels = list(effect.channels)
    return driver.subscription().wait_any(channels, timeout_s=driver.wait_timeout_s), 0


def _invoke(driver: RedisDriver, worker_id: str, effect: Invoke) -> tuple[Any, int]:
    payload = driver.ref.payload(Invocation.from_effect(effect), driver.now_ms())
    driver.backend.invoke(payload, effect.config)
    return None, effect.payload_bytes


def _warmup(driver: RedisDriver, worker_id: str, effect: Warmup) -> tuple[Any, int]:
    driver.backend.warmup(effect.config)
    return None, 0


def _sleep(driver: RedisDriver, worker_id: str, effect: Sleep) -> tuple[Any, int]:
    time.sleep(effect.ms / 1000)
    return None, 0


def _now(driver: RedisDriver, worker_id: str, effect: Now) -> tuple[Any, int]:
    return driver.now_ms(), 0


HANDLERS: dict[type, Handler] = {
    Execute: _execute,
    Download: _download,
    Upload: _upload,
    StreamUpload: _stream_upload,
    StreamDownload: _stream_download,
    Get: _get,
    Incr: _incr,
    SetIfAbsent: _set_if_absent,
    Exists: _exists,
    Subscribe: _subscribe,
    Publish: _publish,
    WaitFor: _wait_for,
    WaitAny: _wait_any,
    Invoke: _invoke,
    Warmup: _warmup,
    Sleep: _sleep,
    Now: _now,
}
"""Effect type -> handler. A new effect needs one entry here (and one in the sim driver)."""


# -- one worker's life ----------------------------------------------------------------------


def redis_url_from_environment() -> str:
    """The store's URL from ``FAASDAG_REDIS_URL``.

    Raises
    ------
    ValueError
        If the variable is unset (the message says where it must be set).
    """
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        raise ValueError(
            f"no {REDIS_URL_ENV} in this worker's environment: set it in the function's "
            f"environment (faasdag deploy does) to the Redis the client uses"
        )
    return url


def run_invocation(
    payload: Mapping[str, Any],
    *,
    startup: str = "none",
    redis_url: str | None = None,
    backend: Any = None,
) -> dict[str, Any]:
    """Run one worker invocation from its payload; the Lambda handler and local threads call it.

    Checks the payload's signature first, then claims the worker's attempt with its first
    heartbeat (a superseded attempt, or a run that is over, stops here without doing anything),
    keeps the heartbeat fresh while it runs, and records the worker's events to the run's log
    when it ends, whatever happens. A task failure is recorded in the store (the client raises
    it with the remote traceback) and reported in the returned dict, never raised, so an
    asynchronous invoker does not retry it. A worker whose writes are refused (superseded by
    its retry, or the run ended) stops quietly.

    Parameters
    ----------
    payload : mapping
        From `RunRef.payload`.
    startup : str
        How this container started: ``"cold"``, ``"warm"`` or ``"none"`` (no container).
    redis_url : str, optional
        The store (default: `REDIS_URL_ENV` of the environment).
    backend : Backend, optional
        What invokes further workers (default: the one the payload describes).

    Raises
    ------
    UntrustedData
        If the payload is not signed with this process's key.
    ValueError
        If the payload is malformed or no Redis URL is known.
    """
    from runtime.backends import backend_for  # late: the Lambda backend imports boto3

    ref, invocation, invoked_ms = RunRef.from_payload(payload)
    ready_ms = ref.now_ms()
    store = RedisStore(
        client_for(redis_url or redis_url_from_environment()),
        ref.run_id,
        ttl_s=ref.ttl_s,
        writer=(invocation.worker_id, invocation.attempt),
    )
    outcome: dict[str, Any] = {"worker_id": invocation.worker_id, "ok": True}
    try:
        beat = heartbeats().start(store, ref.heartbeat_ttl_s)
    except (WriteRefused, RunCancelled) as refused:
        log.info("worker %s does not start: %s", invocation.worker_id, refused)
        return {**outcome, "ok": False, "refused": str(refused)}
    events = EventLog()
    startup_ms = max(ready_ms - invoked_ms, 0.0) if startup == "cold" else 0.0
    live = start_publisher(
        store, invocation.worker_id, invocation.attempt, ref.events_maxlen, ref.now_ms
    )
    if live is not None:
        config = invocation.config
        live.emit(
            "worker_started", ready_ms, memory_mb=config.memory_mb, cpus=config.cpus,
            startup=startup, startup_ms=round(startup_ms, 3), invoked_ms=round(invoked_ms, 3),
        )  # fmt: skip
    events.worker_started(
        invocation.worker_id,
        invocation.config,
        startup=startup,
        startup_ms=startup_ms,
        invoked_ms=invoked_ms,
        ready_ms=ready_ms,
        attempt=invocation.attempt,
    )
    driver: RedisDriver | None = None
    try:
        context = load_context(ref, store)
        driver = RedisDriver(
            context, store, backend or backend_for(ref.backend), ref, events, live=live
        )
        Worker(context.schedule, invocation).execute_branch(driver)
    except (WriteRefused, RunCancelled) as refused:
        log.info("worker %s stops: %s", invocation.worker_id, refused)
        outcome.update(ok=False, refused=str(refused))
    except Exception as exc:
        failure = driver.failure if driver is not None else None
        if failure is None:
            failure = TaskFailure(
                invocation.worker_id, None, type(exc).__name__, str(exc), traceback.format_exc()
            )
        log.warning("%s", failure)
        outcome.update(ok=False, error=str(failure))
        try:
            if live is None:
                store.fail(failure)
            else:  # the failure and its event in one write: the dashboard sees what failed
                live.failed(failure)
                live.send_with(lambda *cmds: store.fail(failure, *cmds))
        except Exception:  # the store is gone, or the run over: the client knows already
            log.info("could not record the failure of worker %s", invocation.worker_id)
    finally:
        heartbeats().stop(beat)
        if driver is not None:
            driver.close()
        end_ms = ref.now_ms()
        events.worker_ended(invocation.worker_id, end_ms)
        blob = dumps(events.events)
        try:
            if live is None:
                store.finish(LOG_NAME, blob)
            else:  # the last events travel with the log: no round trip of their own
                live.emit("worker_ended", end_ms, ok=outcome["ok"])
                live.send_with(lambda *cmds: store.finish(LOG_NAME, blob, *cmds), close=True)
        except Exception as err:  # refused (superseded, run over) or Redis gone
            log.info("log of worker %s not stored: %s", invocation.worker_id, err)
    return outcome
