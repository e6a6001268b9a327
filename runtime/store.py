"""Redis storage of one run: task outputs, dependency counters, markers, pub/sub and logs.

Every key lives under ``faasdag:<run_id>:`` so runs never collide, every key expires
(``ttl_s``, 24 h by default) so a killed client leaks nothing for long, and a finished run
deletes its intermediates with `cleanup`. Values are serialised with cloudpickle behind a small
header and an HMAC tag (`runtime.signing`): a stored ``None`` is a value and never looks
"missing", and nothing unsigned is ever unpickled.

Every write is *fenced* (one Lua script, `FENCED_WRITE`): it is applied, atomically, only while
the run is live (its ``_run`` marker exists, so nothing is written into a Redis that was
restarted or a run that was cleaned up), not cancelled (``_cancel``), and, for a worker, only
while the worker's attempt is the current one (``attempt:<worker>``; a retry increments it), so
a worker that was slow, not dead, cannot write once its retry has started. A refused write
raises `WriteRefused`.

A published message also leaves a marker key (one MULTI round trip), so a listener that
subscribed late, or whose connection dropped, finds the event by checking existence: pub/sub
makes waiting fast, the marker makes it safe.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from runtime.errors import RunCancelled, RunFailed, RunIdInUse, StoreError, StoreLost, WriteRefused
from runtime.values import STREAM_REF, dumps, is_value, loads

if TYPE_CHECKING:
    from runtime.subscription import Subscription

log = logging.getLogger(__name__)

NAMESPACE = "faasdag"
FAILURE_CHANNEL = "_failure"
DEFAULT_TTL_S = 24 * 3600.0
#: Redis refuses a value above 512 MB; a larger one is stored as a stream of chunks.
REDIS_MAX_VALUE_BYTES = 512 * 1024 * 1024
LARGE_VALUE_BYTES = 256 * 1024 * 1024
LARGE_VALUE_CHUNK_BYTES = 64 * 1024 * 1024
RUN_KEY = "_run"
CANCEL_KEY = "_cancel"

#: One fenced write: the checks, then the commands, each followed by a PEXPIRE when it has a
#: ttl. KEYS: run marker, cancel flag, the writer's attempt counter. ARGV: the writer's attempt
#: (-1: not a worker, no fence), then per command its argument count n, its ttl in ms (0: none)
#: and its n arguments (name, key, ...). Returns -1 (run gone), -2 (cancelled), -3 (superseded
#: attempt) or the commands' replies.
FENCED_WRITE = """
if redis.replicate_commands then redis.replicate_commands() end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
local attempt = tonumber(ARGV[1])
if attempt >= 0 and tonumber(redis.call('GET', KEYS[3]) or '0') ~= attempt then return -3 end
local replies = {}
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local ttl = ARGV[i + 1]
  local command = {}
  for j = 1, n do command[j] = ARGV[i + 1 + j] end
  replies[#replies + 1] = redis.call(unpack(command))
  if ttl ~= '0' then redis.call('PEXPIRE', command[2], ttl) end
  i = i + n + 2
end
return replies
"""


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
    """Delete every key of run `run_id`; returns how many were deleted.

    The run's marker goes first, in one command: from then on every fenced write of a worker
    still running is refused, so nothing is written behind the deletion.
    """
    prefix = run_prefix(run_id)
    deleted = int(client.unlink(prefix + RUN_KEY))
    names: list[bytes] = []
    for name in client.scan_iter(match=prefix + "*", count=batch):
        names.append(name)
        if len(names) >= batch:
            deleted += client.unlink(*names)
            names = []
    if names:
        deleted += client.unlink(*names)
    return deleted


def list_runs(client: redis.Redis, *, batch: int = 1000) -> dict[str, float | None]:
    """Every run with keys in this Redis: run id -> start (seconds since the epoch), None for
    a run whose marker is gone (its leftovers can no longer be written: dead)."""
    runs: dict[str, float | None] = {}
    for name in client.scan_iter(match=f"{NAMESPACE}:*", count=batch):
        parts = name.decode(errors="replace").split(":", 2)
        if len(parts) == 3:
            runs.setdefault(parts[1], None)
    for run_id in list(runs):
        started = client.get(run_prefix(run_id) + RUN_KEY)
        try:
            runs[run_id] = float(started) if started is not None else None
        except ValueError:
            runs[run_id] = None
    return runs


class RedisStore:
    """The store of one run: every method is one Redis round trip on a run-namespaced key.

    Parameters
    ----------
    client : redis.Redis
        From `connect`; shared by all stores of a process (it holds a connection pool).
    run_id : str
        The run's id; keys are ``faasdag:<run_id>:<name>``.
    ttl_s : float
        Every key this store writes expires after this many seconds (default 24 h).
    writer : (worker id, attempt), optional
        The worker whose writes this store makes: they are fenced by its attempt. None for the
        client (its writes check only that the run is live and not cancelled).
    large_value_bytes : int
        A value larger than this is stored as a stream of chunks (Redis refuses values above
        512 MB); default 256 MiB.
    """

    def __init__(
        self,
        client: redis.Redis,
        run_id: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        writer: tuple[str, int] | None = None,
        large_value_bytes: int = LARGE_VALUE_BYTES,
    ):
        if not run_id or ":" in run_id:
            raise ValueError(f"run id {run_id!r} must be non-empty and contain no ':'")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s={ttl_s!r} must be > 0 (seconds a run's keys live)")
        self.client = client
        self.run_id = run_id
        self.prefix = run_prefix(run_id)
        self.ttl_ms = max(int(ttl_s * 1000), 1)
        self.writer = writer
        self.large_value_bytes = min(large_value_bytes, LARGE_VALUE_BYTES)
        self._script = client.register_script(FENCED_WRITE)
        fence = self.key(f"attempt:{writer[0]}") if writer else self.key(RUN_KEY)
        self._keys = [self.key(RUN_KEY), self.key(CANCEL_KEY), fence]

    def key(self, name: str) -> str:
        """The Redis key of run-local name `name`."""
        return self.prefix + name

    def _marker(self, channel: str) -> str:
        return self.key(f"sent:{channel}")

    def _channel(self, channel: str) -> str:
        return self.key(f"chan:{channel}")

    def _write(self, *commands: tuple[Any, ...], ttl: bool = True, client: Any = None) -> list:
        """Apply `commands` (``(name, key, *args)``, keys already prefixed) in one fenced
        script call; every key written expires after the run's ttl unless ``ttl=False`` or the
        command is a PUBLISH. Returns their replies.

        Raises
        ------
        WriteRefused
            If the run is gone or cancelled, or this writer's attempt was superseded.
        """
        attempt = self.writer[1] if self.writer else -1
        args: list[Any] = [attempt]
        for command in commands:
            expires = ttl and command[0] not in ("PUBLISH", "DEL", "SCARD")
            args += [len(command), self.ttl_ms if expires else 0, *command]
        reply = self._script(keys=self._keys, args=args, client=client)
        if isinstance(reply, int):
            self._refused(reply, commands)
        return reply

    def _refused(self, status: int, commands: tuple[tuple[Any, ...], ...]) -> None:
        who = f"worker {self.writer[0]!r} (attempt {self.writer[1]})" if self.writer else "client"
        key = commands[0][1] if commands else "?"
        if isinstance(key, bytes):
            key = key.decode(errors="replace")
        key = str(key).removeprefix(self.prefix)
        if status == -1:
            reason, why = "gone", "its keys are gone (cleaned up, expired, or Redis restarted)"
        elif status == -2:
            reason, why = "cancelled", "it was cancelled (ended, failed or stopped)"
        else:
            reason, why = "superseded", "a retry of this worker has started"
        raise WriteRefused(f"run {self.run_id!r}: write of {key!r} by {who} refused: {why}", reason)

    # -- run lifetime ---------------------------------------------------------------------

    def begin(self) -> None:
        """Mark the run as live (its marker holds the start, seconds since the epoch); `alive`
        turns False if Redis loses the run's keys.

        Raises
        ------
        RunIdInUse
            If a run with this id is live in this Redis.
        """
        if not self.client.set(self.key(RUN_KEY), repr(time.time()), nx=True, px=self.ttl_ms):
            raise RunIdInUse(f"a run with id {self.run_id!r} is live in this Redis already")

    def alive(self) -> bool:
        return bool(self.client.exists(self.key(RUN_KEY)))

    def cancel(self) -> None:
        """Set the run's cancel flag: every later write of its workers is refused, and workers
        waiting for an input stop."""
        self.client.set(self.key(CANCEL_KEY), b"1", px=self.ttl_ms)

    def cleanup(self) -> int:
        """Delete every key of this run; returns how many were deleted."""
        return cleanup(self.client, self.run_id)

    # -- attempts and liveness ------------------------------------------------------------

    def next_attempt(self, worker_id: str) -> int:
        """Fence off worker `worker_id`'s current attempt; returns the new attempt number
        (from then on only writes of that attempt are applied)."""
        key = self.key(f"attempt:{worker_id}")
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.pexpire(key, self.ttl_ms)
        attempt, _ = pipe.execute()
        return int(attempt)

    def heartbeat(self, ttl_ms: int, *, client: Any = None) -> None:
        """Refresh this writer's heartbeat key for `ttl_ms` (fenced: a superseded attempt's
        heartbeat is refused, so it never looks alive)."""
        worker_id, attempt = self.writer or ("client", -1)
        self._write(
            ("SET", self.key(f"hb:{worker_id}"), attempt, "PX", int(ttl_ms)), ttl=False,
            client=client,
        )  # fmt: skip

    def heartbeats(self, worker_ids: list[str]) -> list[int | None]:
        """The attempt each worker's live heartbeat holds, None where it has expired."""
        if not worker_ids:
            return []
        values = self.client.mget([self.key(f"hb:{w}") for w in worker_ids])
        return [None if v is None else int(v) for v in values]

    # -- values ---------------------------------------------------------------------------

    def put(self, name: str, value: Any) -> int:
        """Store `value` at `name`; returns the stored bytes (a value too large for one Redis
        value is stored as a stream of chunks, which `get` reads back alike)."""
        blob = dumps(value)
        if len(blob) > self.large_value_bytes:
            return self._put_chunks(name, blob, LARGE_VALUE_CHUNK_BYTES)
        self._write(("SET", self.key(name), blob))
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
        if blob[:1] == STREAM_REF:  # a streamed output: assemble its chunks
            entries = self.client.xrange(blob[1:])
            blob = b"".join(fields[b"d"] for _id, fields in entries if b"d" in fields)
        return loads(blob, name), len(blob)

    # -- streams (output streaming) ------------------------------------------------------

    def stream_put(self, name: str, value: Any, chunk_bytes: int, *, batch: int = 4) -> int:
        """Write `value` as a Redis stream of chunks (a few XADDs per round trip), then store a
        reference at `name` so plain readers find it; returns the stored bytes.

        A reader already waiting in `stream_get` reads each chunk as soon as it is added.
        """
        return self._put_chunks(name, dumps(value), chunk_bytes, batch=batch)

    def _put_chunks(self, name: str, blob: bytes, chunk_bytes: int, *, batch: int = 4) -> int:
        stream = self.key(f"stream:{name}")
        view = memoryview(blob)
        chunks = [view[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]
        for start in range(0, len(chunks), batch):
            self._write(
                *(("XADD", stream, "*", "d", bytes(c)) for c in chunks[start : start + batch])
            )
        self._write(
            ("XADD", stream, "*", "end", b"1"),
            ("SET", self.key(name), STREAM_REF + stream.encode()),
        )
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
        self._write(("SET", self.key(name), blob))

    def get_blob(self, name: str) -> bytes | None:
        return self.client.get(self.key(name))

    def get_small(self, name: str) -> Any:
        """A marker or counter at `name`: its value, an int for a counter, None when absent.

        Raises
        ------
        StoreError
            If it is neither a faasdag value nor an integer (names `name`).
        """
        blob = self.client.get(self.key(name))
        if blob is None:
            return None
        if is_value(blob):
            return loads(blob, name)
        try:
            return int(blob)
        except ValueError:
            raise StoreError(
                f"value at {name!r} is neither a faasdag value nor a counter"
            ) from None

    def started(self) -> dict[str, Any]:
        """Every start claim of the run: worker id -> (claimer, "invoke" | "take"), followed,
        for an invocation that carried inputs it did not upload, by those inputs."""
        prefix = self.key("started:")
        claims = {}
        for key in self.client.scan_iter(match=prefix + "*", count=500):
            name = key.decode()[len(self.key("")) :]
            claims[name.removeprefix("started:")] = self.get_small(name)
        return claims

    def count_member(self, name: str, member: str) -> int:
        """Atomically add `member` to the counter set `name` (SADD + SCARD in one script);
        returns the number of distinct members. Counting a member twice changes nothing."""
        _added, size = self._write(("SADD", self.key(name), member), ("SCARD", self.key(name)))
        return int(size)

    def set_if_absent(self, name: str, value: Any = 1) -> bool:
        """Set `name` unless it exists (SET NX); True if this call set it."""
        (reply,) = self._write(("SET", self.key(name), dumps(value), "NX"))
        return bool(reply)

    def exists(self, name: str) -> bool:
        return bool(self.client.exists(self.key(name)))

    # -- events ---------------------------------------------------------------------------

    def publish(self, channel: str, message: str = "", *, blob: bytes | None = None) -> None:
        """Leave the marker of `channel` and publish `message` on it, in one transaction.

        With `blob` (a value from `dumps`), the marker and the message are that blob instead:
        the message carries a value, which a subscriber reads with `message_value`.
        """
        data = message.encode() if blob is None else blob
        self._write(
            ("SET", self._marker(channel), data),
            ("PUBLISH", self._channel(channel), data),
        )

    @staticmethod
    def message_value(data: bytes | None, channel: str) -> tuple[Any, int] | None:
        """The value a message (or marker) `data` of `channel` carries and its bytes, or None
        for a plain message.

        Raises
        ------
        UntrustedData
            If it carries a value that is not signed with this process's key.
        """
        if not is_value(data):
            return None
        return loads(data, f"message on {channel!r}"), len(data)

    def check(self, channels: list[str]) -> tuple[list[bytes | None], bool, bytes | None]:
        """(marker of each channel, None where absent; run alive; failure blob or None), in one
        round trip.

        Raises
        ------
        RunCancelled
            If the run's cancel flag is set (it ended, failed or was stopped).
        """
        pipe = self.client.pipeline(transaction=False)
        for channel in channels:
            pipe.get(self._marker(channel))
        pipe.exists(self.key(RUN_KEY))
        pipe.exists(self.key(CANCEL_KEY))
        pipe.get(self.key("_failure"))
        *sent, alive, cancelled, failure = pipe.execute()
        if cancelled and failure is None:
            raise RunCancelled(f"run {self.run_id!r} was cancelled (it ended or was stopped)")
        return list(sent), bool(alive), failure

    def fail(self, failure: Any, *extra: tuple[Any, ...]) -> None:
        """Record the run's first failure and announce it to every waiter; `extra` commands
        (a worker's live events, `runtime.live`) go in the same fenced write."""
        self._write(
            ("SET", self.key("_failure"), dumps(failure), "NX"),
            ("PUBLISH", self._channel(FAILURE_CHANNEL), b""),
            *extra,
        )

    def failure(self) -> Any | None:
        blob = self.client.get(self.key("_failure"))
        return None if blob is None else loads(blob, "_failure")

    def subscription(self) -> Subscription:
        """A new listener (its own connection); close it when done."""
        from runtime.subscription import Subscription  # it reads this store's keys

        return Subscription(self)

    # -- logs -----------------------------------------------------------------------------

    def append_log(self, name: str, blob: bytes) -> None:
        self._write(("RPUSH", self.key(name), blob))

    def finish(self, name: str, blob: bytes, *extra: tuple[Any, ...]) -> None:
        """Append this worker's log to `name` and drop its heartbeat, in one fenced write
        (with `extra` commands: the worker's last live events, `runtime.live`)."""
        worker_id = self.writer[0] if self.writer else "client"
        self._write(("RPUSH", self.key(name), blob), ("DEL", self.key(f"hb:{worker_id}")), *extra)

    def add_events(self, *commands: tuple[Any, ...], client: Any = None) -> None:
        """Apply `commands` (XADDs to the run's event stream, made by `runtime.live`) in one
        fenced write: each stream gets the run's ttl. With `client` a pipeline, the write is
        only queued on it, and its reply (a list, or the int status of a refusal) is the
        caller's to check."""
        if commands:
            self._write(*commands, client=client)

    def read_log(self, name: str, start: int = 0) -> list[bytes]:
        return list(self.client.lrange(self.key(name), start, -1))
