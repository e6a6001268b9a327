"""The handler an AWS Lambda function of faasdag runs: ``runtime.lambda_handler.handler``.

One function per resource config runs this same code. An event is either a worker invocation
payload (`runtime.redis_driver.RunRef.payload`) or a warm-up ping ``{"faasdag": 1, "warmup":
true}`` sent by the pre-warm optimization; both are signed (`runtime.signing`) and refused
unsigned, before anything in them is used. The first event a process sees is its cold start.

A warm-up ping may carry ``"backend"``, the descriptor of the backend the run invokes workers
with: the container then makes that backend's client (boto3's takes ~100 ms of CPU), so a
worker that starts on it is ready to invoke others. With ``"hold_ms"`` the ping keeps its
container that long (at most `MAX_HOLD_MS`), so that concurrent pings reach distinct
containers instead of one container answering them in turn. ``"imports"`` lists modules to
import now (a workflow's task modules), as a container that already ran the workflow has them:
otherwise a worker's first run context pays the import (10-50 ms of CPU for the examples).

When the function's environment holds a backend descriptor (``FAASDAG_BACKEND``, set by the
deployer and the emulator's benches), the container makes that backend's client at its cold
start, as AWS advises for SDK clients: made lazily, it cost 100-200 ms inside the first worker
of that container that invokes another, a container that had so far run only workers that
invoke nobody (in a warm pool, most are).

After its imports (the cold start) and after a warm-up ping, a container settles its heap
(`settle_heap`): otherwise the first full garbage collection of the ~100,000 objects that
numpy, redis and boto3 leave comes in the middle of some later invocation, stalling that worker
for 30-60 ms, once per container. It also keeps freed large blocks in its heap
(`runtime.allocator`): with glibc's defaults every MB-sized transfer buffer faulted its pages in
anew, most of a download's CPU here.
"""

from __future__ import annotations

import gc
import importlib
import time
from typing import Any

from runtime.allocator import keep_large_blocks
from runtime.backends import backend_for
from runtime.lambda_backend import prepare_configured_backend
from runtime.redis_driver import run_invocation
from runtime.signing import verify_payload

MAX_HOLD_MS = 10_000.0

_cold = True


def settle_heap() -> None:
    """Collect garbage now and exempt the survivors from later collections (`gc.freeze`), so a
    later full collection scans only what invocations leave behind, not the loaded libraries."""
    gc.collect()
    gc.freeze()


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run one worker invocation (or answer a warm-up); returns a small JSON-able summary."""
    global _cold
    startup, _cold = ("cold" if _cold else "warm"), False
    if event.get("warmup"):
        verify_payload(event)  # a ping makes the container import and connect: signed too
        if event.get("backend"):
            backend_for(event["backend"]).prepare()
        for module in event.get("imports", ()):
            importlib.import_module(module)
        hold_ms = float(event.get("hold_ms", 0.0))
        if hold_ms > 0:
            time.sleep(min(hold_ms, MAX_HOLD_MS) / 1000.0)
        settle_heap()
        return {"warmup": True, "startup": startup}
    outcome = run_invocation(event, startup=startup)
    outcome["startup"] = startup
    return outcome


keep_large_blocks()  # before invocations' big buffers come and go
prepare_configured_backend()
settle_heap()  # the cold start's imports are done
