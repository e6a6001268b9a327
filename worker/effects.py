"""Effects: the requests a worker's logic makes of its driver.

One small frozen class per verb, with no behaviour. The worker yields an effect and receives its
result (or an exception thrown in at the ``yield``). Every effect may carry the ``task_id`` it
works for, so a driver can attribute its time to that task in the trace.

Keys and channels are plain strings local to one run; drivers namespace them by run id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dag.resources import ResourceConfig


def _check_nbytes(nbytes: int, what: str) -> None:
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"{what}: nbytes={nbytes!r} must be an integer >= 0")


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """A task's result and its serialised size in bytes (the simulator's value is None).

    ``stored`` marks an output a lost attempt already stored (read back by a retry).
    """

    value: Any
    nbytes: int
    stored: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Execute:
    """Run `task_id`'s function on `inputs` (producer id -> value). Result: a TaskOutput.

    ``duplicate`` marks a task-dup run of a task planned on another worker.
    """

    task_id: str
    inputs: Mapping[str, Any] = field(default_factory=dict, compare=False)
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Download:
    """Read the value stored at `key`. Result: the value."""

    key: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """Store `value` (of `nbytes` serialised bytes) at `key`. Result: None."""

    key: str
    value: Any = field(compare=False)
    nbytes: int
    task_id: str | None = None

    def __post_init__(self) -> None:
        _check_nbytes(self.nbytes, f"Upload of {self.key!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamUpload:
    """Store `value` at `key` as a stream of chunks of `chunk_bytes`, so a reader that is
    already waiting downloads each chunk as it arrives. Result: None."""

    key: str
    value: Any = field(compare=False)
    nbytes: int
    chunk_bytes: int
    task_id: str | None = None

    def __post_init__(self) -> None:
        _check_nbytes(self.nbytes, f"StreamUpload of {self.key!r}")
        if (
            isinstance(self.chunk_bytes, bool)
            or not isinstance(self.chunk_bytes, int)
            or self.chunk_bytes <= 0
        ):
            raise ValueError(
                f"StreamUpload of {self.key!r}: chunk_bytes={self.chunk_bytes!r} must be > 0"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamDownload:
    """Read the stream at `key` chunk by chunk as it is written (waiting for it to begin).
    Result: the value."""

    key: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Get:
    """Read a small value at `key` (a marker or counter), None when absent. Result: the value."""

    key: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Incr:
    """Atomically count `member` into the dependency counter `counter` (a set: counting the
    same member again, e.g. from a retried worker, changes nothing). Result: the number of
    distinct members counted."""

    counter: str
    member: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetIfAbsent:
    """Atomically set `key` to `value` unless it exists. Result: True if this call set it."""

    key: str
    value: Any = field(default=1, compare=False)
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Exists:
    """Whether `key` is stored. Result: bool."""

    key: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribe:
    """Start listening on `channel`, so a later WaitFor misses no message. Result: None."""

    channel: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    """Announce `message` on `channel` to its subscribers. Result: None.

    With `nbytes` set, the message carries `value`, a task output of `nbytes` serialised bytes
    (small-results-inline): a WaitFor on the channel returns it, now or later.
    """

    channel: str
    message: str = ""
    value: Any = field(default=None, compare=False)
    nbytes: int | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        if self.nbytes is not None:
            _check_nbytes(self.nbytes, f"Publish on {self.channel!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitFor:
    """Block until a message arrives on a subscribed `channel` (or arrived since Subscribe).
    Result: the TaskOutput the message carries (a Publish with `nbytes`), else None."""

    channel: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitAny:
    """Block until a message arrives on any of the subscribed `channels`. Result: the tuple of
    channels that have one by then (at least one, in the given order)."""

    channels: tuple[str, ...]
    task_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.channels:
            raise ValueError("WaitAny needs at least one channel")


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoke:
    """Start worker `worker_id` of `config` asynchronously, running from `start_tasks`
    (``attempt`` > 0: a retry of a worker that was lost). Result: None.

    `inputs` (producer id -> TaskOutput) travel in the invocation's payload, so the worker
    starts with them in memory (small-results-inline); `payload_bytes` is their size.
    """

    worker_id: str
    config: ResourceConfig
    start_tasks: tuple[str, ...]
    attempt: int = 0
    inputs: Mapping[str, TaskOutput] = field(default_factory=dict, compare=False)
    task_id: str | None = None

    def __post_init__(self) -> None:
        if not self.start_tasks:
            raise ValueError(f"Invoke of worker {self.worker_id!r} names no start task")
        for producer, output in self.inputs.items():
            if not isinstance(output, TaskOutput):
                raise ValueError(
                    f"Invoke of worker {self.worker_id!r}: input {producer!r} is "
                    f"{type(output).__name__}, not a TaskOutput"
                )

    @property
    def payload_bytes(self) -> int:
        """Serialised bytes of the inputs carried in the payload."""
        return sum(output.nbytes for output in self.inputs.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Warmup:
    """Send a warm-up invocation to the pool of `config` `delay_ms` from now, without waiting
    for it (pre-warm). Result: None."""

    config: ResourceConfig
    delay_ms: float = 0.0
    task_id: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.delay_ms) and self.delay_ms >= 0):
            raise ValueError(f"Warmup delay_ms={self.delay_ms!r} must be finite and >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep:
    """Wait `ms` milliseconds. Result: None."""

    ms: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ms) and self.ms >= 0):
            raise ValueError(f"Sleep ms={self.ms!r} must be finite and >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Now:
    """The driver's clock in ms since run start. Result: float."""


@dataclass(frozen=True, slots=True)
class Parallel:
    """Perform `effects`, in any order or overlapped. Result: their results, in order.

    The real drivers perform them in turn, on the worker's one connection, and so does the
    simulator (`sim.engine`): a prediction is of that.
    """

    effects: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "effects", tuple(self.effects))
        for effect in self.effects:
            if isinstance(effect, Parallel):
                raise ValueError("Parallel may not nest another Parallel")


EFFECTS = (
    Execute,
    Download,
    Upload,
    StreamUpload,
    StreamDownload,
    Get,
    WaitAny,
    Incr,
    SetIfAbsent,
    Exists,
    Subscribe,
    Publish,
    WaitFor,
    Invoke,
    Warmup,
    Sleep,
    Now,
    Parallel,
)
