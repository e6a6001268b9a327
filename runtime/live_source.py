"""A real run as the dashboard sees it: its description (tasks, plan, prices) and its stream of
live events, read back from Redis.

The client stores the description once (``faasdag:<run_id>:_live``, JSON, through the fenced
write, with the run's ttl) before it invokes anyone: the DAG, each task's planned worker and
config and its predicted start and end, and the platform's prices. `StreamSource` reads it and
then follows the run's event stream from its first entry, so a dashboard that attaches to a run
in progress first shows what happened so far, then continues live. Nothing read here is ever
unpickled: both are JSON (`runtime.live.decode`).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import redis

from runtime.live import DESCRIPTION_NAME, EVENTS_NAME, decode
from runtime.store import run_prefix

log = logging.getLogger(__name__)

#: The platform's fields that bill a run (`sim.costs.CostLedger`).
PRICE_FIELDS = (
    "price_per_gb_s",
    "price_per_request",
    "store_price_per_gb_transferred",
    "store_price_per_op",
    "billing_granularity_ms",
)


def _ms(value: Any) -> float | None:
    value = float(value)
    return round(value, 3) if math.isfinite(value) else None


def describe_run(
    run_id: str, dag: Any, plan: Any, labels: dict[str, Any], platform: Any, t0_epoch: float
) -> dict[str, Any]:
    """The JSON description of a real run: its DAG, its plan and predictions, its prices.

    Parameters
    ----------
    run_id : str
    dag : DAG
    plan : Plan
        ``plan.predicted`` (a `planners.base.PredictedTimeline`), when present, gives each
        task's predicted ``start_ms`` and ``end_ms``.
    labels : dict
        ``workflow``, ``planner``, ``backend`` of the run.
    platform : Platform
        Whose prices bill the run.
    t0_epoch : float
        Run start, seconds since the epoch.
    """
    predicted = getattr(plan, "predicted", None)
    timeline = getattr(predicted, "tasks", None)
    tasks = []
    for task_id in dag.topological_order():
        placement = plan[task_id]
        row: dict[str, Any] = {
            "id": task_id,
            "function": dag[task_id].function,
            "deps": list(dag.predecessors(task_id)),
            "worker": placement.worker_id,
            "memory_mb": placement.config.memory_mb,
            "cpus": placement.config.cpus,
        }
        if timeline is not None and task_id in timeline.index:
            row["pred_start_ms"] = _ms(timeline.at[task_id, "start_ms"])
            row["pred_end_ms"] = _ms(timeline.at[task_id, "end_ms"])
        tasks.append(row)
    makespan = getattr(predicted, "makespan_ms", None)
    return {
        "run_id": run_id,
        "workflow": labels.get("workflow", ""),
        "planner": labels.get("planner", ""),
        "backend": labels.get("backend", ""),
        "t0_epoch": t0_epoch,
        "platform": getattr(platform, "name", ""),
        "prices": {f: float(getattr(platform, f)) for f in PRICE_FIELDS},
        "predicted_makespan_ms": None if makespan is None else _ms(makespan),
        "tasks": tasks,
    }


def store_description(store: Any, description: dict[str, Any]) -> None:
    """Store the run's description (fenced, with the run's ttl)."""
    store.put_blob(DESCRIPTION_NAME, json.dumps(description, allow_nan=False).encode())


class UnknownRun(LookupError):
    """No run of that id in this Redis (never started, cleaned up, or expired)."""


class StreamSource:
    """Follows one run's description and live events in Redis.

    Parameters
    ----------
    client : redis.Redis
    run_id : str
    block_ms : int
        Longest one `poll` waits for new events.
    count : int
        Most events one `poll` returns.
    """

    def __init__(self, client: redis.Redis, run_id: str, *, block_ms: int = 200, count: int = 5000):
        self.client = client
        self.run_id = run_id
        self.label = f"run {run_id}"
        self.block_ms = block_ms
        self.count = count
        self.prefix = run_prefix(run_id)
        self.description: dict[str, Any] | None = None
        self.last_id = b"0-0"
        self.n_bad = 0

    def check(self) -> None:
        """Raises `UnknownRun` if this Redis holds nothing of the run (its description and
        its stream both missing)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.prefix + DESCRIPTION_NAME)
        pipe.exists(self.prefix + EVENTS_NAME)
        if not any(pipe.execute()):
            raise UnknownRun(
                f"no run {self.run_id!r} in this Redis (finished runs are deleted unless kept; "
                "their keys expire)"
            )

    def read_description(self) -> dict[str, Any] | None:
        """The run's description once stored (read once, then kept)."""
        if self.description is None:
            blob = self.client.get(self.prefix + DESCRIPTION_NAME)
            if blob is not None:
                try:
                    self.description = json.loads(blob)
                except ValueError:
                    log.warning("run %s: unreadable description, ignored", self.run_id)
        return self.description

    def poll(self) -> list[dict[str, Any]]:
        """The events added since the last poll (waiting up to `block_ms` for some); an entry
        that is not a valid event is skipped and counted in `n_bad`."""
        reply = self.client.xread(
            {self.prefix + EVENTS_NAME: self.last_id}, count=self.count, block=self.block_ms
        )
        events = []
        for _key, entries in reply or ():
            for entry_id, fields in entries:
                self.last_id = entry_id
                try:
                    events.extend(decode(fields.get(b"e", b"")))
                except ValueError as err:
                    self.n_bad += 1
                    log.info("run %s: entry %s skipped: %s", self.run_id, entry_id, err)
        return events
