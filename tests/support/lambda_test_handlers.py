"""Small Lambda handlers for emulator tests (run by awslambdaric in worker processes)."""

import os
import time


def echo(event, context):
    return {"event": event, "pid": os.getpid(), "memory": context.memory_limit_in_mb}


def sleepy(event, context):
    time.sleep(float(event.get("seconds", 1.0)))
    return {"pid": os.getpid()}


def fail(event, context):
    raise ValueError("handler failed on purpose")
