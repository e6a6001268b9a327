"""Effect timings of workers in other processes, shipped to the client and replayed there.

A `TraceRecorder` needs the whole run to compute task rows (a task's ready time depends on
producers run elsewhere), but real workers run in separate processes. So each worker writes
what it would tell a recorder into an `EventLog`, flushes it to the run's store when it ends,
and the client replays every log into one recorder: the tables come out exactly as if a single
driver had recorded them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from dag.resources import ResourceConfig
from worker.effects import Execute, Invoke, Publish, TaskOutput, Upload
from worker.recording import TraceRecorder

LOG_NAME = "_log"


def slim(effect: Any) -> Any:
    """`effect` without its payload (an Upload's value, an Execute's inputs, the values an
    Invoke or a Publish carries), for shipping."""
    if isinstance(effect, Upload):
        return dataclasses.replace(effect, value=None)
    if isinstance(effect, Execute):
        return dataclasses.replace(effect, inputs={})
    if isinstance(effect, Invoke) and effect.inputs:  # keep the sizes, drop the values
        inputs = {p: TaskOutput(None, o.nbytes) for p, o in effect.inputs.items()}
        return dataclasses.replace(effect, inputs=inputs)
    if isinstance(effect, Publish) and effect.nbytes is not None:
        return dataclasses.replace(effect, value=None)
    return effect


class EventLog:
    """The recorder calls of one worker invocation, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def worker_started(
        self,
        worker_id: str,
        config: ResourceConfig,
        *,
        startup: str,
        startup_ms: float,
        invoked_ms: float,
        ready_ms: float,
        attempt: int = 0,
    ) -> None:
        self.events.append(
            ("start", worker_id, config, startup, startup_ms, invoked_ms, ready_ms, attempt)
        )

    def effect(
        self, worker_id: str, effect: Any, start_ms: float, end_ms: float, nbytes: int = 0
    ) -> None:
        self.events.append(("effect", worker_id, slim(effect), start_ms, end_ms, nbytes))

    def worker_ended(self, worker_id: str, end_ms: float) -> None:
        self.events.append(("end", worker_id, end_ms))


@dataclasses.dataclass
class Replayed:
    """What the client learns from the logs: invocations, uploads, workers that ended."""

    invocations: list[Invoke]
    uploads: list[str]
    ended: set[str]
    n_logs: int


def replay(recorder: TraceRecorder, logs: Iterable[list[tuple[Any, ...]]]) -> Replayed:
    """Feed every log's events into `recorder`; returns the structure of the run."""
    invocations: list[Invoke] = []
    uploads: list[str] = []
    ended: set[str] = set()
    n_logs = 0
    for events in logs:
        n_logs += 1
        for event in events:
            kind = event[0]
            if kind == "effect":
                _, worker_id, effect, start_ms, end_ms, nbytes = event
                recorder.effect(worker_id, effect, start_ms, end_ms, nbytes)
                if isinstance(effect, Invoke):
                    invocations.append(effect)
                elif isinstance(effect, Upload):
                    uploads.append(effect.key)
            elif kind == "start":
                _, worker_id, config, startup, startup_ms, invoked_ms, ready_ms, attempt = event
                recorder.worker_started(
                    worker_id,
                    config,
                    startup=startup,
                    startup_ms=startup_ms,
                    invoked_ms=invoked_ms,
                    ready_ms=ready_ms,
                    attempt=attempt,
                )
            elif kind == "end":
                recorder.worker_ended(event[1], event[2])
                ended.add(event[1])
            else:
                raise ValueError(f"unknown event kind {kind!r} in a worker log")
    return Replayed(invocations, uploads, ended, n_logs)
