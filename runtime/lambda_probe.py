"""The calibration's probe function (`runtime.calibrate.bench_startups`): a Lambda handler that
notes the wall clock at entry, and on request measures from inside its container what a worker
on AWS sees (`runtime.calibrate_lambda.calibrate_lambda`): other probes' invokes, and Redis.

It imports the real handler's module, so a probe's container starts as a worker's does (the
same imports, the backend's client when its environment names one, the settled heap): the
calibrated cold start is a worker's.

Like a worker's, the probe's Redis URL (which may hold a password) comes from its function's
environment (``FAASDAG_REDIS_URL``, `runtime.redis_driver.REDIS_URL_ENV`, set by the
calibration when it creates the function), never from an event.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import runtime.lambda_handler  # noqa: F401  (a worker's start-up, see the module docstring)
from runtime.redis_driver import REDIS_URL_ENV


def redis_url_from_environment() -> str:
    """The Redis URL of this probe function's environment (`REDIS_URL_ENV`).

    Raises
    ------
    ValueError
        If the variable is unset or empty (the message names it).
    """
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        raise ValueError(
            f"no {REDIS_URL_ENV} in the probe function's environment: the calibration sets it "
            "when it creates the function (backend_environment(..., redis_url=...)); the Redis "
            "URL never travels in an event"
        )
    return url


def probe(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler of the probe function: note the wall clock at entry.

    With ``event["key"]`` it also writes the entry time (epoch seconds) to that key of the
    Redis named by `REDIS_URL_ENV`, for asynchronous invokes whose response nobody reads. With
    ``event["bench_invokes"]`` (`bench_invokes`'s arguments) or ``event["bench_store"]``
    (`runtime.calibrate.bench_store`'s arguments but the URL: ``sizes``, ``n_ops``,
    ``n_transfers``) it returns that benchmark's samples as ``samples``. An event carries no
    Redis URL: the environment's is used.
    """
    entered_s = time.time()
    key = event.get("key")
    if key:
        import redis

        redis.Redis.from_url(redis_url_from_environment()).set(key, repr(entered_s), ex=60)
    timed = event.get("bench_invokes")
    if timed:
        return {"entered_s": entered_s, "samples": bench_invokes(**timed)}
    bench = event.get("bench_store")
    if bench:
        from runtime.calibrate import bench_store

        samples = bench_store(
            redis_url_from_environment(),
            bench["sizes"],
            n_ops=bench["n_ops"],
            n_transfers=bench["n_transfers"],
        )
        memory_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "0"))
        return {"entered_s": entered_s, "samples": samples, "memory_mb": memory_mb}
    return {"entered_s": entered_s}


def bench_invokes(cold: list[str], warm: str, n_warm: int) -> dict[str, list]:
    """Invokes timed from this container, as a worker invoking another sees them: the first
    invoke of each function of `cold` (new functions: cold starts), then `n_warm` rounds of a
    synchronous, an asynchronous (``Event``, its entry written to the environment's Redis) and
    a ``DryRun`` invoke of `warm`; ms, as `runtime.calibrate.bench_startups` measures them."""
    from runtime.backends import backend_for
    from runtime.calibrate.microbench import _sync_ms, time_warm_invokes
    from runtime.lambda_backend import BACKEND_ENV
    from runtime.store import connect

    url = redis_url_from_environment()  # before any invoke: a probe without it fails at once
    client = backend_for(json.loads(os.environ[BACKEND_ENV])).client
    cold_ms = [_sync_ms(client, name, {}) for name in cold]  # first: each function's first invoke
    return {"cold": cold_ms, **time_warm_invokes(client, connect(url), warm, n_warm)}
