"""What a run looks like so far: its live events folded into tasks, workers and phase bars.

Rules the views rely on:

1. The state is a fold of the run's events (`runtime.live` vocabulary) over its description
   (tasks, plan, prices); it reads no clock, so a replay at time T is the fold of the events up
   to T, and a live view the fold of what arrived.
2. Events may arrive out of order between workers (each worker sends its own batches): a task
   never goes back (waiting < running < done, failed), and a phase bar is drawn from the start
   and end its ending event carries.
3. A worker row is one attempt of one worker: a retried worker gets a second row (``#1``), and
   the tasks it ran show attempt 1. A lost attempt's phases still open end where it was lost.
4. The bill so far is `sim.costs.CostLedger`'s: each worker billed from its start-up to its end
   (or to now, while it runs), with the platform's prices and rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dag.resources import ResourceConfig
from sim.costs import CostLedger
from sim.platform import Platform

TASK_STATES = ("waiting", "running", "done", "failed")
_RANK = {state: i for i, state in enumerate(TASK_STATES)}
PHASES = ("startup", "download", "exec", "upload", "failed")


@dataclass
class TaskInfo:
    """One task: its place in the plan and what its latest attempt did (times in ms)."""

    task_id: str
    function: str
    deps: tuple[str, ...] = ()
    planned_worker: str | None = None
    memory_mb: int | None = None
    cpus: float | None = None
    pred_start_ms: float | None = None
    pred_end_ms: float | None = None
    state: str = "waiting"
    worker: str | None = None
    attempt: int = 0
    waiting_ms: float | None = None
    download_start_ms: float | None = None
    download_end_ms: float | None = None
    download_bytes: int = 0
    exec_start_ms: float | None = None
    exec_end_ms: float | None = None
    output_bytes: int | None = None
    upload_start_ms: float | None = None
    upload_end_ms: float | None = None
    upload_bytes: int = 0
    error: str | None = None
    message: str | None = None
    traceback: str | None = None


@dataclass
class WorkerInfo:
    """One attempt of one worker: its row in the task stream."""

    worker: str
    attempt: int
    row: int
    memory_mb: int | None = None
    cpus: float | None = None
    startup: str | None = None
    startup_ms: float = 0.0
    invoked_ms: float | None = None
    ready_ms: float | None = None
    end_ms: float | None = None
    lost: bool = False
    open: dict[tuple[str, str], float] = field(default_factory=dict)  # (task, phase) -> start

    @property
    def label(self) -> str:
        return self.worker if self.attempt == 0 else f"{self.worker} #{self.attempt}"


@dataclass(frozen=True, slots=True)
class Bar:
    """A finished phase of a task on a worker row, ms."""

    row: int
    task_id: str
    phase: str
    start_ms: float
    end_ms: float


class RunState:
    """The fold of one run's events over its description.

    Parameters
    ----------
    description : dict or None
        From `runtime.live_source.describe_run` (or `dashboard.replay`); None while unknown:
        tasks then appear as their events name them.
    """

    def __init__(self, description: dict[str, Any] | None = None):
        self.description = description or {}
        self.tasks: dict[str, TaskInfo] = {}
        self.order: list[str] = []  # task ids, in description order then as first seen
        self.workers: dict[tuple[str, int], WorkerInfo] = {}
        self.rows: list[WorkerInfo] = []
        self.bars: list[Bar] = []
        self.changed: set[str] = set()  # tasks whose state changed since `take_changed`
        self.last_ms = 0.0
        self.n_events = 0
        self.status = "waiting"  # waiting (no event yet), running, ok, failed
        self.error: str | None = None
        for row in self.description.get("tasks", ()):
            self._add_task(
                TaskInfo(
                    task_id=row["id"],
                    function=row.get("function", ""),
                    deps=tuple(row.get("deps", ())),
                    planned_worker=row.get("worker"),
                    memory_mb=row.get("memory_mb"),
                    cpus=row.get("cpus"),
                    pred_start_ms=row.get("pred_start_ms"),
                    pred_end_ms=row.get("pred_end_ms"),
                )
            )

    def _add_task(self, info: TaskInfo) -> TaskInfo:
        self.tasks[info.task_id] = info
        self.order.append(info.task_id)
        return info

    def task(self, task_id: str) -> TaskInfo:
        info = self.tasks.get(task_id)
        if info is None:
            info = self._add_task(TaskInfo(task_id, task_id.rsplit("-", 1)[0]))
        return info

    def worker(self, event: dict[str, Any]) -> WorkerInfo:
        key = (str(event["worker"]), int(event.get("attempt", 0)))
        info = self.workers.get(key)
        if info is None:
            info = self.workers[key] = WorkerInfo(key[0], key[1], len(self.rows))
            self.rows.append(info)
        return info

    def take_changed(self) -> set[str]:
        changed, self.changed = self.changed, set()
        return changed

    # -- folding --------------------------------------------------------------------------

    def apply(self, events: list[dict[str, Any]]) -> None:
        """Fold `events` in (any order between workers)."""
        for event in events:
            handler = _HANDLERS.get(event["kind"])
            if handler is not None:
                handler(self, event)
            self.last_ms = max(self.last_ms, float(event["t_ms"]))
            self.n_events += 1
            if self.status == "waiting":
                self.status = "running"

    @staticmethod
    def _stale(info: TaskInfo, event: dict[str, Any]) -> bool:
        """Whether `event` is a superseded attempt's late news of `info`."""
        return info.attempt > int(event.get("attempt", 0))

    def _advance(self, info: TaskInfo, state: str, event: dict[str, Any]) -> None:
        info.worker, info.attempt = str(event["worker"]), int(event.get("attempt", 0))
        if _RANK[state] > _RANK[info.state] or state == "failed":
            info.state = state
            self.changed.add(info.task_id)

    def _close(self, worker: WorkerInfo, task_id: str, phase: str, event: dict[str, Any]) -> float:
        start = worker.open.pop((task_id, phase), None)
        start = event.get("start_ms") if event.get("start_ms") is not None else start
        end = float(event["t_ms"])
        start = end if start is None else float(start)
        self.bars.append(Bar(worker.row, task_id, phase, start, end))
        return start

    # -- what the views show --------------------------------------------------------------

    def open_bars(self, now_ms: float) -> list[Bar]:
        """Phases begun and not ended, drawn up to `now_ms`."""
        return [
            Bar(w.row, task_id, phase, start, max(now_ms, start))
            for w in self.rows
            for (task_id, phase), start in w.open.items()
        ]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(TASK_STATES, 0)
        for info in self.tasks.values():
            counts[info.state] += 1
        return counts

    def progress(self) -> dict[str, dict[str, int]]:
        """Per function: tasks in each state."""
        table: dict[str, dict[str, int]] = {}
        for info in self.tasks.values():
            table.setdefault(info.function, dict.fromkeys(TASK_STATES, 0))[info.state] += 1
        return table

    def bill(self, now_ms: float) -> dict[str, float]:
        """The bill so far (`CostLedger.breakdown`) plus ``n_cold`` and ``bytes_moved``."""
        prices = self.description.get("prices") or {}
        ledger = CostLedger(Platform(name=self.description.get("platform") or "live", **prices))
        n_cold = 0
        for w in self.rows:
            if w.ready_ms is None or w.memory_mb is None:
                continue
            end = w.end_ms if w.end_ms is not None else now_ms
            duration = max(end - (w.ready_ms - w.startup_ms), 0.0)
            ledger.invocation(ResourceConfig(int(w.memory_mb), float(w.cpus or 1.0)), duration)
            n_cold += w.startup == "cold"
        moved = sum(t.download_bytes + t.upload_bytes for t in self.tasks.values())
        ledger.store_transfer(int(moved))
        return {**ledger.breakdown(), "n_cold": n_cold, "bytes_moved": moved}

    def makespan_ms(self) -> float:
        return self.last_ms


def _worker_invoked(state: RunState, event: dict[str, Any]) -> None:
    worker = state.worker(event)
    worker.invoked_ms = float(event["t_ms"])
    worker.memory_mb = worker.memory_mb or event.get("memory_mb")
    worker.cpus = worker.cpus or event.get("cpus")


def _worker_started(state: RunState, event: dict[str, Any]) -> None:
    worker = state.worker(event)
    worker.ready_ms = float(event["t_ms"])
    worker.memory_mb, worker.cpus = event.get("memory_mb"), event.get("cpus")
    worker.startup = str(event.get("startup", "none"))
    worker.startup_ms = float(event.get("startup_ms") or 0.0)
    if worker.startup_ms > 0:
        start = worker.ready_ms - worker.startup_ms
        state.bars.append(Bar(worker.row, "", "startup", start, worker.ready_ms))


def _worker_done(state: RunState, event: dict[str, Any]) -> None:
    worker = state.worker(event)
    worker.end_ms = float(event["t_ms"])
    worker.lost = worker.lost or event["kind"] == "worker_lost"
    for task_id, phase in list(worker.open):
        state._close(worker, task_id, phase, {"t_ms": event["t_ms"]})


def _phase_start(phase: str):
    def handler(state: RunState, event: dict[str, Any]) -> None:
        worker = state.worker(event)
        info = state.task(str(event["task"]))
        if worker.end_ms is None:
            worker.open.setdefault((info.task_id, phase), float(event["t_ms"]))
        if state._stale(info, event):
            return
        if phase == "exec":
            info.exec_start_ms = float(event["t_ms"])
        elif phase == "download" and info.download_start_ms is None:
            info.download_start_ms = float(event["t_ms"])
        state._advance(info, "running", event)

    return handler


def _task_waiting(state: RunState, event: dict[str, Any]) -> None:
    info = state.task(str(event["task"]))
    if state._stale(info, event):
        return
    info.waiting_ms = float(event["t_ms"])
    state._advance(info, "running", event)


def _phase_end(phase: str):
    def handler(state: RunState, event: dict[str, Any]) -> None:
        worker = state.worker(event)
        info = state.task(str(event["task"]))
        start = state._close(worker, info.task_id, phase, event)
        if state._stale(info, event):
            return
        end, nbytes = float(event["t_ms"]), int(event.get("bytes") or 0)
        if phase == "download":
            info.download_start_ms = min(info.download_start_ms or start, start)
            info.download_end_ms = max(info.download_end_ms or end, end)
            info.download_bytes += nbytes
            state._advance(info, "running", event)
        elif phase == "exec":
            info.exec_start_ms, info.exec_end_ms, info.output_bytes = start, end, nbytes
            state._advance(info, "done", event)
        else:
            info.upload_start_ms, info.upload_end_ms = start, end
            info.upload_bytes += nbytes
            state._advance(info, "done", event)

    return handler


def _task_failed(state: RunState, event: dict[str, Any]) -> None:
    worker = state.worker(event)
    task_id = event.get("task")
    if task_id is None:  # the worker failed outside any task
        state.error = f"{event.get('error')}: {event.get('message')}"
        return
    info = state.task(str(task_id))
    for key in [k for k in worker.open if k[0] == info.task_id]:
        worker.open.pop(key)
    state._close(worker, info.task_id, "failed", event)
    if state._stale(info, event):
        return
    info.error, info.message = event.get("error"), event.get("message")
    info.traceback = event.get("traceback")
    if event.get("start_ms") is not None:
        info.exec_start_ms = float(event["start_ms"])
    state._advance(info, "failed", event)


def _run_ended(state: RunState, event: dict[str, Any]) -> None:
    state.status = "ok" if event.get("status") == "ok" else "failed"
    state.error = event.get("error") or state.error


_HANDLERS = {
    "worker_invoked": _worker_invoked,
    "worker_started": _worker_started,
    "worker_lost": _worker_done,
    "worker_ended": _worker_done,
    "task_waiting": _task_waiting,
    "download_start": _phase_start("download"),
    "download_end": _phase_end("download"),
    "exec_start": _phase_start("exec"),
    "exec_end": _phase_end("exec"),
    "upload_end": _phase_end("upload"),
    "task_failed": _task_failed,
    "run_ended": _run_ended,
}
"""Event kind -> how it changes the state (``run_started`` changes nothing)."""
