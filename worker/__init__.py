"""The worker state machine: a worker's decisions as generators that yield effects.

No I/O, no clock, no randomness: drivers in `sim` (SimPy) and `runtime` (real) interpret the
effects. This package never imports simpy, redis or boto3.
"""

from worker.branch import (
    Invocation,
    PlanViolation,
    Worker,
    await_sinks,
    restart,
    run_client,
    run_worker,
)
from worker.effects import (
    EFFECTS,
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
from worker.estimates import Estimates, ProfileEstimates
from worker.recording import TraceRecorder
from worker.schedule import Schedule

__all__ = [
    "EFFECTS",
    "Download",
    "Estimates",
    "Execute",
    "Exists",
    "Get",
    "Incr",
    "Invocation",
    "Invoke",
    "Now",
    "Parallel",
    "PlanViolation",
    "ProfileEstimates",
    "Publish",
    "Schedule",
    "SetIfAbsent",
    "Sleep",
    "StreamDownload",
    "StreamUpload",
    "Subscribe",
    "TaskOutput",
    "TraceRecorder",
    "Upload",
    "WaitAny",
    "WaitFor",
    "Warmup",
    "Worker",
    "await_sinks",
    "restart",
    "run_client",
    "run_worker",
]
