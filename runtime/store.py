"""Redis storage of one run: task outputs, dependency counters, markers, pub/sub and logs.

Every key lives under ``faasdag:<run_id>:`` so runs never collide and a finished run deletes
its intermediates with `cleanup`. Values are serialised with cloudpickle behind a small
header, so a stored ``None`` is a value (a header and a pickle) and never looks "missing".

A published message also leaves a marker key (one MULTI round trip), so a listener that
subscribed late, or whose connection dropped, finds the event by checking existence: pub/sub
makes waiting fast, the marker makes it safe.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import struct
import time
from typing import Any

import cloudpickle
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

NAMESPACE = "faasdag"
_HEADER = b"\x01"  # format version of a stored value; also what makes None non-empty
_STREAM_REF = b"\x02"  # a value stored as a stream: this byte, then the stream's key
_COUNTS = struct.Struct("<II")
_LENGTH = struct.Struct("<Q")
FAILURE_CHANNEL = "_failure"


class StoreError(RuntimeError):
    """The store cannot serve this run (unreachable, restarted or flushed); names the run."""


class StoreLost(StoreError):
    """The run's keys vanished mid-run: Redis was restarted or flushed."""


def dumps(value: Any) -> bytes:
    """Serialise a value for the store.

    Format: a header byte, the pickle's length and buffer count, the cloudpickle (protocol 5)
    stream, then each out-of-band buffer (numpy arrays) with its length, so large arrays are
    not pickled in-band and `serialised_nbytes` can measure the size without serialising.
    """
    buffers: list[pickle.PickleBuffer] = []
    head = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    parts: list[Any] = [_HEADER, _COUNTS.pack(len(head), len(buffers)), head]
    for buffer in buffers:
        raw = buffer.raw()
        parts += [_LENGTH.pack(raw.nbytes), raw]
    return b"".join(parts)


def loads(blob: bytes, key: str = "<blob>") -> Any:
    """Inverse of `dumps` (arrays come back writable).

    Raises
    ------
    StoreError
        If `blob` was not written by `dumps` (the message names `key`).
    """
    if not blob or blob[:1] != _HEADER:
        raise StoreError(f"value at {key!r} is not a faasdag value (bad header)")
    view = memoryview(blob)
    n_head, n_buffers = _COUNTS.unpack_from(view, 1)
    at = 1 + _COUNTS.size
    head = view[at : at + n_head]
    at += n_head
    buffers = []
    for _ in range(n_buffers):
        (length,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        buffers.append(bytearray(view[at : at + length]))
        at += length
    return pickle.loads(head, buffers=buffers)


def serialised_nbytes(value: Any) -> int:
    """Bytes `dumps(value)` takes, measured without copying large buffers (numpy arrays)."""
    buffers: list[pickle.PickleBuffer] = []
    head = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return (
        len(_HEADER)
        + _COUNTS.size
        + len(head)
        + sum(_LENGTH.size + b.raw().nbytes for b in buffers)
    )


def connect(
    url: str,
    *,
    retries: int = 6,
    backoff_base_s: float = 0.02,
    backoff_cap_s: float = 1.0,
    socket_timeout_s: float | None = 60.0,
    max_connections: int = 4096,
) -> redis.Redis:
    """A Redis client for `url` (``redis://``, ``rediss://``, ``unix://``; user and password in
    the URL), retrying connection errors with exponential backoff.

    Parameters
    ----------
    url : str
    retries : int
        Attempts after the first on a connection error or timeout (default 6).
    backoff_base_s, backoff_cap_s : float
        Exponential backoff: base delay and cap, in seconds.
    socket_timeout_s : float or None
        Timeout of one command, in seconds.
    max_connections : int
        Size limit of the connection pool (every worker thread of a process may hold one).
    """
    retry = Retry(ExponentialBackoff(cap=backoff_cap_s, base=backoff_base_s), retries)
    return redis.Redis.from_url(
        url,
        # The local backend's worker threads share this pool (redis-py's default caps it at 100).
        max_connections=max_connections,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=min(socket_timeout_s or 5.0, 5.0),
        health_check_interval=30,
    )


def run_prefix(run_id: str) -> str:
    return f"{NAMESPACE}:{run_id}:"


def cleanup(client: redis.Redis, run_id: str, *, batch: int = 500) -> int:
    """Delete every key of run `run_id`; returns how many were deleted."""
    pattern = run_prefix(run_id) + "*"
    deleted = 0
    names: list[bytes] = []
    for name in client.scan_iter(match=pattern, count=batch):
        names.append(name)
        if len(names) >= batch:
            deleted += client.unlink(*names)
            names = []
    if names:
        deleted += client.unlink(*names)
    return deleted


class RedisStore:
    """The store of one run: every method is one Redis round trip on a run-namespaced key.

    Parameters
    ----------
    client : redis.Redis
        From `connect`; shared by all stores of a process (it holds a connection pool).
    run_id : str
        The run's id; keys are ``faasdag:<run_id>:<name>``.
    """

    def __init__(self, client: redis.Redis, run_id: str):
        if not run_id or ":" in run_id:
            raise ValueError(f"run id {run_id!r} must be non-empty and contain no ':'")
        self.client = client
        self.run_id = run_id
        self.prefix = run_prefix(run_id)

    def key(self, name: str) -> str:
        """The Redis key of run-local name `name`."""
        return self.prefix + name

    def _marker(self, channel: str) -> str:
        return self.key(f"sent:{channel}")

    def _channel(self, channel: str) -> str:
        return self.key(f"chan:{channel}")

    # -- run lifetime ---------------------------------------------------------------------

    def begin(self) -> None:
        """Mark the run as live; `alive` turns False if Redis loses the run's keys."""
        self.client.set(self.key("_run"), b"1")

    def alive(self) -> bool:
        return bool(self.client.exists(self.key("_run")))

    def cleanup(self) -> int:
        """Delete every key of this run; returns how many were deleted."""
        return cleanup(self.client, self.run_id)

    # -- values ---------------------------------------------------------------------------

    def put(self, name: str, value: Any) -> int:
        """Store `value` at `name`; returns the stored bytes."""
        blob = dumps(value)
        self.client.set(self.key(name), blob)
        return len(blob)

    def get(self, name: str) -> tuple[Any, int]:
        """The value at `name` and its stored bytes.

        Raises
        ------
        KeyError
            If nothing is stored at `name` (a stored None is returned as None).
        """
        blob = self.client.get(self.key(name))
        if blob is None:
            raise KeyError(f"run {self.run_id!r} has nothing stored at {name!r}")
        if blob[:1] == _STREAM_REF:  # a streamed output: assemble its chunks
            entries = self.client.xrange(blob[1:])
            blob = b"".join(fields[b"d"] for _id, fields in entries if b"d" in fields)
        return loads(blob, name), len(blob)

    # -- streams (output streaming) ------------------------------------------------------

    def stream_put(self, name: str, value: Any, chunk_bytes: int, *, batch: int = 4) -> int:
        """Write `value` as a Redis stream of chunks (a few XADDs per round trip), then store a
        reference at `name` so plain readers find it; returns the stored bytes.

        A reader already waiting in `stream_get` reads each chunk as soon as it is added.
        """
        blob = dumps(value)
        stream = self.key(f"stream:{name}")
        chunks = [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]
        for start in range(0, len(chunks), batch):
            pipe = self.client.pipeline(transaction=False)
            for chunk in chunks[start : start + batch]:
                pipe.xadd(stream, {"d": chunk})
            pipe.execute()
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(stream, {"end": b"1"})
        pipe.set(self.key(name), _STREAM_REF + stream.encode())
        pipe.execute()
        return len(blob)

    def stream_get(self, name: str, *, timeout_s: float, block_ms: int = 200) -> tuple[Any, int]:
        """Read the stream of `name` chunk by chunk as it is written; returns (value, bytes).

        Raises
        ------
        RunFailed
            If a worker recorded a failure of the run meanwhile.
        StoreLost
            If the run's keys vanished.
        TimeoutError
            If no chunk arrives for `timeout_s` seconds.
        """
        stream = self.key(f"stream:{name}")
        parts: list[bytes] = []
        last_id = b"0-0"
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self.client.xread({stream: last_id}, block=block_ms, count=64)
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    if b"end" in fields:
                        blob = b"".join(parts)
                        return loads(blob, name), len(blob)
                    parts.append(fields[b"d"])
                deadline = time.monotonic() + timeout_s
            if not reply:
                _sent, alive, failure = self.check([])
                if failure is not None:
                    raise RunFailed(loads(failure, "_failure"))
                if not alive:
                    raise StoreLost(f"run {self.run_id!r}: keys vanished while reading {name!r}")
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"run {self.run_id!r}: no chunk of {name!r} for {timeout_s} s"
                    )

    def put_blob(self, name: str, blob: bytes) -> None:
        self.client.set(self.key(name), blob)

    def get_blob(self, name: str) -> bytes | None:
        return self.client.get(self.key(name))

    def put_and_publish(self, name: str, value: Any, channel: str) -> int:
        """Store `value` at `name` and announce it on `channel`, in one transaction; returns
        the stored bytes (a whole-value stream: see the README)."""
        blob = dumps(value)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.key(name), blob)
        pipe.set(self._marker(channel), b"")
        pipe.publish(self._channel(channel), b"")
        pipe.execute()
        return len(blob)

    def get_small(self, name: str) -> Any:
        """A marker or counter at `name`: its value, an int for a counter, None when absent."""
        blob = self.client.get(self.key(name))
        if blob is None:
            return None
        if blob[:1] == _HEADER:
            return loads(blob, name)
        return int(blob)

    def started(self) -> dict[str, Any]:
        """Every start claim of the run: worker id -> (claimer, "invoke" | "take")."""
        prefix = self.key("started:")
        claims = {}
        for key in self.client.scan_iter(match=prefix + "*", count=500):
            name = key.decode()[len(self.key("")) :]
            claims[name.removeprefix("started:")] = self.get_small(name)
        return claims

    def count_member(self, name: str, member: str) -> int:
        """Atomically add `member` to the counter set `name` (SADD + SCARD in one transaction);
        returns the number of distinct members. Counting a member twice changes nothing."""
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self.key(name), member)
        pipe.scard(self.key(name))
        _added, size = pipe.execute()
        return int(size)

    def set_if_absent(self, name: str, value: Any = 1) -> bool:
        """Set `name` unless it exists (SET NX); True if this call set it."""
        return bool(self.client.set(self.key(name), dumps(value), nx=True))

    def exists(self, name: str) -> bool:
        return bool(self.client.exists(self.key(name)))

    # -- events ---------------------------------------------------------------------------

    def publish(self, channel: str, message: str = "") -> None:
        """Leave the marker of `channel` and publish `message` on it, in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._marker(channel), message.encode())
        pipe.publish(self._channel(channel), message.encode())
        pipe.execute()

    def check(self, channels: list[str]) -> tuple[list[bool], bool, bytes | None]:
        """(marker of each channel present, run alive, failure blob or None), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for channel in channels:
            pipe.exists(self._marker(channel))
        pipe.exists(self.key("_run"))
        pipe.get(self.key("_failure"))
        *sent, alive, failure = pipe.execute()
        return [bool(x) for x in sent], bool(alive), failure

    def fail(self, failure: Any) -> None:
        """Record the run's first failure and announce it to every waiter."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.key("_failure"), dumps(failure), nx=True)
        pipe.publish(self._channel(FAILURE_CHANNEL), b"")
        pipe.execute()

    def failure(self) -> Any | None:
        blob = self.client.get(self.key("_failure"))
        return None if blob is None else loads(blob, "_failure")

    def subscription(self) -> Subscription:
        """A new listener (its own connection); close it when done."""
        return Subscription(self)

    # -- logs -----------------------------------------------------------------------------

    def append_log(self, name: str, blob: bytes) -> None:
        self.client.rpush(self.key(name), blob)

    def read_log(self, name: str, start: int = 0) -> list[bytes]:
        return list(self.client.lrange(self.key(name), start, -1))


class Subscription:
    """One worker's pub/sub listener: remembers every channel that has fired since subscribing.

    The run's failure channel is always subscribed, so a waiter learns of a failure at once.
    """

    def __init__(self, store: RedisStore):
        self.store = store
        self._pubsub = store.client.pubsub(ignore_subscribe_messages=True)
        self._fired: set[str] = set()
        self._failed = False
        self._pubsub.subscribe(store._channel(FAILURE_CHANNEL))

    def subscribe(self, channel: str) -> None:
        self._pubsub.subscribe(self.store._channel(channel))

    def _drain(self, timeout_s: float) -> None:
        message = self._pubsub.get_message(timeout=timeout_s)
        while message is not None:
            name = message["channel"].decode()
            local = name[len(self.store.prefix) + len("chan:") :]
            if local == FAILURE_CHANNEL:
                self._failed = True
            else:
                self._fired.add(local)
            message = self._pubsub.get_message(timeout=0)

    def wait(self, channel: str, *, timeout_s: float, poll_s: float = 0.05) -> None:
        """Block until `channel` fired (a message, or its marker exists); see `wait_any`."""
        self.wait_any([channel], timeout_s=timeout_s, poll_s=poll_s)

    def wait_any(
        self, channels: list[str], *, timeout_s: float, poll_s: float = 0.05
    ) -> tuple[str, ...]:
        """Block until one of `channels` fired; returns all that have, in order.

        Raises
        ------
        RunFailed
            If another worker recorded a failure of the run.
        StoreLost
            If the run's keys vanished (Redis restarted or flushed).
        TimeoutError
            After `timeout_s` seconds with no event; names the channels and the run.
        """
        deadline = time.monotonic() + timeout_s
        next_check = 0.0
        while True:
            fired = tuple(c for c in channels if c in self._fired)
            if fired:
                return fired
            now = time.monotonic()
            if self._failed or now >= next_check:
                sent, alive, failure = self.store.check(channels)
                if failure is not None:
                    raise RunFailed(loads(failure, "_failure"))
                if not alive:
                    raise StoreLost(
                        f"run {self.store.run_id!r}: its keys vanished from Redis while waiting "
                        f"for {channels} (was Redis restarted or flushed?)"
                    )
                self._fired.update(c for c, s in zip(channels, sent, strict=True) if s)
                if any(sent):
                    continue
                next_check = now + poll_s * 4
            if now >= deadline:
                raise TimeoutError(
                    f"run {self.store.run_id!r}: no event on {', '.join(channels)} within "
                    f"{timeout_s:g} s"
                )
            try:
                self._drain(min(poll_s, max(deadline - now, 0.0)))
            except (redis.ConnectionError, redis.TimeoutError) as err:
                log.warning("pub/sub connection lost (%s); re-checking markers", err)
                next_check = 0.0
                time.sleep(poll_s)

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):  # closing a dead connection
            self._pubsub.close()


class RunFailed(RuntimeError):
    """A worker of this run failed; `.failure` holds what it recorded (see `runtime.errors`)."""

    def __init__(self, failure: Any):
        super().__init__(str(failure))
        self.failure = failure
