"""The worker state machine: a worker's decisions as generators that yield effects.

No I/O, no clock, no randomness: drivers in `sim` (SimPy) and `runtime` (real) interpret the
effects. This package never imports simpy, redis or boto3.
"""

from worker.branch import Invocation, PlanViolation, Worker, run_client, run_worker
from worker.effects import (
    EFFECTS,
    Download,
    Execute,
    Exists,
    Incr,
    Invoke,
    Now,
    Parallel,
    Publish,
    SetIfAbsent,
    Sleep,
    Subscribe,
    TaskOutput,
    Upload,
    WaitFor,
    Warmup,
)
from worker.schedule import Schedule

__all__ = [
    "EFFECTS",
    "Download",
    "Execute",
    "Exists",
    "Incr",
    "Invocation",
    "Invoke",
    "Now",
    "Parallel",
    "PlanViolation",
    "Publish",
    "Schedule",
    "SetIfAbsent",
    "Sleep",
    "Subscribe",
    "TaskOutput",
    "Upload",
    "WaitFor",
    "Warmup",
    "Worker",
    "run_client",
    "run_worker",
]
