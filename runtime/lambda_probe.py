"""The calibration's probe function (`runtime.calibrate.bench_startups`): a Lambda handler that
notes the wall clock at entry, and on request measures the store from inside its container
(`runtime.calibrate.calibrate_lambda`: what a worker on AWS sees of Redis).

It imports the real handler's module, so a probe's container starts as a worker's does (the
same imports, the backend's client when its environment names one, the settled heap): the
calibrated cold start is a worker's.
"""

from __future__ import annotations

import time
from typing import Any

import runtime.lambda_handler  # noqa: F401  (a worker's start-up, see the module docstring)


def probe(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler of the probe function: note the wall clock at entry.

    With ``event["redis_url"]`` and ``event["key"]`` it also writes the entry time (epoch
    seconds) to that Redis key, for asynchronous invokes whose response nobody reads. With
    ``event["bench_store"]`` (`runtime.calibrate.bench_store`'s arguments: ``redis_url``,
    ``sizes``, ``n_ops``, ``n_transfers``) it returns that benchmark's samples as ``samples``.
    """
    entered_s = time.time()
    key = event.get("key")
    if key:
        import redis

        redis.Redis.from_url(event["redis_url"]).set(key, repr(entered_s), ex=60)
    bench = event.get("bench_store")
    if bench:
        from runtime.calibrate import bench_store

        samples = bench_store(
            bench["redis_url"],
            bench["sizes"],
            n_ops=bench["n_ops"],
            n_transfers=bench["n_transfers"],
        )
        return {"entered_s": entered_s, "samples": samples}
    return {"entered_s": entered_s}
