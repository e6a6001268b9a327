"""Trace recording shared by every driver: effect timings in, trace-schema rows out.

A driver reports each effect it performed with its start and end (ms from run start) and the
bytes it moved; the recorder attributes them to (task, worker) executions and to workers. It
reads no clock itself, so a simulated run and a real run produce the same columns and compare by
a join.

Timings are kept in columns (one array per field, one slot per (task, worker) execution or per
worker), not one object per row, so that a run of a million tasks records in a few hundred MB;
`task_columns` and `worker_columns` hand them out whole, ready for a DataFrame.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np

from dag.resources import ResourceConfig
from worker.effects import (
    StreamUpload,
)
from worker.schedule import Schedule
from worker.trace_fields import (  # noqa: F401  (CLIENT and the fields are re-exported)
    _DC,
    _DOWN,
    _EXEC,
    _UP,
    CLIENT,
    STORE_COMMANDS,
    TASK_FIELDS,
    WORKER_FIELDS,
    _ignore,
    _info,
    _rows,
    _union_ms,
)


class TraceRecorder:
    """Collects one run's effect timings and turns them into task and worker rows.

    Parameters
    ----------
    schedule : Schedule
        The plan read against its DAG (for dependencies and function names).
    billing_ms : float
        Billing granularity for ``billed_ms`` (1 ms on AWS Lambda).

    Attributes
    ----------
    n_store_commands, n_publishes : int
        Effects the workers performed that were store commands (`STORE_COMMANDS`) and
        publishes (the client's own are left out).
    """

    def __init__(self, schedule: Schedule, *, billing_ms: float = 1.0):
        self.schedule = schedule
        self.billing_ms = billing_ms
        self.n_store_commands = 0
        self.n_publishes = 0
        # One slot per (task, worker) execution, in the order they were first reported. The
        # columns grow by blocks, ahead of the slots in use (``len(self._task)``).
        self._first: dict[str, int] = {}  # task id -> slot of its first execution
        self._other: dict[tuple[str, str], int] = {}  # (task id, worker id) -> later slots
        self._task: list[str] = []
        self._worker: list[str] = []
        self._download_start = array("d")  # inf: nothing downloaded
        self._inputs_done = array("d")
        self._download_bytes = array("q")
        self._exec_start = array("d")  # nan: not executed
        self._exec_done = array("d")
        self._output_bytes = array("q")
        self._upload_ms = array("d")
        self._upload_end = array("d")
        self._dc_ms = array("d")
        self._dc_end = array("d")
        # The start-up of a worker, on the slot of the first task it ran (0: none).
        self._startup_kind = bytearray()  # index into _startup_names
        self._startup_ms = array("d")
        self._startup_names: list[str] = ["none"]
        # Every download, in the order reported: (slot, start, end).
        self._dl_slot = array("q")
        self._dl_start = array("d")
        self._dl_end = array("d")
        self._flags = bytearray()  # bit 1: duplicated, bit 2: streamed
        # One slot per worker, in the order they started.
        self._worker_slot: dict[str, int] = {}
        self._w_id: list[str] = []
        self._w_config: list[ResourceConfig] = []
        self._w_startup: list[str] = []
        self._w_startup_ms = array("d")
        self._w_invoked = array("d")
        self._w_ready = array("d")
        self._w_attempt = array("q")
        self._w_end = array("d")
        self._w_ran_task = bytearray()
        self._recorders: dict[type, Callable[[str, Any, float, float, int], None]] = {}

    # -- driver callbacks -----------------------------------------------------------------

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
        """A container for `worker_id` is running its logic from `ready_ms` (`attempt` 0 for
        the first try, +1 per retry)."""
        slot = self._worker_slot.get(worker_id)
        if slot is None:
            self._worker_slot[worker_id] = len(self._w_id)
            self._w_id.append(worker_id)
            self._w_config.append(config)
            self._w_startup.append(startup)
            self._w_startup_ms.append(startup_ms)
            self._w_invoked.append(invoked_ms)
            self._w_ready.append(ready_ms)
            self._w_attempt.append(attempt)
            self._w_end.append(math.nan)
            self._w_ran_task.append(0)
            return
        # A retry: the same row, the new attempt's values.
        self._w_config[slot] = config
        self._w_startup[slot] = startup
        self._w_startup_ms[slot] = startup_ms
        self._w_invoked[slot] = invoked_ms
        self._w_ready[slot] = ready_ms
        self._w_attempt[slot] = attempt
        self._w_end[slot] = math.nan
        self._w_ran_task[slot] = 0

    def worker_prewarmed(self, worker_id: str) -> None:
        """The worker's warm start is owed to a pre-warm: recorded as startup 'prewarmed'."""
        self._w_startup[self._worker_slot[worker_id]] = "prewarmed"

    def worker_ended(self, worker_id: str, end_ms: float) -> None:
        self._w_end[self._worker_slot[worker_id]] = end_ms

    def _slot(self, task_id: str, worker_id: str) -> int:
        """The slot of the (task, worker) execution, made on first use."""
        slot = self._first.get(task_id)
        if slot is not None and self._worker[slot] == worker_id:
            return slot
        if slot is not None:
            found = self._other.get((task_id, worker_id))
            if found is not None:
                return found
        slot = len(self._task)
        if slot == len(self._flags):
            self._grow(max(1024, slot))
        if task_id in self._first:
            self._other[(task_id, worker_id)] = slot
        else:
            self._first[task_id] = slot
        self._task.append(task_id)
        self._worker.append(worker_id)
        return slot

    def _grow(self, n: int) -> None:
        """Room for `n` more slots in every column, each at its empty value."""
        for column, empty in (
            (self._download_start, math.inf),
            (self._inputs_done, -math.inf),
            (self._download_bytes, 0),
            (self._startup_ms, 0.0),
            (self._exec_start, math.nan),
            (self._exec_done, math.nan),
            (self._output_bytes, 0),
            (self._upload_ms, 0.0),
            (self._upload_end, -math.inf),
            (self._dc_ms, 0.0),
            (self._dc_end, -math.inf),
        ):
            column.extend(array(column.typecode, [empty]) * n)
        self._startup_kind.extend(bytes(n))
        self._flags.extend(bytes(n))

    def effect(
        self, worker_id: str, effect: Any, start_ms: float, end_ms: float, nbytes: int = 0
    ) -> None:
        """Attribute one performed effect (never a Parallel: report its members)."""
        record = self._recorders.get(effect.__class__) or self.for_effect(effect.__class__)
        record(worker_id, effect, start_ms, end_ms, nbytes)

    def for_effect(self, kind: type) -> Callable[[str, Any, float, float, int], None]:
        """The function `effect` calls for effects of type `kind`, with the same arguments:
        a driver that reports many effects may look it up once per type."""
        found = self._recorders.get(kind)
        if found is None:
            command, publish, code = _info(kind)
            found = {
                _EXEC: self._record_exec,
                _DOWN: self._record_down,
                _UP: self._record_up,
                _DC: self._record_dc,
            }.get(code, _ignore)
            if command or publish:
                found = self._counting(found, command)
            self._recorders[kind] = found
        return found

    def _counting(self, record: Callable[..., None], command: bool) -> Callable[..., None]:
        """`record`, counting each effect first: as a store command, else as a publish."""

        def count_command(worker_id, effect, start_ms, end_ms, nbytes=0) -> None:
            if worker_id != CLIENT:  # the real client also fetches the results; not the sim's
                self.n_store_commands += 1
            record(worker_id, effect, start_ms, end_ms, nbytes)

        def count_publish(worker_id, effect, start_ms, end_ms, nbytes=0) -> None:
            if worker_id != CLIENT:
                self.n_publishes += 1
            record(worker_id, effect, start_ms, end_ms, nbytes)

        return count_command if command else count_publish

    def _record_exec(self, worker_id, effect, start_ms, end_ms, nbytes=0) -> None:
        task_id = effect.task_id
        if task_id is None:
            return
        slot = self._first.get(task_id)
        if slot is None or self._worker[slot] != worker_id:
            slot = self._slot(task_id, worker_id)
        self._exec_start[slot] = start_ms
        self._exec_done[slot] = end_ms
        self._output_bytes[slot] = nbytes
        if effect.duplicate:
            self._flags[slot] |= 1
        else:
            self._flags[slot] &= ~1
        wslot = self._worker_slot.get(worker_id)
        if wslot is not None and not self._w_ran_task[wslot]:
            self._w_ran_task[wslot] = 1
            self._startup_kind[slot] = self._startup_code(self._w_startup[wslot])
            self._startup_ms[slot] = self._w_startup_ms[wslot]

    def _record_down(self, worker_id, effect, start_ms, end_ms, nbytes=0) -> None:
        task_id = effect.task_id
        if task_id is None:
            return
        slot = self._first.get(task_id)
        if slot is None or self._worker[slot] != worker_id:
            slot = self._slot(task_id, worker_id)
        if start_ms < self._download_start[slot]:
            self._download_start[slot] = start_ms
        if end_ms > self._inputs_done[slot]:
            self._inputs_done[slot] = end_ms
        self._download_bytes[slot] += nbytes
        self._dl_slot.append(slot)
        self._dl_start.append(start_ms)
        self._dl_end.append(end_ms)

    def _startup_code(self, startup: str) -> int:
        names = self._startup_names
        if startup not in names:
            names.append(startup)
        return names.index(startup)

    def _record_up(self, worker_id, effect, start_ms, end_ms, nbytes=0) -> None:
        task_id = effect.task_id
        if task_id is None:
            return
        slot = self._first.get(task_id)
        if slot is None or self._worker[slot] != worker_id:
            slot = self._slot(task_id, worker_id)
        self._upload_ms[slot] += end_ms - start_ms
        if end_ms > self._upload_end[slot]:
            self._upload_end[slot] = end_ms
        if isinstance(effect, StreamUpload):
            self._flags[slot] |= 2

    def _record_dc(self, worker_id, effect, start_ms, end_ms, nbytes=0) -> None:
        """Coordination: counters, claims, events, invocations."""
        task_id = effect.task_id
        if task_id is None:
            return
        slot = self._first.get(task_id)
        if slot is None or self._worker[slot] != worker_id:
            slot = self._slot(task_id, worker_id)
        self._dc_ms[slot] += end_ms - start_ms
        if end_ms > self._dc_end[slot]:
            self._dc_end[slot] = end_ms

    # -- results --------------------------------------------------------------------------

    def _executed_slots(self) -> np.ndarray:
        """Slots whose Execute was recorded."""
        done = np.frombuffer(self._exec_done, dtype=np.float64)
        return np.flatnonzero(~np.isnan(done))

    def executed(self) -> set[str]:
        """Ids of tasks whose Execute was recorded."""
        task = self._task
        return {task[i] for i in self._executed_slots().tolist()}

    def _row_slots(self) -> list[int]:
        """Executed slots in row order: tasks in topological order, each task's executions in
        the order they were first reported."""
        executed = self._exec_done
        first = self._first
        later: dict[str, list[int]] = {}
        for (task_id, _worker), slot in self._other.items():
            later.setdefault(task_id, []).append(slot)
        slots: list[int] = []
        for task_id in self.schedule.dag.topological_order():
            slot = first.get(task_id)
            if slot is None:
                continue
            if task_id in later:
                for s in sorted([slot, *later[task_id]]):
                    if executed[s] == executed[s]:
                        slots.append(s)
            elif executed[slot] == executed[slot]:
                slots.append(slot)
        return slots

    def _available_ms(self, slot: int) -> float:
        """When this execution's output could be read elsewhere (or locally, if kept)."""
        end = self._upload_end[slot]
        return end if end >= 0 else self._exec_done[slot]

    def task_columns(self) -> dict[str, Any]:
        """One column (a list or numpy array) per trace field, one entry per task execution
        (duplicates included), in topological order: the rows of `task_rows`, whole."""
        dag = self.schedule.dag
        tasks = dag.tasks
        config_of = self.schedule.config_of
        slots = self._row_slots()
        n = len(slots)
        task_col = self._task
        worker_col = self._worker
        done = self._exec_done
        first = self._first
        other = self._other
        w_slot = self._worker_slot
        w_config = self._w_config
        w_attempt = self._w_attempt

        later: dict[str, list[int]] = {}
        for (task_id, _worker), slot in other.items():
            later.setdefault(task_id, []).append(slot)

        def executions(dep: str) -> list[int]:
            """The executed slots of `dep`, in the order first reported."""
            found = [first[dep], *later.get(dep, ())]
            return sorted(s for s in found if done[s] == done[s])

        ids: list[str] = [""] * n
        functions: list[str] = [""] * n
        workers: list[str] = [""] * n
        memory = np.empty(n, dtype=np.int64)
        cpus = np.empty(n, dtype=np.float64)
        attempt = np.zeros(n, dtype=np.int64)
        ready = np.empty(n, dtype=np.float64)
        input_bytes = np.empty(n, dtype=np.int64)
        multi = bool(other)
        for row, slot in enumerate(slots):
            task_id = task_col[slot]
            worker_id = worker_col[slot]
            ids[row] = task_id
            task = tasks[task_id]
            functions[row] = task.function
            workers[row] = worker_id
            wslot = w_slot.get(worker_id)
            if wslot is not None:
                config = w_config[wslot]
                attempt[row] = w_attempt[wslot]
            else:
                config = config_of[task_id]
            memory[row] = config.memory_mb
            cpus[row] = config.cpus
            # Ready: the earliest moment each input existed where this run could read it.
            ready_ms = 0.0
            n_in = 0
            for dep in task.deps:
                dslot = first.get(dep)
                if dslot is None:
                    continue
                if multi:
                    runs = executions(dep)
                    if not runs:
                        continue
                    ready_ms = max(
                        ready_ms,
                        min(
                            done[d] if worker_col[d] == worker_id else self._available_ms(d)
                            for d in runs
                        ),
                    )
                    n_in += self._output_bytes[runs[0]]
                else:
                    if done[dslot] != done[dslot]:
                        continue
                    at = (
                        done[dslot] if worker_col[dslot] == worker_id else self._available_ms(dslot)
                    )
                    if at > ready_ms:
                        ready_ms = at
                    n_in += self._output_bytes[dslot]
            ready[row] = ready_ms
            input_bytes[row] = n_in
        index = np.asarray(slots, dtype=np.intp)
        flags = np.frombuffer(self._flags, dtype=np.uint8)[index]
        names = np.array(self._startup_names, dtype=object)
        startup = names[np.frombuffer(self._startup_kind, dtype=np.uint8)[index]].tolist()

        def column(values: array) -> np.ndarray:
            return np.frombuffer(values, dtype=np.float64 if values.typecode == "d" else np.int64)[
                index
            ]

        exec_start = column(self._exec_start)
        exec_done = column(self._exec_done)
        download_start = column(self._download_start)
        downloaded = download_start != math.inf
        start = np.where(downloaded, download_start, exec_start)
        end = np.maximum(np.maximum(exec_done, column(self._upload_end)), column(self._dc_end))
        # An input read is never earlier than its availability; in a real run the producer may
        # record its upload's end after a fast reader already started.
        ready = np.minimum(ready, start)
        return {
            "task_id": ids,
            "function": functions,
            "worker_id": workers,
            "memory_mb": memory,
            "cpus": cpus,
            "attempt": attempt,
            "ready_ms": ready,
            "start_ms": start,
            "inputs_done_ms": np.where(downloaded, column(self._inputs_done), exec_start),
            "exec_done_ms": exec_done,
            "end_ms": end,
            "startup": startup,
            "startup_ms": column(self._startup_ms),
            "input_bytes": input_bytes,
            "download_bytes": column(self._download_bytes),
            "download_ms": self._download_ms()[index],
            "exec_ms": exec_done - exec_start,
            "output_bytes": column(self._output_bytes),
            "upload_ms": column(self._upload_ms),
            "dc_ms": column(self._dc_ms),
            "duplicated": (flags & 1) != 0,
            "streamed": (flags & 2) != 0,
        }

    def _download_ms(self) -> np.ndarray:
        """Per slot, the length of the union of its download intervals (ms); 0 without any."""
        out = np.zeros(len(self._task), dtype=np.float64)
        if not self._dl_slot:
            return out
        slot = np.frombuffer(self._dl_slot, dtype=np.int64)
        start = np.frombuffer(self._dl_start, dtype=np.float64)
        end = np.frombuffer(self._dl_end, dtype=np.float64)
        per_slot = np.bincount(slot, minlength=len(out))[slot]
        alone = per_slot == 1  # one interval: its length
        out[slot[alone]] = end[alone] - start[alone]
        several: dict[int, list[tuple[float, float]]] = {}
        for i in np.flatnonzero(per_slot > 1).tolist():
            several.setdefault(self._dl_slot[i], []).append((self._dl_start[i], self._dl_end[i]))
        for s, intervals in several.items():
            out[s] = _union_ms(intervals)
        return out

    def task_rows(self) -> list[dict[str, Any]]:
        """One dict per task execution (duplicates included), in topological order."""
        return _rows(self.task_columns(), TASK_FIELDS)

    def makespan_ms(self) -> float:
        """When the last sink's result was stored (ms); a duplicated sink counts its first run,
        a sink never run counts as nothing."""
        later: dict[str, list[int]] = {}
        for (task_id, _worker), slot in self._other.items():
            later.setdefault(task_id, []).append(slot)
        done = self._exec_done
        ends = []
        for sink in self.schedule.dag.sinks:
            slot = self._first.get(sink)
            if slot is None:
                continue
            runs = [s for s in [slot, *later.get(sink, ())] if done[s] == done[s]]
            if runs:
                ends.append(min(max(done[s], self._upload_end[s], self._dc_end[s]) for s in runs))
        return max(ends, default=0.0)

    def completion_ms(self) -> tuple[dict[str, float], dict[str, float]]:
        """Per executed task, its ``end_ms`` and ``exec_done_ms`` (the least over its
        executions, as for a task-dup copy): what the tasks table says, without building it."""
        end: dict[str, float] = {}
        done: dict[str, float] = {}
        task = self._task
        exec_done = self._exec_done
        upload_end = self._upload_end
        dc_end = self._dc_end
        for slot in self._executed_slots().tolist():
            task_id = task[slot]
            finished = exec_done[slot]
            ended = max(finished, upload_end[slot], dc_end[slot])
            if task_id in end:
                end[task_id] = min(end[task_id], ended)
                done[task_id] = min(done[task_id], finished)
            else:
                end[task_id] = ended
                done[task_id] = finished
        return end, done

    @property
    def n_workers(self) -> int:
        """Worker invocations recorded (the rows of `worker_rows`)."""
        return len(self._w_id)

    def worker_columns(self) -> dict[str, Any]:
        """One column per worker field, one entry per worker invocation: `worker_rows`, whole."""
        billed = []
        granularity = self.billing_ms
        for ready_ms, startup_ms, end_ms in zip(
            self._w_ready, self._w_startup_ms, self._w_end, strict=True
        ):
            busy = max(end_ms - (ready_ms - startup_ms), 0.0)
            billed.append(math.ceil(busy / granularity - 1e-9) * granularity)
        return {
            "worker_id": list(self._w_id),
            "memory_mb": [c.memory_mb for c in self._w_config],
            "cpus": [c.cpus for c in self._w_config],
            "startup": list(self._w_startup),
            "invoked_ms": self._w_invoked.tolist(),
            "ready_ms": self._w_ready.tolist(),
            "end_ms": self._w_end.tolist(),
            "billed_ms": billed,
        }

    def worker_rows(self) -> list[dict[str, Any]]:
        """One dict per worker invocation, with trace-schema columns."""
        return _rows(self.worker_columns(), WORKER_FIELDS)
